"""The floors of docs/architecture.md, read from every module's imports with `ast`.

floor 0  dfseg.base (and the bare dfseg package)     floor 3  pop
floor 1  prototxt_gen                                 floor 4  solvers
floor 2  tools.<subpackage>, each one a unit          floor 5  commands

A *command module* defines a top-level ``main()``, is a ``__main__.py``, or belongs to the
``dfseg`` command (every ``dfseg`` module outside ``dfseg.base``).  The rules:

- no upward import: a module imports only its own floor or lower ones;
- no library (floors 0-4) imports a command module, and no command imports another one
  (what they share belongs in a library) unless it dispatches to it (``dfseg``, ``__main__``);
- no import cycle between the units of floor 2 (``tools.engines``, ``tools.data``, ...);
- ``tools/`` itself holds commands only: a library directly in it is a unit of its own and
  an error (it belongs in a subpackage);
- no library names a higher floor, or a command, in a string (``"solvers.data_layers"``,
  ``"module:Class"``): such a string is an import the other rules cannot see.

Each rule is a function of a source tree, so the tests at the bottom run them on small fake
trees and show that every rule can fail.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("dfseg", "prototxt_gen", "pop", "solvers", "tools")
FLOORS = {"dfseg": 0, "prototxt_gen": 1, "tools": 2, "pop": 3, "solvers": 4}
COMMAND_FLOOR = 5
_DOTTED = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+(?::[A-Za-z_]\w*)?")


@dataclass(frozen=True)
class Module:
    name: str
    rel: str
    tree: ast.Module
    is_package: bool

    @property
    def command(self) -> bool:
        if self.name.split(".")[-1] == "__main__":
            return True
        if self.name.split(".")[0] == "dfseg" and self.name != "dfseg" and not self.name.startswith("dfseg.base"):
            return True
        return any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == "main"
                   for n in self.tree.body)

    @property
    def floor(self) -> int:
        return COMMAND_FLOOR if self.command else FLOORS[self.name.split(".")[0]]

    @property
    def unit(self) -> str:
        """What the rules track as one piece: a command itself, a tools subpackage (or a
        module directly in tools/), else the top-level package (dfseg.base apart)."""
        parts = self.name.split(".")
        if self.command:
            return self.name
        if parts[0] == "tools":
            return ".".join(parts[:2])
        return "dfseg.base" if self.name.startswith("dfseg.base") else parts[0]


def load_tree(root: Path) -> dict[str, Module]:
    """Every module of the packages.  A .py file in a folder without ``__init__.py`` is data,
    not a module (tools/gpu/kit/: files copied to another machine, run without dfseg)."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if not all((root.joinpath(*parts[:n]) / "__init__.py").is_file() for n in range(1, len(parts))):
                continue
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            modules[name] = Module(name, str(path.relative_to(root)), ast.parse(path.read_text(), str(path)),
                                   is_package)
    return modules


def _resolve(dotted: str, modules: dict[str, Module]) -> str | None:
    """The module a dotted name is, or lies in (an attribute of a module): its longest prefix
    that is a module of the tree."""
    parts = dotted.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in modules:
            return ".".join(parts[:n])
    return None


