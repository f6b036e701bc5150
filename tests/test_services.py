"""The suite's real services (tests/services.py, tests/conftest.py): one S3 server per process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from services import moto_s3_server, new_bucket, s3_client

TESTS = Path(__file__).parent


def test_no_test_module_starts_a_moto_server_of_its_own() -> None:
    """moto's server starts once per test process (the session fixture ``s3_endpoint``);
    a module starting its own pays the start-up again and leaves one more thread."""
    own = sorted(
        str(path.relative_to(TESTS))
        for path in TESTS.rglob("*.py")
        if path.name != "services.py"
        and path != Path(__file__)
        and "ThreadedMotoServer(" in path.read_text()
    )
    assert own == []


def test_tests_share_the_server_but_not_buckets(s3_endpoint: str) -> None:
    first, second = new_bucket(s3_endpoint, "a"), new_bucket(s3_endpoint, "a")
    assert first != second
    client = s3_client(s3_endpoint)
    client.put_object(Bucket=first, Key="k", Body=b"one")
    assert client.list_objects_v2(Bucket=second).get("KeyCount") == 0


@pytest.mark.parametrize(
    ("ci", "outcome"), [("", pytest.skip.Exception), ("true", pytest.fail.Exception)]
)
def test_without_moto_the_server_skips_with_the_reason_or_fails_under_ci(
    ci: str, outcome: type[BaseException], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setitem(sys.modules, "moto.server", None)  # import moto.server raises
    with pytest.raises(outcome, match=r"moto's S3 server is not installed"):  # noqa: SIM117
        with moto_s3_server():
            pass
