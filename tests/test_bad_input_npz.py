"""Bad input (#31, the .npz part): every member of a stranger's .npz is checked before it is
inflated, by one reader (`npz.read_npz`) behind `check`, `compare` and the goldens. Each file
here is written for real, with zipfile and NumPy; each is refused in one line naming the file
and the member, exit 2, in seconds and in little memory, and nothing in it is ever unpickled."""

import io
import struct
import subprocess
import sys
import tempfile
import time
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from helpers import one_line_error, refused_by_cli
from reference.check.user_trace import read_trace_file
from reference.errors import InputError
from reference.npz import read_npz

MiB = 1 << 20
TOKENS = np.array([128000, 791, 4320], np.int64)
EMBEDDINGS = np.arange(12, dtype=np.float32).reshape(3, 4)


def npy(array) -> bytes:
    """One array in the NPY format, as np.save writes it (objects pickled, as np.save would)."""
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.asarray(array), allow_pickle=True)
    return buffer.getvalue()


def write_zip(path, members: list[tuple[str, bytes]], method=zipfile.ZIP_DEFLATED):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns of a duplicate name, which one file has on purpose
        with zipfile.ZipFile(path, "w", method) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return path


def with_member(name: str, data: bytes):
    """A trace .npz of good tokens and the one member under test."""
    return lambda path: write_zip(path, [("tokens.npy", npy(TOKENS)), (name, data)])


def encrypted(path: Path) -> Path:
    """Python's zipfile cannot encrypt: set bit 0 (encrypted) of the one member's flags, in its
    local header (byte 6) and in the central directory's (byte 8)."""
    data = bytearray(write_zip(path, [("embeddings.npy", npy(EMBEDDINGS))]).read_bytes())
    central = struct.unpack_from("<L", data, len(data) - 6)[0]  # the end record's offset of the directory
    assert data[:4] == b"PK\x03\x04" and data[central:central + 4] == b"PK\x01\x02"
    data[6] |= 1
    data[central + 8] |= 1
    path.write_bytes(bytes(data))
    return path


MARKER = Path(tempfile.gettempdir()) / "llama3-reference-npz-was-unpickled"


class Unpickled:
    def __reduce__(self):  # unpickling it creates MARKER: the proof that nothing was unpickled
        return open, (str(MARKER), "w")


BAD = {  # what the file holds: (write it, what its one line says besides the file)
    "a string member": (with_member("embeddings.npy", npy(np.array(["a", "bc"]))), "member embeddings: dtype <U2"),
    "a bytes member": (with_member("embeddings.npy", npy(np.array([b"ab"]))), "member embeddings: dtype |S2"),
    "a pickled object member": (with_member("embeddings.npy", npy(np.array([Unpickled()], dtype=object))),
                                "holds pickled objects; member embeddings"),
    "a complex member": (with_member("embeddings.npy", npy(EMBEDDINGS.astype(np.complex64))),
                         "member embeddings: dtype complex64", "real pairs [..., 2]"),
    "a bfloat16 member from ml_dtypes (raw 2-byte records)": (with_member("embeddings.npy", npy(np.zeros(4, "V2"))),
                                                              "member embeddings: dtype |V2", "float32"),
    "a float wider than float64": (with_member("embeddings.npy", npy(np.zeros(4, np.longdouble))),
                                   "member embeddings: dtype float128"),
    "an encrypted member": (encrypted, "member embeddings.npy: is encrypted"),
    "a member not named .npy": (with_member("embeddings.txt", npy(EMBEDDINGS)),
                                "member embeddings.txt: is not NAME.npy"),
    "a member that is not NPY": (with_member("embeddings.npy", b"just some text, no NPY magic"),
                                 "member embeddings: is not an array in the NPY format"),
    "a member shorter than its NPY header says": (with_member("embeddings.npy", npy(EMBEDDINGS)[:-8]),
                                                  "member embeddings: its header says float32 [3, 4], 48 bytes, but 40 "
                                                  "follow it"),
    "two members of one name": (lambda p: write_zip(p, [("embeddings.npy", npy(EMBEDDINGS))] * 2),
                                "member embeddings.npy: appears twice"),
    "a member compressed with bzip2": (lambda p: write_zip(p, [("embeddings.npy", npy(EMBEDDINGS))], zipfile.ZIP_BZIP2),
                                       "member embeddings.npy: compressed by zip method 12"),
}


@pytest.fixture(params=list(BAD), ids=lambda what: what.replace(" ", "-"))
def bad(request, tmp_path):
    """(the bad .npz, what its one line must say)."""
    make, *says = BAD[request.param]
    return make(tmp_path / "trace.npz"), says


def test_a_bad_member_is_one_input_error_naming_the_file_and_the_member(bad):
    path, says = bad
    for read in (read_npz, read_trace_file):
        with pytest.raises(InputError) as excinfo:
            read(path)
        assert one_line_error(excinfo, *says).startswith(f"{path}: ")
    assert not MARKER.exists()  # the pickled member was refused, never loaded