def imports(module: Module, modules: dict[str, Module]) -> list[tuple[int, str]]:
    """(line, imported module) of every dfseg import anywhere in `module`, relative ones
    resolved; ``from pkg import name`` counts as importing ``pkg.name`` when that is a module."""
    found = []
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.name.split(".") if module.is_package else module.name.split(".")[:-1]
                anchor = package[:len(package) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for name in dict.fromkeys(names):
            target = _resolve(name, modules) if name.split(".")[0] in PACKAGES else None
            if target is not None and target != module.name:
                found.append((node.lineno, target))
    return found


def upward_imports(modules: dict[str, Module]) -> list[str]:
    bad = []
    for module in modules.values():
        for line, target in imports(module, modules):
            if modules[target].floor > module.floor:
                bad.append(f"{module.rel}:{line} (floor {module.floor}) imports {target} "
                           f"(floor {modules[target].floor})")
    return bad


def library_imports_of_commands(modules: dict[str, Module]) -> list[str]:
    return [f"{module.rel}:{line} imports the command module {target}"
            for module in modules.values() if not module.command
            for line, target in imports(module, modules) if modules[target].command]


def commands_imported_as_libraries(modules: dict[str, Module]) -> list[str]:
    """A command that imports another command uses it as a library; only a dispatcher (the
    ``dfseg`` command, a ``__main__.py``) may import a command, to run its ``main``."""
    bad = []
    for module in modules.values():
        if not module.command or module.name.endswith("__main__") or module.name.split(".")[0] == "dfseg":
            continue
        bad += [f"{module.rel}:{line} imports the command module {target} (move what it shares into a library)"
                for line, target in imports(module, modules) if modules[target].command]
    return bad


def tools_unit_cycles(modules: dict[str, Module]) -> list[str]:
    """Every cycle between floor-2 units, as the units on it and one import per edge."""
    edges: dict[str, dict[str, str]] = {}
    for module in modules.values():
        if module.floor != 2:
            continue
        for line, target in imports(module, modules):
            other = modules[target]
            if other.floor == 2 and other.unit != module.unit:
                edges.setdefault(module.unit, {}).setdefault(other.unit, f"{module.rel}:{line} -> {target}")
    cycles = []
    for component in _strongly_connected(edges):
        if len(component) > 1:
            shown = [why for a in sorted(component) for b, why in sorted(edges.get(a, {}).items()) if b in component]
            cycles.append(f"cycle between {', '.join(sorted(component))}: " + "; ".join(shown))
    return cycles


def _strongly_connected(edges: dict[str, dict[str, str]]) -> list[set[str]]:
    """Tarjan's algorithm (the graphs here have a dozen nodes)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for succ in edges.get(node, {}):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == node:
                    break
            components.append(component)

    nodes = set(edges) | {b for targets in edges.values() for b in targets}
    for node in sorted(nodes):
        if node not in index:
            visit(node)
    return components


def loose_tools_libraries(modules: dict[str, Module]) -> list[str]:
    return [f"{m.rel}: a library directly in tools/ (commands only there; move it into a tools subpackage)"
            for m in modules.values()
            if m.name.count(".") == 1 and m.name.startswith("tools.") and not m.is_package and not m.command]


def strings_naming_higher_floors(modules: dict[str, Module]) -> list[str]:
    """String constants that are a dotted module path (``pkg.module`` or ``pkg.module:Name``)
    of a higher floor or of a command, in a library.  A bare package name, or a dotted name
    that is no module (``pop.json``), does not count."""
    bad = []
    for module in modules.values():
        if module.command:
            continue
        for node in ast.walk(module.tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and _DOTTED.fullmatch(node.value) and node.value.split(".")[0] in PACKAGES):
                continue
            target = _resolve(node.value.split(":")[0], modules)
            if target is None or "." not in target:
                continue
            named = modules[target]
            if named.floor > module.floor:
                bad.append(f"{module.rel}:{node.lineno} (floor {module.floor}) names {node.value!r} "
                           f"(floor {named.floor}{', a command' if named.command else ''})")
    return bad


# ------------------------------------------------------------------------- this tree

TREE = load_tree(REPO)


def _report(title: str, found: list[str]) -> str:
    return f"{title} (docs/architecture.md):\n" + "\n".join(found)


def test_no_upward_import():
    assert not (bad := upward_imports(TREE)), _report("imports of a higher floor", bad)


def test_no_library_imports_a_command():
    assert not (bad := library_imports_of_commands(TREE)), _report("libraries importing commands", bad)


def test_no_command_imports_another_command():
    assert not (bad := commands_imported_as_libraries(TREE)), _report("commands used as libraries", bad)


def test_no_cycle_between_tools_subpackages():
    assert not (bad := tools_unit_cycles(TREE)), _report("import cycles on floor 2", bad)


def test_tools_top_level_holds_commands_only():
    assert not (bad := loose_tools_libraries(TREE)), _report("libraries outside the tools subpackages", bad)


def test_no_library_names_a_higher_floor_in_a_string():
    assert not (bad := strings_naming_higher_floors(TREE)), _report("strings naming a higher floor", bad)


def test_floor_zero_imports_nothing_of_dfseg():
    for module in TREE.values():
        if module.unit == "dfseg.base":
            outside = [t for _, t in imports(module, TREE) if not t.startswith("dfseg.base")]
            assert not outside, f"{module.rel} imports {outside}"


# dfseg imports that must stay inside a function, with the reason
LAZY_ON_PURPOSE = {
    ("solvers/training.py", "data_layers"): "subclasses caffe.Layer: importing it imports pycaffe",
}


def test_dfseg_imports_sit_at_module_top():
    inner = []
    for module in TREE.values():
        for fn in ast.walk(module.tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom) and (
                        node.level > 0 or (node.module or "").split(".")[0] in PACKAGES):
                    names = {node.module} | {a.name for a in node.names}
                    if not any((module.rel, n) in LAZY_ON_PURPOSE for n in names):
                        inner.append(f"{module.rel}:{node.lineno} imports {node.module or names} inside {fn.name}")
    assert not inner, "imports inside functions (docs/architecture.md, Imports):\n" + "\n".join(inner)


def test_modules_and_functions_stay_small():
    """issue 13's rule: no module over 400 lines, no function over 60 (the generated schema aside);
    every Python file of the packages, the copied GPU kit's too."""
    big = []
    for path in sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py")):
        rel = path.relative_to(REPO)
        if path.name == "caffe_pb2.py":
            continue
        text = path.read_text()
        if len(text.splitlines()) > 400:
            big.append(f"{rel}: {len(text.splitlines())} lines")
        for fn in ast.walk(ast.parse(text)):
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)) and fn.end_lineno - fn.lineno >= 60:
                big.append(f"{rel}:{fn.lineno} {fn.name}: {fn.end_lineno - fn.lineno + 1} lines")
    assert not big, "\n".join(big)


