"""Validation: data contracts inferred from training data, model gates, approvals.

Modules, one concept each:

- :mod:`~shipyard.validation.contracts`: :class:`DataContract`, :func:`infer_contract`
- :mod:`~shipyard.validation.contract_checks`: :func:`check_contract`, serving-input modes
- :mod:`~shipyard.validation.contract_export`: pandera and Great Expectations forms
- :mod:`~shipyard.validation.contract_report`: the self-contained HTML report
- :mod:`~shipyard.validation.gates` / :mod:`~shipyard.validation.gate_results`: model gates
- :mod:`~shipyard.validation.approvals`: approvals and the promotion policy
- :mod:`~shipyard.validation.service`: the service functions the CLI and API call

Nothing is imported here: the registry imports the promotion policy, and this
package must stay importable from it without a cycle.
"""
