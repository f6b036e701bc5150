"""The shape of the code: how big each package is, and how tangled.

Prints, for ``src/shipyard`` (or the tree given with ``--src``):

- files and lines per package (each subpackage; the top-level modules together);
- the largest class, in lines;
- import cycles among shipyard's packages. Every import statement counts,
  module-level or inside a function (a function-level import is a dependency
  all the same, only a later one); imports under ``if TYPE_CHECKING:`` are
  counted apart, as they never run. A top-level module (``config.py``,
  ``_client.py``...) is a package of its own here.

    .venv/bin/python bench/code_shape.py
    .venv/bin/python bench/code_shape.py --src /tmp/before-src/src/shipyard
"""

from __future__ import annotations

import argparse
import ast
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

REPO_DIR = Path(__file__).resolve().parent.parent
ROOT = "shipyard"
TOP_LEVEL = "(top-level modules)"


@dataclass
class Shape:
    files: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    lines: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    largest_class: tuple[int, str] = (0, "")
    runtime_edges: set[tuple[str, str]] = field(default_factory=set)
    type_checking_edges: set[tuple[str, str]] = field(default_factory=set)


def module_name(path: Path, src: Path) -> str:
    parts = [ROOT, *path.relative_to(src).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str, src: Path) -> str:
    """``shipyard.store.db`` -> ``store``; ``shipyard.config`` -> ``config``;
    ``shipyard.__version__`` (a name in ``shipyard/__init__.py``) -> ``__init__``."""
    parts = module.split(".")
    if len(parts) > 1 and ((src / parts[1]).is_dir() or (src / f"{parts[1]}.py").is_file()):
        return parts[1]
    return "__init__"


def is_type_checking_block(node: ast.AST) -> bool:
    if not isinstance(node, ast.If):
        return False
    test = node.test
    name = test.attr if isinstance(test, ast.Attribute) else getattr(test, "id", "")
    return name == "TYPE_CHECKING"


def imported_modules(tree: ast.Module, module: str, is_package: bool) -> list[tuple[str, bool]]:
    """(imported module, under TYPE_CHECKING) for every import in the file."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = type_checking or is_type_checking_block(child)
            if isinstance(child, ast.Import):
                found.extend((alias.name, inside) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:  # relative: resolve against this module's package
                    anchor = module.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                # `from shipyard import store` imports the package store
                found.extend((f"{base}.{alias.name}", inside) for alias in child.names)
            visit(child, inside)

    visit(tree, False)
    return found


def measure(src: Path) -> Shape:
    shape = Shape()
    for path in sorted(src.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        relative = path.relative_to(src)
        package = relative.parts[0] if len(relative.parts) > 1 else TOP_LEVEL
        shape.files[package] += 1
        shape.lines[package] += len(text.splitlines())
        tree = ast.parse(text, filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                if size > shape.largest_class[0]:
                    shape.largest_class = (size, f"{relative}::{node.name}")
        module = module_name(path, src)
        source = package_of(module, src)
        for target, type_checking in imported_modules(tree, module, path.name == "__init__.py"):
            if target != ROOT and not target.startswith(f"{ROOT}."):
                continue
            destination = package_of(target, src)
            if destination == source:
                continue
            edges = shape.type_checking_edges if type_checking else shape.runtime_edges
            edges.add((source, destination))
    return shape


def cycles(edges: set[tuple[str, str]]) -> tuple[list[list[str]], int, list[tuple[str, str]]]:
    """(tangles: packages that reach each other, simple cycles, pairs importing each other)."""
    graph = nx.DiGraph(edges)
    tangles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    simple = sum(1 for _ in nx.simple_cycles(graph))
    pairs = sorted((a, b) for a, b in edges if a < b and (b, a) in edges)
    return tangles, simple, pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=REPO_DIR / "src" / ROOT)
    args = parser.parse_args()
    shape = measure(args.src)

    print(f"\nCode shape of {args.src}")
    print("| package | files | lines |")
    print("|---|---|---|")
    for package in sorted(shape.files, key=lambda p: (p == TOP_LEVEL, p)):
        print(f"| {package} | {shape.files[package]} | {shape.lines[package]} |")
    print(f"| total | {sum(shape.files.values())} | {sum(shape.lines.values())} |")
    size, name = shape.largest_class
    print(f"\nLargest class: {name}, {size} lines")

    counted = {
        "run-time imports (module- and function-level)": shape.runtime_edges,
        "with TYPE_CHECKING imports too": shape.runtime_edges | shape.type_checking_edges,
    }
    for label, edges in counted.items():
        tangles, simple, pairs = cycles(edges)
        print(f"\nImport cycles among packages, {label}:")
        print(f"  simple cycles: {simple}")
        print(f"  packages importing each other: {len(pairs)} pairs")
        for a, b in pairs:
            print(f"    {a} <-> {b}")
        print(f"  tangles (packages that all reach each other): {len(tangles)}")
        for tangle in tangles:
            print(f"    {len(tangle)}: {', '.join(tangle)}")


if __name__ == "__main__":
    main()