@pytest.mark.parametrize("command", ["check", "compare"])
def test_check_and_compare_refuse_a_bad_member_with_exit_2_and_one_line(capsys, bad, command):
    path, says = bad
    argv = ["check", str(path), "--checkpoint", "tiny"] if command == "check" else ["compare", str(path), str(path)]
    refused_by_cli(capsys, argv, str(path), *says)


@pytest.mark.parametrize("stored", [EMBEDDINGS.astype(">f4"), np.asfortranarray(EMBEDDINGS)], ids=["big-endian",
                                                                                             "fortran-order"])
def test_a_big_endian_or_fortran_ordered_member_is_read_as_the_same_numbers_in_native_order(tmp_path, stored):
    arrays = read_npz(with_member("embeddings.npy", npy(stored))(tmp_path / "t.npz"))
    assert arrays["embeddings"].dtype == np.float32 and arrays["embeddings"].dtype.isnative
    assert np.array_equal(arrays["embeddings"], EMBEDDINGS) and np.array_equal(arrays["tokens"], TOKENS)


def test_compare_of_a_big_endian_trace_and_a_native_one_finds_them_equal(capsys, tmp_path):
    from reference.cli import main

    big = with_member("embeddings.npy", npy(EMBEDDINGS.astype(">f4")))(tmp_path / "big.npz")
    little = with_member("embeddings.npy", npy(EMBEDDINGS))(tmp_path / "little.npz")
    assert main(["compare", str(little), str(big)]) == 0, capsys.readouterr()
    assert "every tensor agrees" in capsys.readouterr().out


def test_every_committed_golden_reads_as_numpy_reads_it():
    from reference.verify.goldens import GOLDENS_DIR

    for path in sorted(GOLDENS_DIR.rglob("*.npz")):
        ours = read_npz(path)
        with np.load(path) as theirs:
            assert sorted(ours) == sorted(theirs.files), path
            for name in ours:
                assert ours[name].dtype == theirs[name].dtype and np.array_equal(ours[name], theirs[name]), (path, name)


def test_a_small_member_of_zeros_is_no_zip_bomb(tmp_path):
    """8 MB of zeros deflates 1,000× to 8 KB: under the 256 MiB that any file may inflate to."""
    path = write_zip(tmp_path / "zeros.npz", [("embeddings.npy", npy(np.zeros((1024, 1024), np.float64)))])
    assert path.stat().st_size < 64 * 1024 and not read_npz(path)["embeddings"].any()


# --- zip bombs: refused from the zip's directory or the NPY header, before the data is inflated ---

def npy_header(dtype: str, shape: tuple[int, ...]) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": dtype, "fortran_order": False, "shape": shape})
    return buffer.getvalue()


def deflated_zeros(header: bytes, zeros: int) -> bytes:
    """A raw deflate stream of `header` and then `zeros` zero bytes, built a MiB at a time and
    never held whole: after a full flush a MiB of zeros deflates to the same 1 KB every time,
    so it is deflated once and repeated (2 GiB: 2 MB)."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    head, mib = c.compress(header) + c.flush(zlib.Z_FULL_FLUSH), c.compress(bytes(MiB)) + c.flush(zlib.Z_FULL_FLUSH)
    return head + mib * (zeros // MiB) + c.flush()


def one_member_zip(path: Path, name: str, deflated: bytes, size: int, crc: int) -> Path:
    """A zip of one deflated member, written byte by byte, so that its header may claim any `size`."""
    name_bytes = name.encode()
    local = struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, 0, 8, 0, 0x21, crc, len(deflated), size, len(name_bytes), 0)
    central = struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, 0, 8, 0, 0x21, crc, len(deflated), size,
                          len(name_bytes), 0, 0, 0, 0, 0, 0)
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(name_bytes),
                      len(local) + len(name_bytes) + len(deflated), 0)
    path.write_bytes(local + name_bytes + deflated + central + name_bytes + end)
    return path


TWO_GIB = 2 << 30
BIG = npy_header("<f4", (TWO_GIB // 4,))  # 2 GiB of float32 zeros
SMALL = npy_header("<f4", (3, 4))  # 48 bytes

BOMBS = {  # how it lies: (NPY header, bytes the zip's headers claim, their CRC-32 is right, what the line says)
    "it does not: it holds 2 GiB of zeros and says so": (BIG, len(BIG) + TWO_GIB, False, "past 268,435,456 (256 MiB",
                                                         "zip bomb"),
    "its zip header claims 2 KB": (BIG, 2048, True, "its header says float32 [536870912], 2,147,483,648 bytes, but "
                                                    "1,920 follow it"),
    "both headers claim 48 bytes, with another CRC-32": (SMALL, len(SMALL) + 48, False,
                                                         "cannot be read (BadZipFile: Bad CRC-32"),
}

READ_AND_MEASURE = """
import resource, sys, time
from reference.errors import InputError
from reference.npz import read_npz
before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
try:
    said = f"read {list(read_npz(sys.argv[1]))}"
