"""Where ``shipyard drift`` finds a registered model's reference and logged traffic.

``--reference iris@production`` uses the profile stored with that version when
it was logged; ``--window 24h`` reads the model's inputs from the prediction
log. The drift package itself never imports the registry.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import pandas as pd

from shipyard.drift.profile import ReferenceProfile
from shipyard.errors import InvalidInputError

if TYPE_CHECKING:
    from shipyard._client import Shipyard


@cache
def _client() -> Shipyard:
    # The drift command has no context object to hand a client down; one per
    # process, from the same settings sources as every other command. Imported
    # here: comparing two files never needs the registry's database code.
    from shipyard._client import Shipyard
    from shipyard.config import Settings

    return Shipyard(Settings())


def load_model_reference(ref: str) -> ReferenceProfile:
    """The drift reference profile stored with the version ``ref`` resolves to."""
    client = _client()
    return client.registry.reference_profile(client.registry.resolve(ref))


def load_logged_window(ref: str, window: str) -> pd.DataFrame:
    """The inputs the model behind ``ref`` answered in the last ``window``."""
    client = _client()
    version = client.registry.resolve(ref)
    current = client.prediction_log.read_inputs(version.model, since=window)
    if current.empty:
        raise InvalidInputError(
            f"No predictions of {version.model!r} were logged in the last {window}: serve it "
            "with `shipyard serve` (the prediction log is on by default) or widen --window."
        )
    return current
