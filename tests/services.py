"""Real services a test needs: skip with the reason, or fail under CI (``CI=true``).

A module of its own, not ``conftest``: a test imports it by name, and a folder's
own ``conftest.py`` would shadow the suite's.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest


def require_service(available: bool, reason: str) -> None:
    """Skip (or fail under CI) when a real service the test needs is missing."""
    if available:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: every back end must be tested)")
    pytest.skip(reason)


# -- S3 through moto's server ------------------------------------------------------------

#: What every test's S3 client signs with (moto accepts any) and the region it names.
S3_CREDENTIALS = {"key": "testing", "secret": "testing"}
S3_REGION = "us-east-1"
AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": S3_CREDENTIALS["key"],
    "AWS_SECRET_ACCESS_KEY": S3_CREDENTIALS["secret"],
    "AWS_DEFAULT_REGION": S3_REGION,
    "AWS_REGION": S3_REGION,
}


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """Run moto's S3 API on a free port of 127.0.0.1; yield its endpoint URL.

    Skips (fails under CI) when moto's server extra is not installed. The suite
    starts one per test process (the session fixture ``s3_endpoint``).
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as exc:
        require_service(
            False, f"moto's S3 server is not installed ({exc}); pip install moto[server]"
        )
        raise  # unreachable: require_service skips or fails
    # werkzeug logs every request; keep failing tests' output readable.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str) -> Any:
    """A boto3 S3 client on ``endpoint`` with the test credentials."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=S3_CREDENTIALS["key"],
        aws_secret_access_key=S3_CREDENTIALS["secret"],
        region_name=S3_REGION,
    )


def new_bucket(endpoint: str, prefix: str, *, versioned: bool = False) -> str:
    """Create a bucket of its own (``prefix-<random>``) on the shared server; its name.

    Tests share one server per process, never a bucket they write to, so they
    stay independent in any order and on any worker.
    """
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    client = s3_client(endpoint)
    client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def s3_options(endpoint: str) -> dict[str, Any]:
    """fsspec storage options reaching ``endpoint`` with the test credentials."""
    return {**S3_CREDENTIALS, "client_kwargs": {"endpoint_url": endpoint, "region_name": S3_REGION}}
