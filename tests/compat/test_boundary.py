"""Private attributes of libraries are used only inside tunelab.compat, where tests pin them down.

An ``obj._name`` outside compat/ whose ``_name`` tunelab itself never defines is a library's private
attribute (``trainer._prepare_inputs``, ``config._attn_implementation``); so is an import from a
private module (``torch.utils._pytree``). Either one belongs in a compat function with a test.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "tunelab"
FILES = [p for p in SRC.rglob("*.py") if "compat" not in p.relative_to(SRC).parts]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _ours() -> set[str]:
    """Private names tunelab defines outside compat/: functions, classes, attributes it assigns, globals.

    Limitation: assigning a library's private attribute (``self._created_lr_scheduler = True``)
    makes it look like ours; compat/ is left out so that its own assignments do not hide such uses.
    """
    names: set[str] = set()
    for path in FILES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                names.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for target in targets:
                    for leaf in ast.walk(target):
                        if isinstance(leaf, ast.Attribute):
                            names.add(leaf.attr)
                        elif isinstance(leaf, ast.Name):
                            names.add(leaf.id)
            elif isinstance(node, ast.alias):
                names.add(node.asname or node.name.split(".")[-1])
    return {n for n in names if _private(n)}


def test_library_private_attributes_only_in_compat() -> None:
    ours = _ours()
    found = []
    for path in FILES:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in ours:
                found.append(f"{path.relative_to(SRC.parent)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.ImportFrom) and node.module and not node.module.startswith("tunelab"):
                if any(_private(part) for part in node.module.split(".")):
                    found.append(f"{path.relative_to(SRC.parent)}:{node.lineno} from {node.module}")
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value == "_fingerprint"
            ):
                found.append(f"{path.relative_to(SRC.parent)}:{node.lineno} getattr(..., '_fingerprint')")
    assert not found, "private library attributes outside tunelab.compat:\n" + "\n".join(found)


def test_the_check_sees_a_private_library_attribute() -> None:
    tree = ast.parse("flatten = packing_mode(model.config._attn_implementation)")
    attrs = [n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and _private(n.attr)]
    assert attrs == ["_attn_implementation"] and "_attn_implementation" not in _ours()
