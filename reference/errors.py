"""The one exception type the project raises for problems with the user's input."""


class InputError(ValueError):
    """Something the user gave us is wrong: a file, a key, a value.

    The message is one line that names what is at fault and where (file, tensor, key, value),
    and says what to do when that is not obvious. The CLI prints it as-is and exits with 2;
    it never shows a traceback for these.
    """
