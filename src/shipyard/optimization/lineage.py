"""Lineage of an optimized version, kept in its tags (no table of its own).

Tags written by :mod:`shipyard.optimization.service` on the new version:

- ``optimized_from``: the source version (``iris:3``);
- ``optimization``: how (``int8 quantization``, ``pruning``, ``distillation``);
- ``optimization_detail``: what changed (operators quantized, trees kept, student);
- ``optimization_cost``: each metric before -> after and the label agreement
  (shown as "metric cost": accuracy for a classifier, r2 and errors for a regressor);
- ``optimization_size`` / ``optimization_latency``: before -> after;
- ``optimization_gates``: ``passed`` or ``failed``.

Example:
    >>> describe_lineage({"optimized_from": "iris:3", "optimization": "int8 quantization"})
    ['optimized from iris:3 by int8 quantization']
"""

from __future__ import annotations

from collections.abc import Mapping

FROM = "optimized_from"
HOW = "optimization"
DETAIL = "optimization_detail"
COST = "optimization_cost"
SIZE = "optimization_size"
LATENCY = "optimization_latency"
GATES = "optimization_gates"


#: The facts shown after "optimized from ... by ...", in order, with their labels.
FACTS = (
    (DETAIL, "what changed"),
    (COST, "metric cost"),
    (SIZE, "size"),
    (LATENCY, "single-row latency"),
    (GATES, "gates against the source"),
)


def lineage_facts(tags: Mapping[str, str]) -> tuple[str, str, list[tuple[str, str]]] | None:
    """(source ref, how, [(label, value)]) of an optimized version; None for any other.

    What ``shipyard models show`` prints and the web UI's version page shows.
    """
    if FROM not in tags:
        return None
    facts = [(label, tags[key]) for key, label in FACTS if tags.get(key)]
    return tags[FROM], tags.get(HOW, "?"), facts


def describe_lineage(tags: Mapping[str, str]) -> list[str]:
    """Lines for ``shipyard models show``; empty for a version that was not optimized."""
    found = lineage_facts(tags)
    if found is None:
        return []
    source, how, facts = found
    return [f"optimized from {source} by {how}"] + [f"  {label}: {value}" for label, value in facts]


__all__ = ["describe_lineage", "lineage_facts"]
