"""The package's layout: no import cycles, no upward imports, small modules, only the core path at the top."""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

from tests.paths import KD

SPLIT_HINT_LINES = 200  # past this a module is worth a look: does it hold more than one concern?
MAX_LINES = 400  # past this it does: split it by concern (never squeeze it to fit)
# The training core, importable as kd.<name>; everything else lives in a sub-package.
TOP_LEVEL = {"run", "job", "training", "module", "model_outputs", "taps", "metrics", "callbacks", "schedules", "finite", "cost", "errors", "task", "teacher_source"}
# Each unit may import only from units of its own layer or below (lowest first).
LAYERS = [
    {"kd.errors", "kd.task", "kd.utils", "kd.launch"},
    {"kd.model_outputs", "kd.teacher_source", "kd.config"},
    {"kd.taps", "kd.schedules", "kd.finite", "kd.cost", "kd.metrics", "kd.models"},
    {"kd.data", "kd.losses", "kd.lm"},
    {"kd.module", "kd.callbacks"},
    {"kd.training"},
    {"kd.teacher"},
    {"kd.jobs"},
    {"kd.report", "kd.export"},
    {"kd.run", "kd.job"},
]


def modules() -> dict[str, Path]:
    found = {}
    for path in KD.rglob("*.py"):
        name = ".".join(path.relative_to(KD.parent).with_suffix("").parts).removesuffix(".__init__")
        found[name] = path
    return found


def imports(path: Path, known: set[str]) -> set[str]:
    """The kd modules ``path`` imports (at any depth of the file, lazy imports included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        out |= {name for name in names if name in known and name != "kd"}
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports(path, set(mods)) - {name} for name, path in mods.items()}


def layer_of(module: str) -> int:
    for rank, units in enumerate(LAYERS):
        if any(module == unit or module.startswith(unit + ".") for unit in units):
            return rank
    raise AssertionError(f"{module} belongs to no layer; add it to LAYERS in tests/test_layout.py")


def test_no_import_cycles() -> None:
    edges = graph()
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            assert state.get(nxt) != 1, f"import cycle: {' -> '.join([*path, node, nxt])}"
            if nxt not in state:
                visit(nxt, [*path, node])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [])


def test_no_upward_imports() -> None:
    upward = [f"{a} -> {b}" for a, targets in graph().items() if a != "kd" for b in targets if layer_of(b) > layer_of(a)]
    assert upward == []


def test_modules_are_small() -> None:
    sizes = {name: len(path.read_text().splitlines()) for name, path in modules().items()}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}
    if large := {name: n for name, n in sizes.items() if n > SPLIT_HINT_LINES}:
        warnings.warn(f"modules over {SPLIT_HINT_LINES} lines (split by concern where they hold several): {large}",
                      stacklevel=2)


def test_top_level_holds_the_core_path_and_sub_packages() -> None:
    assert {p.stem for p in KD.glob("*.py")} - {"__init__"} == TOP_LEVEL
    packages = {p.name for p in KD.iterdir() if (p / "__init__.py").is_file()}
    assert packages == {"config", "data", "launch", "losses", "models", "lm", "teacher", "jobs", "report", "export", "utils"}
    for package in packages:  # each says what it holds
        assert ast.get_docstring(ast.parse((KD / package / "__init__.py").read_text())), package


def test_tests_mirror_the_package_layout() -> None:
    """tests/<package>/ holds the tests of kd/<package>/ (tests/benchmarks/ those of benchmarks/); tests/ itself
    those of the top-level modules and of the whole repository; tests/fixtures/ the files they read."""
    tests = KD.parent / "tests"
    folders = {p.name for p in tests.iterdir() if p.is_dir() and p.name not in ("fixtures", "__pycache__")}
    packages = {p.name for p in KD.iterdir() if (p / "__init__.py").is_file()}
    assert folders <= packages | {"benchmarks"}
    assert all((tests / folder / "__init__.py").is_file() for folder in folders)


def test_the_layer_test_sees_an_upward_import(tmp_path: Path) -> None:
    """The checks above would catch a data module importing the teacher-output cache (as one once did)."""
    bad = tmp_path / "batches.py"
    bad.write_text("from kd.teacher.cache_files import read_entry\n")
    (target,) = imports(bad, set(modules()))
    assert layer_of(target) > layer_of("kd.data.batches")
