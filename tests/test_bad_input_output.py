"""Output is inert and keeps what the user set (#31, class 6): a file written over keeps its mode."""

import os
import stat
import subprocess
import sys

import pytest

from reference.files import write_atomic


def test_a_private_file_written_over_stays_private(tmp_path):
    out = tmp_path / "trace.npz"
    out.write_bytes(b"old")
    os.chmod(out, 0o600)
    write_atomic(out, b"new")
    assert out.read_bytes() == b"new" and stat.S_IMODE(os.stat(out).st_mode) == 0o600


def test_a_new_file_gets_an_ordinary_files_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        write_atomic(tmp_path / "new.npz", b"x")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(os.stat(tmp_path / "new.npz").st_mode) == 0o644


@pytest.mark.parametrize("name", ["x\nerror: forged second line", "x\x1b]0;retitled\x07", "x\x1b[2J"],
                         ids=["newline", "title escape", "clear screen"])
def test_a_path_carrying_a_newline_or_escape_codes_is_shown_not_obeyed(tmp_path, name):
    done = subprocess.run([sys.executable, "-m", "reference", "walk", "--checkpoint", str(tmp_path / name)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert "\x1b" not in done.stderr and "\x07" not in done.stderr
    assert repr(name[1:])[1:-1] in done.stderr  # written as escapes: \n, \x1b, \x07
