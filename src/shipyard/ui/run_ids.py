"""Run ids as people paste them: the full id or the 12-character prefix lists show.

A page given an id no run has looks for runs whose id starts with it: one
match redirects to that run's page under its full id, several are listed (the
prefix is ambiguous: give more characters), none is a 404 saying so.

>>> AmbiguousRunId("ab", ["ab01", "ab02"], more=False).message
"The run id prefix 'ab' matches 2 runs: give more characters."
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import HTTPException

if TYPE_CHECKING:
    from shipyard.store.run_store import RunStore

__all__ = ["MAX_LISTED", "AmbiguousRunId", "full_run_id"]

#: Runs listed for an ambiguous prefix.
MAX_LISTED = 10


class AmbiguousRunId(Exception):
    """A prefix several run ids start with (the app answers 409 with the list)."""

    def __init__(self, prefix: str, ids: list[str], *, more: bool) -> None:
        self.prefix = prefix
        self.ids = ids
        self.more = more
        count = f"more than {len(ids)}" if more else str(len(ids))
        self.message = f"The run id prefix {prefix!r} matches {count} runs: give more characters."
        super().__init__(self.message)


def full_run_id(runs: RunStore, given: str) -> str:
    """The id of the one run whose id is or starts with ``given`` (else 404 or ambiguous)."""
    ids = runs.ids_starting_with(given, limit=MAX_LISTED + 1)
    if given in ids or len(ids) == 1:
        return given if given in ids else ids[0]
    if not ids:
        raise HTTPException(404, f"No run has the id {given!r}, and no run id starts with it.")
    raise AmbiguousRunId(given, ids[:MAX_LISTED], more=len(ids) > MAX_LISTED)
