"""The floors of docs/architecture.md: a package imports only the floors below it."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("dfseg", "prototxt_gen", "pop", "solvers", "tools")

# package (or subpackage) -> dfseg packages it may import besides itself
ALLOWED = {
    "dfseg.base": set(),
    "dfseg": set(),
    "prototxt_gen": {"dfseg.base"},
    "tools": {"tools", "prototxt_gen"},
    "pop": {"prototxt_gen", "tools"},
    "solvers": {"prototxt_gen", "tools", "pop"},
}


def _owner(module: str) -> str:
    return "dfseg.base" if module.startswith("dfseg.base") else module.split(".")[0]


def _dfseg_imports(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield node.lineno, name


def _package_files():
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            module = ".".join(path.relative_to(REPO).with_suffix("").parts)
            yield _owner(module), path


def test_each_package_imports_only_lower_floors():
    bad = []
    for owner, path in _package_files():
        allowed = ALLOWED[owner] | {owner}
        for line, name in _dfseg_imports(path):
            target = _owner(name)
            # dfseg.base is floor 0: everyone may import it; tools.X may import tools.Y
            if target in allowed or target == "dfseg.base" or (owner == "tools" and target == "tools"):
                continue
            bad.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    assert not bad, "imports against docs/architecture.md:\n" + "\n".join(bad)


def test_floor_zero_imports_nothing_of_dfseg():
    for path in sorted((REPO / "dfseg" / "base").glob("*.py")):
        outside = [n for _, n in _dfseg_imports(path) if not n.startswith("dfseg.base")]
        assert not outside, f"{path.name} imports {outside}"


# dfseg imports that must stay inside a function, with the reason
LAZY_ON_PURPOSE = {
    ("solvers/runner.py", "data_layers"): "subclasses caffe.Layer: importing it imports pycaffe",
}


def test_dfseg_imports_sit_at_module_top():
    inner = []
    for _, path in _package_files():
        rel = str(path.relative_to(REPO))
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (
                        node.level > 0 or (node.module or "").split(".")[0] in PACKAGES):
                    names = {node.module} | {a.name for a in node.names}
                    if not any((rel, n) in LAZY_ON_PURPOSE for n in names):
                        inner.append(f"{rel}:{node.lineno} imports {node.module or names} inside {fn.name}")
    assert not inner, "imports inside functions (docs/architecture.md, Imports):\n" + "\n".join(inner)


def test_modules_and_functions_stay_small():
    """issue 13's rule: no module over 400 lines, no function over 60 (the generated schema aside)."""
    big = []
    for _, path in _package_files():
        if path.name == "caffe_pb2.py":
            continue
        text = path.read_text()
        if len(text.splitlines()) > 400:
            big.append(f"{path.relative_to(REPO)}: {len(text.splitlines())} lines")
        for fn in ast.walk(ast.parse(text)):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn.end_lineno - fn.lineno >= 60:
                big.append(f"{path.relative_to(REPO)}:{fn.lineno} {fn.name}: {fn.end_lineno - fn.lineno + 1} lines")
    assert not big, "\n".join(big)