# ------------------------------------------------------------- the rules can fail

def _fake_tree(root: Path, files: dict[str, str]) -> dict[str, Module]:
    for package in PACKAGES:
        (root / package).mkdir(exist_ok=True)
        (root / package / "__init__.py").touch()
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in path.relative_to(root).parents[:-1]:
            (root / folder / "__init__.py").touch()
        path.write_text(text)
    return load_tree(root)


CLEAN = {
    "dfseg/base/sizes.py": "import re\n",
    "dfseg/cli.py": "from tools import to_x\ndef main():\n    pass\n",
    "prototxt_gen/layers.py": "from dfseg.base.sizes import x\nNAME = 'prototxt_gen.layers'\n",
    "tools/data/store.py": "from prototxt_gen import layers\nfrom . import labels\n",
    "tools/data/labels.py": "FILE = 'pop.json'\nPKG = 'solvers'\n",
    "tools/report/logs.py": "from tools.data.store import x\n",
    "tools/to_x.py": "from tools.report.logs import y\ndef main():\n    pass\n",
    "pop/search.py": "from tools.data import store\nfrom .space import z\n",
    "pop/space.py": "",
    "pop/__main__.py": "from pop.search import run\n",
    "solvers/train.py": "from pop import search\nEVALUATOR = 'solvers.train:Evaluator'\n",
}


