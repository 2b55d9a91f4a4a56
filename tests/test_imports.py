"""The package's modules import each other one way: no cycles, no private names across modules.

Every import counts, at module level or inside a function (a function-level import is still a dependency);
only imports under ``if TYPE_CHECKING:`` (annotations) are left out.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bayes_scaling"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _known_modules() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _imports(path: Path, known: dict[str, Path]) -> list[tuple[str, str, int]]:
    """(imported module, imported name or '', line) for each runtime import of a package module in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for n in ast.walk(node))
    out = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, "", node.lineno) for a in node.names if a.name.split(".")[0] == "bayes_scaling"]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bayes_scaling":
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                if submodule in known:  # ``from bayes_scaling import plots`` imports the module plots
                    out.append((submodule, "", node.lineno))
                else:
                    out.append((node.module, alias.name, node.lineno))
    return out


def _graph() -> dict[str, set[str]]:
    known = _known_modules()
    return {name: {m for m, _, _ in _imports(path, known)} - {name} for name, path in known.items()}


def test_no_module_imports_the_package_root():
    """Only ``__init__`` may import from ``bayes_scaling`` itself: it re-exports everything, so any other module
    doing so depends on every module."""
    known = _known_modules()
    offenders = [f"{name}:{line} imports {name_!r} from the package root"
                 for name, path in known.items() if name != "bayes_scaling"
                 for module, name_, line in _imports(path, known) if module == "bayes_scaling"]
    assert not offenders, "\n".join(offenders)


def test_no_private_names_imported_across_modules():
    known = _known_modules()
    offenders = [f"{name}:{line} imports {module}.{imported}"
                 for name, path in known.items()
                 for module, imported, line in _imports(path, known)
                 if imported.startswith("_") and module != name]
    assert not offenders, "\n".join(offenders)


def test_module_imports_form_no_cycle():
    graph = _graph()
    graph["bayes_scaling"] = set()  # the package root only re-exports (checked above: nobody imports it)
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            raise AssertionError("import cycle: " + " -> ".join(cycle))


def test_the_walker_sees_function_level_imports_and_skips_type_checking(tmp_path):
    """The checks above can fail: a function-level import counts, an annotation-only import does not."""
    source = tmp_path / "mod.py"
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from bayes_scaling.posterior import Fit\n"
        "def f():\n    from bayes_scaling.fitting import _hidden\n    from bayes_scaling import plots\n"
    )
    known = {**_known_modules()}
    found = _imports(source, known)
    assert ("bayes_scaling.fitting", "_hidden", 5) in found
    assert ("bayes_scaling.plots", "", 6) in found
    assert not any(m == "bayes_scaling.posterior" for m, _, _ in found)


def test_readme_module_map_matches_the_tree():
    """Every module of the package has a row in the README's layout table, and every row names a module."""
    import re

    readme = (PACKAGE.parent / "README.md").read_text(encoding="utf-8")
    layout = readme[readme.index("## Layout"):]
    rows = set(re.findall(r"^\| `([\w/]+(?:\.py)?)` \|", layout, flags=re.MULTILINE))
    tree = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    tree |= {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert rows == tree, f"README lacks {sorted(tree - rows)}; README names missing {sorted(rows - tree)}"
