"""The test tree mirrors the package; pytest needs unique test file basenames."""

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).parent


def test_test_file_basenames_are_unique() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert [n for n, c in names.items() if c > 1] == []