except InputError as e:
    said = str(e)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(f"{time.perf_counter() - start:.3f} {grown * 1024} {said}")
"""


@pytest.fixture(params=list(BOMBS), ids=lambda what: what.replace(" ", "-"))
def bomb(request, tmp_path):
    header, size, crc_right, *says = BOMBS[request.param]
    crc = zlib.crc32(header + bytes(size - len(header))) if crc_right else 0
    path = one_member_zip(tmp_path / "bomb.npz", "embeddings.npy", deflated_zeros(header, TWO_GIB), size, crc)
    assert path.stat().st_size < 4 * MiB
    return path, says


def test_a_zip_bomb_is_refused_in_a_second_and_in_a_few_mib_whatever_its_headers_claim(bomb):
    path, says = bomb
    done = subprocess.run([sys.executable, "-c", READ_AND_MEASURE, str(path)], capture_output=True, text=True,
                          timeout=120)
    seconds, grown, said = done.stdout.strip().split(" ", 2)
    assert said.startswith(f"{path}: member embeddings") and all(s in said for s in says), said
    assert float(seconds) < 1 and int(grown) < 64 * MiB, (seconds, grown)


def test_check_and_compare_refuse_a_zip_bomb_with_exit_2_and_one_line(capsys, bomb):
    path, says = bomb
    start = time.perf_counter()
    refused_by_cli(capsys, ["check", str(path), "--checkpoint", "tiny"], str(path), *says)
    refused_by_cli(capsys, ["compare", str(path), str(path)], str(path), *says)
    assert time.perf_counter() - start < 10


# --- a member's name is shown, never obeyed ---

@pytest.mark.parametrize("name", ["layers.0.q\n.npy", "\x1b[31mlayers.0.q.npy", "layers.0.q\x1b[2J.npy"])
def test_a_member_name_with_a_newline_or_an_escape_code_is_printed_escaped(capsys, tmp_path, name):
    path = with_member(name, npy(EMBEDDINGS))(tmp_path / "trace.npz")
    escaped = name.replace("\n", "\\n").replace("\x1b", "\\x1b")
    for argv in (["check", str(path), "--checkpoint", "tiny"], ["compare", str(path), str(path)]):
        err = refused_by_cli(capsys, argv, f"member {escaped}")
        assert "\x1b" not in err and err.count("\n") == 1, repr(err)


def test_the_command_line_itself_writes_the_escaped_name_and_no_escape_byte(tmp_path):
    path = with_member("\x1b[31mred\n.npy", npy(EMBEDDINGS))(tmp_path / "trace.npz")
    done = subprocess.run([sys.executable, "-m", "reference", "compare", str(path), str(path)], capture_output=True,
                          timeout=120)
    assert (done.returncode, done.stdout, done.stderr.count(b"\n"), b"\x1b" in done.stderr) == (2, b"", 1, False), done
    assert b"member \\x1b[31mred\\n.npy" in done.stderr, done.stderr


# --- anything at all: read, or refused in one line ---

DTYPES = ["<f4", ">f4", "<f8", ">f8", "<f2", "|b1", "<i8", ">i4", "|u1", "<u8", "<c8", ">c16", "<U3", "|S2", "|V2",
          "O", "<M8[s]", "<f16", [("x", "<f4")]]


@st.composite
def npz_files(draw) -> bytes:
    """An .npz of up to three members, each a real array of any dtype and shape, cut short, with
    bytes overwritten, or plain bytes; any name; stored or deflated; perhaps one byte of the
    zip itself overwritten."""
    members = []
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(["tokens", "embeddings", "layers.0.q"]) | st.text(max_size=6))
        name += draw(st.sampled_from([".npy", ".npy", "", ".txt", "/"]))
        name = name.replace("\x00", "") or ".npy"  # zipfile ends a name at NUL and needs one
        dtype, shape = draw(st.sampled_from(DTYPES)), tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
        data = npy(np.zeros(shape, dtype)) if draw(st.booleans()) else draw(st.binary(max_size=200))
        if data and draw(st.booleans()):
            at = draw(st.integers(0, len(data) - 1))
            data = data[:at] + draw(st.binary(max_size=8)) + data[at + draw(st.integers(0, 8)):]
        members.append((name, data))
    stored_or_deflated = draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    blob = write_zip(io.BytesIO(), members, stored_or_deflated).getvalue()
    if draw(st.booleans()):
        at = draw(st.integers(0, len(blob) - 1))
        blob = blob[:at] + bytes([draw(st.integers(0, 255))]) + blob[at + 1:]
    return blob


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=npz_files())
def test_any_npz_is_read_as_native_arrays_or_refused_in_one_line_never_anything_else(tmp_path, blob):
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(blob)
    for read in (read_npz, read_trace_file):
        try:
            arrays = read(path)
        except InputError as e:
            assert "\n" not in str(e) and "\x1b" not in str(e) and str(e).startswith(str(path)), str(e)
            continue
        for name, array in arrays.items():
            assert name.isprintable() and array.dtype.kind in "biuf" and array.dtype.isnative, (name, array.dtype)
