"""One rank of a tensor-parallel test run: the real CLI, started as torchrun starts it.

    RANK=1 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 python tests/ranks.py JOBS.json OUT_DIR

torchrun only sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT and starts the command; this
does the same, but runs several commands (`jobs`) one after another in the same process, so
a test pays Python's and torch's start-up once per rank instead of once per command.

A job is {"name", "argv", "port", "ranks": the ranks that take part, "timeout": seconds};
"{rank}" in argv becomes this rank. For each job this rank writes OUT_DIR/NAME.RANK.json:
the exit code, what it printed, and the weights files it had memory-mapped once loaded.
"""

import contextlib
import io
import json
import os
import re
import sys
from pathlib import Path

from reference import cli
from reference.parallel import torchrun

MAPPED: list[str] = []


def mapped_weight_files() -> list[str]:
    """The checkpoint weights files this process has memory-mapped now (from /proc/self/maps)."""
    maps = Path("/proc/self/maps").read_text()
    return sorted({m for m in re.findall(r"(\S+\.pth)\n", maps)})


def spy_on_loading():
    """Record the mapped files right after `load_rank` returns (the real one, called as is)."""
    real = torchrun.load_rank

    def load_rank(checkpoint, ranks):
        loaded = real(checkpoint, ranks)
        MAPPED[:] = mapped_weight_files()
        return loaded

    torchrun.load_rank = load_rank


def main(jobs_file: str, out_dir: str) -> None:
    rank = int(os.environ["RANK"])
    spy_on_loading()
    for job in json.loads(Path(jobs_file).read_text()):
        if rank not in job.get("ranks", range(int(os.environ["WORLD_SIZE"]))):
            continue
        os.environ["MASTER_PORT"] = str(job["port"])
        os.environ["LLAMA3_REFERENCE_DIST_TIMEOUT"] = str(job.get("timeout", 60))
        MAPPED.clear()
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = cli.main([a.replace("{rank}", str(rank)) for a in job["argv"]])
        result = {"rc": rc, "stdout": out.getvalue(), "stderr": err.getvalue(), "mapped": MAPPED}
        (Path(out_dir) / f"{job['name']}.{rank}.json").write_text(json.dumps(result))


if __name__ == "__main__":
    main(*sys.argv[1:])
