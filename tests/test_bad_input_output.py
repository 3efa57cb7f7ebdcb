"""Output is inert and keeps what the user set (#31, class 6): a file written over keeps its mode."""

import os
import stat

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
