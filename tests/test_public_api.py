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
