"""Serving inputs checked against the served version's data contract.

``--contract-check reject`` answers 422 naming the column and rows that break
the contract (ranges, categories, nullability; tail checks never run on one
request); ``count`` answers as usual and counts each violation in
``shipyard_contract_violations_total{model,version,column,expectation}``.
``off`` (the default) costs nothing. A version stored without a contract is
served unchecked.

Example:
    >>> guard = ContractGuard(client.validation, "reject", registry)  # doctest: +SKIP
    >>> guard.check(served, {"sepal_length": 500.0, ...})            # raises: 422
"""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter

from shipyard.serving.runtime import ServedModel
from shipyard.store.validation_records import ContractNotFoundError
from shipyard.store.validation_store import ValidationStore
from shipyard.validation.contract_checks import (
    ContractChecker,
    InputCheckMode,
    check_serving_input,
)
from shipyard.validation.contracts import DataContract


class ContractGuard:
    """Checks each request's rows against its version's contract, by mode."""

    def __init__(
        self, store: ValidationStore, mode: InputCheckMode | str, registry: CollectorRegistry
    ) -> None:
        self.mode = InputCheckMode(mode)
        self._store = store
        # One checker per (model, version); None: that version has no contract.
        self._checkers: dict[tuple[str, int], ContractChecker | None] = {}
        self.violations = Counter(
            "shipyard_contract_violations",
            "Input values that broke the served version's data contract.",
            ["model", "version", "column", "expectation"],
            registry=registry,
        )

    def checker(self, served: ServedModel) -> ContractChecker | None:
        key = (served.name, served.version)
        if key not in self._checkers:
            try:
                record = self._store.get_contract(served.name, served.version)
                self._checkers[key] = ContractChecker(DataContract.from_dict(record.contract))
            except ContractNotFoundError:
                self._checkers[key] = None
        return self._checkers[key]

    def check(self, served: ServedModel, data: Any) -> np.ndarray | None:
        """Raise ``ContractViolationError`` (422) in ``reject`` mode; count in ``count``.

        Returns the per-row violation flags (None when nothing was checked), which
        the prediction log keeps beside each row.
        """
        if self.mode is InputCheckMode.OFF:
            return None
        checker = self.checker(served)
        if checker is None:
            return None
        frame = served.model.signature.coerce(data)
        found = check_serving_input(checker, frame, self.mode)
        for (column, expectation), n in found.counts().items():
            self.violations.labels(served.name, str(served.version), column, expectation).inc(n)
        if found.row_flags is None:
            return np.zeros(len(frame), dtype=bool)
        return np.asarray(found.row_flags, dtype=bool)
