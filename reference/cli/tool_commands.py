"""The commands around the pass: `synthesize`, `download`, `goldens`, `parity` and `serve`.

Each is an `arguments(p)` that declares its flags and a `run(options)` that hands plain values
to the room that does the work (formats/, verify/, explorer/).
"""

from __future__ import annotations

from ..errors import InputError
from .options import CHECKPOINT_HELP


# --- synthesize ---

def synthesize_arguments(p) -> None:
    p.add_argument("--preset", default="tiny", help="a preset name, e.g. tiny, llama3-8b (default: tiny)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--n-layers", type=int, default=None, help="override the preset's layer count")
    p.add_argument("--n-shards", type=int, default=1,
                   help="write N model-parallel shards consolidated.00.pth … as Meta's 70B (default: 1)")
    p.add_argument("--out", required=True, help="a new (or empty) directory")


def synthesize(options) -> None:
    from ..formats.synthesize import synthesize

    out = synthesize(options.preset, options.seed, options.out, n_layers=options.n_layers, n_shards=options.n_shards)
    print(f"wrote {out}")


# --- download ---

def download_arguments(p) -> None:
    p.add_argument("repo_id", help="e.g. meta-llama/Meta-Llama-3-8B")
    p.add_argument("--out", default=None, help="directory to download into (default: the Hub cache)")


def download(options) -> None:
    from ..formats.hub import download

    print(f"downloaded to {download(options.repo_id, options.out)}")


# --- goldens ---

def goldens_arguments(p) -> None:
    p.add_argument("names", nargs="*", help="only these prompts (default: every prompt in the prompts file)")
    p.add_argument("--checkpoint", default="tiny", help="'tiny' (default), 'smollm2-135m' or another checkpoint")
    p.add_argument("--prompts", default=None, help="the prompts file (default: goldens/prompts.json for tiny, "
                                                    "goldens/smollm2-135m/prompts.json for smollm2-135m)")
    p.add_argument("--out", default=None, help="the goldens directory (default: goldens/tiny-seed0 for tiny, "
                                                "goldens/smollm2-135m for smollm2-135m)")
    p.add_argument("--force", action="store_true", help="rewrite even goldens that match within tolerance, "
                   "and write into a directory that goldens did not make")


def goldens(options) -> None:
    from ..formats import load_checkpoint
    from ..formats.hub import resolve_checkpoint
    from ..verify import goldens

    known = goldens.GOLDEN_SETS.get(options.checkpoint)
    if options.out is None and known is None:
        raise InputError(f"--out is required with --checkpoint other than {' or '.join(goldens.GOLDEN_SETS)} "
                         "(goldens/ holds theirs)")
    prompts = goldens.load_prompts(options.prompts or (known.prompts_file if known else goldens.PROMPTS_FILE))
    ckpt = load_checkpoint(resolve_checkpoint(options.checkpoint))
    written = goldens.regenerate(ckpt, options.out or known.directory, prompts, options.names or None,
                                 force=options.force, layers=known.layers if known else None)
    print(f"{len(written)} golden(s) written" + (f": {', '.join(written)}" if written else ""))


# --- parity ---

def parity_arguments(p) -> None:
    p.add_argument("--config", action="append", default=None,
                   help="only this configuration (repeatable; default: all)")
    p.add_argument("--out", default=None, help="also write the table to this file (e.g. docs/data/parity.md)")


def parity(options) -> None:
    from ..files import check_out_dir, write_text
    from ..verify import parity

    out = check_out_dir(options.out) if options.out else None  # before minutes of compute
    table = parity.markdown_table(parity.measure_all(options.config))
    print(table, end="")
    if out:
        print(f"wrote {write_text(out, table)}")


# --- serve ---

def serve_arguments(p) -> None:
    p.add_argument("--checkpoint", default="smollm2-135m", help=CHECKPOINT_HELP + " (default: smollm2-135m)")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1, this machine only)")
    p.add_argument("--port", type=int, default=8000, help="the port (default: 8000)")


def serve(options) -> None:
    from importlib.util import find_spec

    from ..formats import load_checkpoint
    from ..formats.hub import resolve_checkpoint
    from ..formats.synthesize import synthesized

    for package in ("starlette", "uvicorn"):  # the serve extra, checked before the model loads
        if find_spec(package) is None:
            raise InputError(f"serve needs {package}: pip install -e '.[serve]'")
    if not 0 < options.port < 65536:
        raise InputError(f"--port {options.port}: not a port number (1 … 65535)")
    from ..explorer.server import serve

    path = resolve_checkpoint(options.checkpoint)
    checkpoint = load_checkpoint(path)
    trained = not (path.is_dir() and synthesized(path) is not None)
    serve(checkpoint, trained, host=options.host, port=options.port)
