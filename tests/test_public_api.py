"""The public surface: ``shipyard.__all__`` is sorted, complete and importable."""

import shipyard


def test_all_is_sorted_and_importable() -> None:
    assert shipyard.__all__ == sorted(shipyard.__all__)
    for name in shipyard.__all__:
        assert getattr(shipyard, name) is not None, name


def test_public_callables_have_docstrings() -> None:
    for name in shipyard.__all__:
        obj = getattr(shipyard, name)
        if callable(obj):
            assert obj.__doc__, f"shipyard.{name} has no docstring"


def test_every_export_has_a_home_module() -> None:
    assert sorted(shipyard._EXPORTS) == shipyard.__all__


def test_import_is_lazy() -> None:
    """``import shipyard`` must not pull in the heavy ML stack (CLI start-up time)."""
    import subprocess
    import sys

    heavy = "('pandas', 'sklearn', 'sqlalchemy')"
    code = f"import sys, shipyard; print(sorted(m for m in {heavy} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
