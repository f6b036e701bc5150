"""An optimized version's lineage, read from its tags for `models show` and the web UI."""

from __future__ import annotations

from shipyard.optimization.lineage import describe_lineage, lineage_facts


def test_facts_and_lines_of_an_optimized_version() -> None:
    tags = {
        "optimized_from": "iris:3",
        "optimization": "int8 quantization",
        "optimization_cost": "accuracy 0.9600 -> 0.9533 (-0.0067)",
        "optimization_gates": "passed",
        "team": "ml",
    }
    assert lineage_facts(tags) == (
        "iris:3",
        "int8 quantization",
        [
            ("metric cost", "accuracy 0.9600 -> 0.9533 (-0.0067)"),
            ("gates against the source", "passed"),
        ],
    )
    assert describe_lineage(tags) == [
        "optimized from iris:3 by int8 quantization",
        "  metric cost: accuracy 0.9600 -> 0.9533 (-0.0067)",
        "  gates against the source: passed",
    ]
    assert lineage_facts({"team": "ml"}) is None and describe_lineage({}) == []
