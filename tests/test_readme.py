"""The README is the user's manual: it stays inside the repository and speaks in the
project's own terms, and its "Architecture" section names every package and layer."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
PACKAGE = REPO / "src" / "shipyard"


def architecture() -> str:
    start = README.index("\n## Architecture\n")
    return README[start : README.index("\n## ", start + 1)]


def test_links_and_images_point_inside_the_repository() -> None:
    targets = re.findall(r"\]\(([^)\s]+)\)", README)
    assert targets, "the README links nothing: the check would prove nothing"
    outside = [
        t for t in targets if not t.startswith("#") and not (REPO / t.split("#")[0]).is_file()
    ]
    assert outside == []


def test_the_readme_speaks_in_the_projects_own_terms() -> None:
    # It once spoke to readers of a course ("the course's request", "the lesson").
    assert re.findall(r"(?i)\b(?:course|lesson)s?\b", README) == []


def test_architecture_has_a_sentence_for_every_package() -> None:
    packages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    section = architecture()
    assert [p for p in packages if f"**{p}/**" not in section] == []


def test_architecture_lists_every_layer_of_the_layer_contract() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    [layers] = [
        c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["id"] == "layers"
    ]
    # The diagram: the section's indented lines, one layer a line, top first.
    diagram = [line.split() for line in architecture().splitlines() if line.startswith("    ")]
    named = {word.strip(",") for line in diagram for word in line}
    missing = [
        module
        for layer in layers
        for module in (m.strip().removeprefix("shipyard.") for m in layer.split(":"))
        if not module.startswith("_") and module not in named
    ]
    assert diagram and missing == []
