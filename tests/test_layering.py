"""The layering rules of docs/architecture.md, checked on the source by parsing every import with ``ast``.

interface (cli, webui, ...) -> features (train, tune, evaluate, infer, export, quality) -> base (config,
data, model, runs) -> foundation (compat, distributed, errors, ...); no cycle between packages (so none
between train and evaluate); nothing under config/, data/ or runs/ imports torch when imported
(``tunelab --help`` and the web UI start fast); only distributed.py reads rank variables or calls
collectives. The document's layer table must name every package in the layer used here.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
UI = {"__init__", "__main__", "cli", "demo", "envinfo", "launch", "webui"}
FEATURES = {"train", "tune", "evaluate", "infer", "export", "quality"}
BASE = {"config", "data", "model", "runs"}
FOUNDATION = {"compat", "distributed", "errors", "error_texts", "quiet", "cli_text", "_callable", "resources"}
LAYERS = {"interface": UI, "features": FEATURES, "base": BASE, "foundation": FOUNDATION}
LIGHT = {"config", "data", "runs"}
HEAVY = {"torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "deepspeed"}


@dataclass(frozen=True)
class Import:
    source: str  # importing module, e.g. tunelab.train.runner
    target: str  # imported module
    line: int
    at_import_time: bool  # module level or class body, outside `if TYPE_CHECKING:`


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(SRC).with_suffix("").parts)
    return name.removesuffix(".__init__")


MODULES = {_module_name(p): p for p in (SRC / "tunelab").rglob("*.py")}


def _targets(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level or not node.module:
        return []
    # `from tunelab.model import value_head` imports the submodule too
    return [node.module] + [
        f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES
    ]


def _imports(module: str) -> list[Import]:
    found: list[Import] = []

    def visit(node: ast.AST, eager: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.extend(Import(module, t, child.lineno, eager) for t in _targets(child))
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                visit(child, False)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(child, False)
            else:
                visit(child, eager)

    visit(ast.parse(MODULES[module].read_text(encoding="utf-8")), True)
    return found


IMPORTS = [imp for module in sorted(MODULES) for imp in _imports(module)]


def _package(module: str) -> str:
    """tunelab.train.runner -> train; tunelab.errors -> errors; tunelab (its __init__) -> __init__."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _where(imp: Import) -> str:
    return f"{MODULES[imp.source].relative_to(SRC)}:{imp.line} imports {imp.target}"


def _internal(imp: Import) -> bool:
    return imp.target.startswith("tunelab.") and _package(imp.target) != _package(imp.source)


def test_the_scan_sees_the_imports_it_checks() -> None:
    """Guards the checker itself: known imports of each kind are found."""
    pairs = {(i.source, i.target, i.at_import_time) for i in IMPORTS}
    assert ("tunelab.train.runner", "torch", True) in pairs
    assert ("tunelab.train.runner", "tunelab.runs.rundir", True) in pairs
    assert any(s == "tunelab.cli" and _package(t) in FEATURES and not eager for s, t, eager in pairs)


def test_every_package_has_one_layer_and_the_document_agrees() -> None:
    packages = {_package(m) for m in MODULES}
    placed = [name for layer in LAYERS.values() for name in layer]
    assert sorted(packages) == sorted(placed), (
        "a package in no layer (or in two), or a layer naming a gone one"
    )
    documented = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0] in LAYERS:
            documented[cells[0]] = set(re.findall(r"`([^`]+)`", cells[1]))
    assert documented == LAYERS, f"the layer table of {DOC.name} differs from this test's layers"


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [(FOUNDATION, BASE | FEATURES | UI), (BASE, FEATURES | UI), (FEATURES, UI)],
    ids=["foundation", "base", "features"],
)
def test_imports_point_one_way(layer: set[str], forbidden: set[str]) -> None:
    wrong = [
        _where(i)
        for i in IMPORTS
        if _internal(i) and _package(i.source) in layer and _package(i.target) in forbidden
    ]
    assert not wrong, "an import against the layering of docs/architecture.md:\n" + "\n".join(wrong)


def test_no_cycle_between_packages() -> None:
    """Lazy imports count too: a cycle through a function-level import is still a cycle (train <-> evaluate)."""
    graph: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if _internal(imp):
            graph.setdefault(_package(imp.source), set()).add(_package(imp.target))

    def cycle_from(start: str) -> list[str] | None:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for nxt in graph.get(node, ()):
                if nxt == start:
                    return [*path, start]
                if nxt not in path:
                    stack.append((nxt, [*path, nxt]))
        return None

    cycles = [c for p in sorted(graph) if (c := cycle_from(p))]
    examples = {
        " -> ".join(c): [
            _where(i)
            for i in IMPORTS
            if _internal(i) and (_package(i.source), _package(i.target)) in zip(c, c[1:])
        ]
        for c in cycles
    }
    assert not cycles, f"package import cycles: {examples}"


def _loaded_by(module: str) -> set[str]:
    """Every tunelab module that importing ``module`` runs (its parents included), transitively."""
    eager: dict[str, set[str]] = {}
    for imp in IMPORTS:
        if imp.at_import_time:
            eager.setdefault(imp.source, set()).add(imp.target)
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for candidate in [".".join(parts[:n]) for n in range(1, len(parts) + 1)]:
            if candidate in MODULES and candidate not in seen:
                seen.add(candidate)
                todo.extend(t for t in eager.get(candidate, ()) if t.startswith("tunelab"))
    return seen


@pytest.mark.parametrize("package", sorted(LIGHT))
def test_light_packages_do_not_import_torch_at_import_time(package: str) -> None:
    heavy = []
    for module in sorted(m for m in MODULES if _package(m) == package):
        loaded = _loaded_by(module)
        heavy += [
            f"{module}: {_where(i)}"
            for i in IMPORTS
            if i.at_import_time and i.source in loaded and i.target.split(".")[0] in HEAVY
        ]
    assert not heavy, "torch (or a library that imports it) at import time:\n" + "\n".join(sorted(set(heavy)))


# what a launcher tells each process about its place (NODE_RANK & co. are the launcher's own inputs)
RANK_VARIABLES = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"}
COLLECTIVES = {
    "all_gather",
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast",
    "broadcast_object_list",
    "destroy_process_group",
    "gather",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_initialized",
    "new_group",
    "reduce",
    "scatter",
}


def test_only_distributed_reads_ranks_and_calls_collectives() -> None:
    """Rank logic in one place (distributed.py): elsewhere a rank variable's name or a torch.distributed
    collective is a second, drifting copy of it. torch's launcher itself (launch.py) is not a collective;
    tunelab.distributed's own functions are what feature code is meant to call."""
    wrong = []
    for module, path in sorted(MODULES.items()):
        if module == "tunelab.distributed":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            line = getattr(node, "lineno", 0)
            if isinstance(node, ast.Constant) and node.value in RANK_VARIABLES:  # os.environ["RANK"] & co.
                wrong.append(f"{path.relative_to(SRC)}:{line} reads {node.value}")
            elif isinstance(node, ast.Attribute) and node.attr in COLLECTIVES:
                owner = ast.unparse(node.value)  # torch.distributed.x / dist.x, not tunelab's distributed.x
                if owner.endswith("torch.distributed") or owner == "dist":
                    wrong.append(f"{path.relative_to(SRC)}:{line} calls {owner}.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch.distributed"):
                wrong += [
                    f"{path.relative_to(SRC)}:{line} imports {node.module}.{a.name}"
                    for a in node.names
                    if a.name in COLLECTIVES
                ]
    assert not wrong, "rank logic outside tunelab/distributed.py (ask it instead):\n" + "\n".join(wrong)
