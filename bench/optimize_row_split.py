"""Where one row of the wine pipeline goes, for its ONNX form and its int8 form.

``bench/optimize.py`` times ``LoadedModel.predict`` of one record for every form;
this splits that time into its steps, measured the same way for both forms (p50
of ``--calls`` single-record calls per step): the record made into a checked
DataFrame (the signature, before any predictor), the graph's input arrays (one
per column), and the onnxruntime session alone. It also prints how the ONNX
graph's bytes divide between its input and output declarations and its nodes.

    .venv/bin/python bench/optimize_row_split.py [--calls 3000]
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "src"))


def p50_ms(fn: Callable[[Any], object], args: Sequence[Any], calls: int) -> float:
    for arg in args[:20]:
        fn(arg)
    times = []
    for i in range(calls):
        arg = args[i % len(args)]
        start = time.perf_counter()
        fn(arg)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    os.environ["SHIPYARD_HOME"] = tempfile.mkdtemp(prefix="shipyard-row-split-")
    os.environ.setdefault("SHIPYARD_USER", "bench")

    import onnx

    from optimized_models import wine_pipeline
    from shipyard import Shipyard
    from shipyard.optimization.service import Quantize, optimize_model
    from shipyard.registry.graphs import version_graph
    from shipyard.registry.optimize import compiled_model
    from shipyard.validation.fidelity import FidelitySpec

    client = Shipyard()
    model, Xtr, Xte, yte = wine_pipeline()
    source = client.registry.log_model(model, "wine", sample=Xtr)
    int8 = optimize_model(
        client.registry,
        client.validation,
        source.ref,
        Quantize("int8"),
        holdout=Xte.assign(label=np.asarray(yte)),
        target="label",
        spec=FidelitySpec({"accuracy": 0.01}, 0.95),
    ).version
    records = Xte.to_dict(orient="records")
    print(f"wine pipeline, p50 of {args.calls} single-record calls per step (ms)")
    for form, ref in (("onnx", source.ref), ("int8", int8.ref)):
        version = client.registry.resolve(ref)
        served = compiled_model(client.registry, version, client.registry.load(ref))
        predictor: Any = served.predictor
        frames = [served.prepare(r) for r in records]
        feeds = [predictor._feed(X) for X in frames]
        outputs = [predictor.label_output, predictor.proba_output]
        total = p50_ms(served.predict, records, args.calls)
        prepare = p50_ms(served.prepare, records, args.calls)
        feed = p50_ms(predictor._feed, frames, args.calls)
        run = functools.partial(predictor.session.run, outputs)
        graph = p50_ms(run, feeds, args.calls)
        print(
            f"{form}: predict {total:.3f} = record to DataFrame {prepare:.3f} + "
            f"{len(feeds[0])} input arrays {feed:.3f} + graph {graph:.3f} + the rest "
            f"{total - prepare - feed - graph:.3f}; graph share {graph / total:.0%}"
        )
    proto = onnx.load_model_from_string(
        version_graph(client.registry, client.registry.resolve(source.ref))
    )
    declarations = onnx.ModelProto()
    declarations.graph.input.extend(proto.graph.input)
    declarations.graph.output.extend(proto.graph.output)
    nodes = ", ".join(f"{n.op_type} {n.ByteSize()}" for n in proto.graph.node)
    print(
        f"onnx graph {proto.ByteSize()} bytes: input and output declarations "
        f"{declarations.ByteSize()}; nodes {nodes}"
    )


if __name__ == "__main__":
    main()
