"""The rooms of reference/ and bench/: which file may import which, and how long a file may grow
(there, in tests/ and in the docs' helpers).

These read the source, not the behaviour: they keep the layout a newcomer can find their way
in (the pass at the root, each tool in a room of its own, one concept a file, the literal model
free of tuning, formats as peers, no import circle). Each rule is a sentence in a test's name.
"""

import ast
import re
from pathlib import Path

import pytest

from reference.trace import LAYER_STEPS

REPO = Path(__file__).resolve().parents[1]
ROOT = REPO / "reference"
FILES = sorted(ROOT.rglob("*.py"))
BENCH_FILES = sorted((REPO / "bench").glob("*.py"))
AROUND = sorted([*(REPO / "tests").glob("*.py"), *(REPO / "docs").glob("_*.py")])  # the tests, the docs' helpers
ROOMS = sorted(p.parent for p in ROOT.glob("*/__init__.py"))
MAX_LINES = 300


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    where = ROOT.parent / dotted.replace(".", "/")
    return where.with_suffix(".py").exists() or (where / "__init__.py").exists()


def imports(path: Path) -> set[str]:
    """Every reference.* module `path` imports, at the top or inside a function. `from . import
    split` imports the module split (its package is already running), not the package's face."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rsplit(".", 1)[0]
            target = (base + "." + node.module if node.module else base) if node.level else node.module
            if target.startswith("reference"):
                submodules = {f"{target}.{a.name}" for a in node.names if is_module(f"{target}.{a.name}")}
                found.update(submodules)
                if len(submodules) < len(node.names):
                    found.add(target)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("reference"))
    return found - {module_name(path)}


GRAPH = {module_name(f): imports(f) for f in FILES}


def third_party_imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def assert_no_circle(graph: dict[str, set[str]], faces=("reference",)) -> None:
    def visit(module, path):
        if module in path:
            raise AssertionError("import circle: " + " -> ".join(path[path.index(module):] + [module]))
        for target in graph.get(module, ()):
            if target not in faces:  # the package's __init__ re-exports; it is not a room
                visit(target, path + [module])

    for module in graph:
        visit(module, [])


# --- no circle, no file past a sitting ---

def test_reference_has_no_import_circle():
    assert_no_circle(GRAPH)


def test_bench_has_no_import_circle_and_nothing_imports_the_benchmark_script():
    stems = {p.stem for p in BENCH_FILES}
    graph = {p.stem: third_party_imports(p) & stems - {p.stem} for p in BENCH_FILES}
    assert_no_circle(graph, faces=())
    assert [name for name, targets in graph.items() if "bench" in targets] == []


@pytest.mark.parametrize("path", FILES + BENCH_FILES + AROUND, ids=lambda p: str(p.relative_to(REPO)))
def test_no_source_file_is_longer_than_a_sitting(path):
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES


# --- the root: the pass, readable top to bottom ---

def test_the_root_holds_the_pass_and_a_few_shared_helpers():
    root = sorted(p.stem for p in ROOT.glob("*.py"))
    assert root == ["__init__", "__main__", "batched", "config", "errors", "files", "generate", "lens", "model",
                    "npz", "run", "trace", "upcast"]


def test_the_literal_model_imports_only_its_sizes_and_the_upcast():
    assert GRAPH["reference.model"] == {"reference.config", "reference.upcast"}
    assert "cpuinfo" not in (ROOT / "model.py").read_text(encoding="utf-8")


def test_the_trace_contract_imports_no_pass():
    assert GRAPH["reference.trace"] == {"reference.config"}


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


# --- the rooms around it ---

@pytest.mark.parametrize("room", ROOMS, ids=lambda p: p.name)
def test_each_room_says_in_its_init_docstring_what_it_is_for(room):
    doc = ast.get_docstring(ast.parse((room / "__init__.py").read_text(encoding="utf-8")))
    assert doc and len(doc.split()) >= 12, f"{room.name}/__init__.py: say what the room is for"


def test_only_the_command_line_imports_argparse():
    users = {module_name(f) for f in FILES if "argparse" in third_party_imports(f)}
    assert users and all(m.startswith("reference.cli") for m in users), users


def test_checkpoint_formats_do_not_import_one_another():
    peers = {"reference.formats.meta", "reference.formats.hf", "reference.formats.gguf"}  # gguf is a package

    def peer_of(module: str) -> str | None:
        return next((p for p in peers if module == p or module.startswith(p + ".")), None)

    assert {peer_of(m) for m in GRAPH} >= peers
    for module, targets in GRAPH.items():
        if peer_of(module):
            others = {t for t in targets if peer_of(t) not in (None, peer_of(module))}
            assert not others, f"{module} imports {others}"


def test_the_checker_imports_no_checkpoint_loader_only_the_formats_face_and_the_layout():
    allowed = {"reference.formats", "reference.formats.layout", "reference.formats.hub"}
    for module, targets in GRAPH.items():
        if module.startswith("reference.check"):
            loaders = {t for t in targets if t.startswith("reference.formats")} - allowed
            assert not loaders, f"{module} imports {loaders}"


def test_nothing_below_the_command_line_imports_it():
    for module, targets in GRAPH.items():
        if not module.startswith("reference.cli") and module != "reference.__main__":
            assert not {t for t in targets if t.startswith("reference.cli")}, f"{module} imports the CLI"
