"""The rooms of reference/: which file may import which, and how long a file may grow.

These read the source, not the behaviour: they keep the layout a newcomer can find their way
in (one concept a file, the literal model free of tuning, formats as peers, no import circle).
"""

import ast
import re
from pathlib import Path

import pytest

from reference.trace import LAYER_STEPS

ROOT = Path(__file__).resolve().parents[1] / "reference"
FILES = sorted(ROOT.rglob("*.py"))
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every reference.* module `path` imports, at the top or inside a function."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            target = (base + "." + node.module if node.module else base) if node.level else node.module
            if target.startswith("reference"):
                found.add(target)
                found.update(f"{target}.{a.name}" for a in node.names if (ROOT.parent / f"{target}.{a.name}".replace(".", "/")).with_suffix(".py").exists())
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("reference"))
    return found - {module_name(path)}


GRAPH = {module_name(f): imports(f) for f in FILES}


def test_reference_has_no_import_circle():
    def visit(module, path):
        if module in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(module):] + [module]))
        for target in GRAPH.get(module, ()):
            if target != "reference":  # the package's __init__ re-exports; it is not a room
                visit(target, path + [module])

    for module in GRAPH:
        visit(module, [])


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_source_file_is_longer_than_a_sitting(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


def test_the_literal_model_imports_only_its_sizes_and_the_upcast():
    assert GRAPH["reference.model"] == {"reference.config", "reference.upcast"}
    assert "cpuinfo" not in (ROOT / "model.py").read_text(encoding="utf-8")


def test_checkpoint_formats_do_not_import_one_another():
    peers = {"reference.formats.meta", "reference.formats.hf", "reference.formats.gguf"}
    for peer in peers:
        assert not GRAPH[peer] & (peers - {peer}), f"{peer} imports {GRAPH[peer] & peers}"


def test_attention_is_defined_only_in_the_literal_and_the_fast_path():
    defined = {module_name(f) for f in FILES for node in ast.walk(ast.parse(f.read_text(encoding="utf-8")))
               if isinstance(node, ast.FunctionDef) and node.name.startswith("attention")}
    assert defined == {"reference.model", "reference.batched"}


@pytest.mark.parametrize("step", list(LAYER_STEPS))
def test_each_trace_step_name_is_spelled_in_at_most_three_files(step):
    """The table in trace.py, the pass that records it, and transformers' side in parity.py.

    formats/ is not counted: it speaks of weights ("attention_norm" of attention_norm.weight),
    never of trace tensors."""
    quoted = re.compile(rf"[\"']{re.escape(step)}[\"']")
    spelled = [f.name for f in FILES if "formats" not in f.parts and quoted.search(f.read_text(encoding="utf-8"))]
    assert len(spelled) <= 3, spelled
