"""The layers of the architecture hold (README "Architecture").

Two checks over every import in ``src/shipyard``, those inside functions
included:

- import-linter's contracts in ``pyproject.toml``: a module imports
  only its own layer and the layers below it, and no stage imports the
  ``Shipyard`` client (stages take the stores they need; typing-only imports
  count too);
- no import cycle between any two modules, run-time imports only (an import
  under ``TYPE_CHECKING`` is never executed, so it cannot form one).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import grimp
import networkx as nx

REPO = Path(__file__).resolve().parents[1]


def test_every_layer_imports_only_the_layers_below_it() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(REPO / "pyproject.toml"), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout, result.stdout


def module_cycles(package: str) -> list[list[str]]:
    graph = grimp.build_graph(package, exclude_type_checking_imports=True)
    imports = nx.DiGraph()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            imports.add_edge(module, imported)
    return sorted(sorted(c) for c in nx.strongly_connected_components(imports) if len(c) > 1)


def test_no_module_imports_itself_through_others() -> None:
    assert module_cycles("shipyard") == []


def test_the_cycle_check_sees_imports_inside_functions(tmp_path: Path, monkeypatch) -> None:
    # A check that cannot fail proves nothing: a cycle closed only inside a
    # function must be found.
    pkg = tmp_path / "cyclepkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from cyclepkg import b\n")
    (pkg / "b.py").write_text("def late():\n    from cyclepkg import a\n    return a\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert module_cycles("cyclepkg") == [["cyclepkg.a", "cyclepkg.b"]]
