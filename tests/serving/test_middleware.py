"""Request ids: unique per request, the caller's id kept in front."""

from __future__ import annotations

import uuid

from shipyard.serving.middleware import request_id_for


def test_request_ids_are_random_uuid4_hex_after_the_callers_id() -> None:
    ids = {request_id_for({"headers": []}) for _ in range(2000)}
    assert len(ids) == 2000
    for rid in list(ids)[:200]:
        parsed = uuid.UUID(hex=rid)
        assert parsed.hex == rid and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
    mine = request_id_for({"headers": [(b"x-request-id", b"order-17")]})
    prefix, _, suffix = mine.partition(".")
    assert prefix == "order-17" and len(suffix) == 16
    assert request_id_for({"headers": [(b"x-request-id", b"bad id\n")]}).count(".") == 0