def test_a_tree_that_keeps_the_rules_passes(tmp_path):
    tree = _fake_tree(tmp_path, CLEAN)
    assert tree["tools.to_x"].command and tree["pop.__main__"].command and tree["dfseg.cli"].command
    assert tree["tools.data.store"].unit == "tools.data" and tree["tools.data.store"].floor == 2
    for rule in (upward_imports, library_imports_of_commands, commands_imported_as_libraries,
                 tools_unit_cycles, loose_tools_libraries, strings_naming_higher_floors):
        assert rule(tree) == [], rule.__name__


def test_an_upward_import_fails(tmp_path):
    tree = _fake_tree(tmp_path, {**CLEAN, "prototxt_gen/layers.py": "from tools.data import store\n",
                                 "pop/space.py": "import solvers.train\n",
                                 "dfseg/base/sizes.py": "import prototxt_gen.layers\n"})
    bad = "\n".join(upward_imports(tree))
    assert "prototxt_gen/layers.py:1 (floor 1) imports tools.data.store (floor 2)" in bad
    assert "pop/space.py:1 (floor 3) imports solvers.train (floor 4)" in bad
    assert "dfseg/base/sizes.py:1 (floor 0) imports prototxt_gen.layers (floor 1)" in bad


def test_a_library_importing_a_command_fails(tmp_path):
    tree = _fake_tree(tmp_path, {**CLEAN, "tools/report/logs.py": "from tools import to_x\n",
                                 "pop/space.py": "def f():\n    from .__main__ import main\n"})
    bad = "\n".join(library_imports_of_commands(tree))
    assert "tools/report/logs.py:1 imports the command module tools.to_x" in bad
    assert "pop/space.py:2 imports the command module pop.__main__" in bad      # relative, in a function


def test_a_command_importing_a_command_fails(tmp_path):
    tree = _fake_tree(tmp_path, {**CLEAN, "tools/to_y.py": "from tools.to_x import helper\ndef main():\n    pass\n"})
    bad = commands_imported_as_libraries(tree)
    assert len(bad) == 1 and bad[0].startswith("tools/to_y.py:1 imports the command module tools.to_x")


def test_a_cycle_between_tools_subpackages_fails(tmp_path):
    tree = _fake_tree(tmp_path, {**CLEAN, "tools/data/labels.py": "from tools.report.logs import LogError\n"})
    bad = tools_unit_cycles(tree)
    assert len(bad) == 1 and "cycle between tools.data, tools.report" in bad[0]
    assert "tools/data/labels.py:1 -> tools.report.logs" in bad[0]


def test_a_library_directly_in_tools_fails(tmp_path):
    tree = _fake_tree(tmp_path, {**CLEAN, "tools/registry.py": "MODELS = {}\n"})
    assert [b.split(":")[0] for b in loose_tools_libraries(tree)] == ["tools/registry.py"]


def test_a_folder_without_init_holds_data_not_modules(tmp_path):
    tree = _fake_tree(tmp_path, CLEAN)
    (tmp_path / "tools" / "data" / "kit").mkdir()
    (tmp_path / "tools" / "data" / "kit" / "run.py").write_text("import solvers.train\n")
    assert "tools.data.kit.run" not in load_tree(tmp_path) and "tools.data.store" in tree


def test_a_string_naming_a_higher_floor_fails(tmp_path):
    tree = _fake_tree(tmp_path, {**CLEAN,
                                 "prototxt_gen/layers.py": "SEG_DATA_MODULE = 'solvers.train'\n",
                                 "pop/space.py": "DEFAULT = 'solvers.train:Evaluator'\n",
                                 "tools/data/labels.py": "CMD = ['-m', 'tools.to_x']\n"})
    bad = "\n".join(strings_naming_higher_floors(tree))
    assert "prototxt_gen/layers.py:1 (floor 1) names 'solvers.train' (floor 4)" in bad
    assert "pop/space.py:1 (floor 3) names 'solvers.train:Evaluator' (floor 4)" in bad
    assert "tools/data/labels.py:1 (floor 2) names 'tools.to_x' (floor 5, a command)" in bad
