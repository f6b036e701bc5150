"""One clock: ``shipyard.clock`` is the only module that reads the wall clock.

Everything else takes ``clock=`` or calls :func:`shipyard.clock.utc_now`, so
a test can move time by hand and every record is stamped the same way.
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

from shipyard.clock import ManualClock, utc_now

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "shipyard"
#: ``datetime.now(...)``, ``datetime.utcnow()``, ``datetime.today()`` and ``date.today()``.
WALL_CLOCK_CALLS = {("datetime", "now"), ("datetime", "utcnow"), ("datetime", "today")}
WALL_CLOCK_CALLS |= {("date", "today")}


def wall_clock_reads(source: str) -> list[int]:
    """Line numbers of calls reading the wall clock (docstrings and comments are not code)."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
            if (name, node.func.attr) in WALL_CLOCK_CALLS:
                lines.append(node.lineno)
    return lines


def test_only_the_clock_module_reads_the_wall_clock() -> None:
    found = [
        f"{path.relative_to(PACKAGE)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path.name != "clock.py" or path.parent != PACKAGE
        for line in wall_clock_reads(path.read_text(encoding="utf-8"))
    ]
    assert found == []


def test_the_check_finds_a_wall_clock_read() -> None:
    code = "from datetime import UTC, datetime\nstamp = datetime.now(UTC)\n"
    assert wall_clock_reads(code) == [2]
    assert wall_clock_reads('"""datetime.now(UTC) in a docstring"""\n') == []


def test_utc_now_is_aware_and_a_manual_clock_moves_by_hand() -> None:
    assert utc_now().tzinfo is UTC
    clock = ManualClock(datetime(2024, 5, 1, tzinfo=UTC))
    assert clock.advance(hours=1) == datetime(2024, 5, 1, 1, tzinfo=UTC)
