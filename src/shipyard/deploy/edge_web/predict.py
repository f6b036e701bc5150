#!/usr/bin/env python3
"""Score rows with the model in this folder: needs only onnxruntime and numpy.

Written by ``shipyard export REF --target edge``; runs with no Shipyard and no server.

    python predict.py rows.csv               # CSV with a header row
    python predict.py rows.jsonl             # JSON lines: one object per row
    python predict.py - --format csv < rows.csv

A CSV field that is one of the words in ``manifest.json``'s ``csv_missing`` (empty,
NA, N/A, null, None, NaN ..., quoted or not) is a missing value, as everywhere in
Shipyard; ``-`` or ``na`` are text. Every row is checked against the signature in
``manifest.json`` (columns present,
finite numbers, no missing value where the model needs one, a booster's categories)
before the model runs; a row that does not fit is refused with one line naming the
row and the column. A value of a text column the model never saw is the model's call,
as in ``shipyard serve``: an encoder that ignores unknown values scores the row, one
that refuses them is reported as that row and column, never as a traceback. Output:
one JSON object per row, ``{"prediction": ..., "probabilities": {class: p, ...}}``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
_TYPES = {"float": np.float32, "double": np.float64, "int64": np.int64, "string": np.object_}
_TRUE = {"true", "1", "yes"}
_FALSE = {"false", "0", "no"}


class InputError(Exception):
    """Input that does not fit the model's signature."""


class EdgeModel:
    """The bundle's graph and manifest: ``predict(rows)`` on a list of dicts."""

    def __init__(self, folder: Path = HERE) -> None:
        self.manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        data = (folder / "model.onnx").read_bytes()
        expected = self.manifest["files"]["model.onnx"]
        if hashlib.sha256(data).hexdigest() != expected:
            raise InputError(f"model.onnx does not match its SHA-256 in manifest.json ({expected})")
        options = ort.SessionOptions()
        # Fatal only: a row the graph refuses is reported as one line by refusal(),
        # not as onnxruntime's own log lines on stderr.
        ort.set_default_logger_severity(4)
        options.log_severity_level = 4
        self.session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        self.graph = self.manifest["graph"]
        # The graph's inputs name their column ("column"; older bundles: the input's
        # own name). A column the model drops is no input: it is not checked, not fed.
        if self.graph["layout"] == "matrix":
            used = None
        else:
            used = {item.get("column", item["name"]) for item in self.graph["inputs"]}
        self.inputs = [
            spec
            for spec in self.manifest["signature"]["inputs"]
            if used is None or spec["name"] in used
        ]
        #: What a missing text value is fed as (the graph's text imputers replace it).
        self.missing_text = self.graph.get("missing_text", "")
        #: CSV field values that mean missing (quoted or not, exact): Shipyard's one
        #: list, as serve and ``shipyard predict`` read CSV. Older bundles: "" only.
        self.csv_missing = frozenset(self.manifest.get("csv_missing", [""]))

    def check(self, rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
        """Columns of checked values, one list per signature input."""
        if not rows:
            raise InputError("no rows to score")
        columns: dict[str, list[Any]] = {spec["name"]: [] for spec in self.inputs}
        for i, row in enumerate(rows, start=1):
            for spec in self.inputs:
                name = spec["name"]
                if name not in row:
                    raise InputError(f"row {i}: column {name!r} is missing")
                columns[name].append(_value(row[name], spec, i))
        return columns

    def feed(self, columns: dict[str, list[Any]]) -> dict[str, np.ndarray]:
        graph_inputs = self.graph["inputs"]
        if self.graph["layout"] == "matrix":
            (only,) = graph_inputs
            matrix = np.column_stack(
                [_numbers(columns[spec["name"]], spec) for spec in self.inputs]
            )
            return {only["name"]: matrix.astype(_TYPES[only["type"]])}
        out = {}
        for item in graph_inputs:
            column = item.get("column", item["name"])
            values = columns[column]
            if item["type"] == "string":
                text = [self.missing_text if v is None else str(v) for v in values]
                out[item["name"]] = np.array(text, dtype=object).reshape(-1, 1)
            else:
                spec = next(s for s in self.inputs if s["name"] == column)
                array = _numbers(values, spec).astype(_TYPES[item["type"]])
                out[item["name"]] = array.reshape(-1, 1)
        return out

    def predict(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One ``{"prediction", "probabilities"}`` per row (probabilities for classifiers)."""
        feed = self.feed(self.check(rows))
        wanted = [self.graph["label_output"]]
        if self.graph.get("proba_output"):
            wanted.append(self.graph["proba_output"])
        try:
            outs = self.session.run(wanted, feed)
        except Exception as exc:  # onnxruntime's own errors share no public base class
            raise self.refusal(rows, feed, wanted, exc) from None
        labels = np.asarray(outs[0]).reshape(len(rows), -1)[:, 0]
        classes = self.manifest["signature"]["output"].get("classes")
        results = []
        proba = np.asarray(outs[1], dtype=np.float64) if len(outs) > 1 else None
        for r in range(len(rows)):
            if proba is not None and not np.isfinite(proba[r]).all():
                raise InputError(
                    f"row {r + 1}: the model's probabilities are not finite (NaN or infinity): "
                    "the inputs are outside what the model can handle"
                )
            if proba is not None and self.graph.get("label_from") == "argmax":
                label = classes[int(np.argmax(proba[r]))]
            else:
                label = labels[r].item() if hasattr(labels[r], "item") else labels[r]
            if isinstance(label, float) and not math.isfinite(label):
                raise InputError(
                    f"row {r + 1}: the model's prediction is not finite ({label}): "
                    "the inputs are outside what the model can handle"
                )
            item: dict[str, Any] = {"prediction": label}
            if proba is not None and classes is not None:
                item["probabilities"] = {
                    str(c): float(p) for c, p in zip(classes, proba[r], strict=True)
                }
            results.append(item)
        return results

    def refusal(
        self,
        rows: list[dict[str, Any]],
        feed: dict[str, np.ndarray],
        wanted: list[str],
        exc: Exception,
    ) -> InputError:
        """The graph refused the rows: name the row (and column) it refuses, as serve does.

        A text value outside the column's known categories is the cause only when
        its row fails on its own (an encoder with handle_unknown="ignore" scores it).
        Otherwise the first row the graph refuses is found by halving, and the text
        column whose value makes it fail is named (an open-text column, see
        _text_culprit); failing that, the row alone.
        """
        reason = _first_line(exc)

        def fails(start: int, stop: int) -> bool:
            try:
                self.session.run(wanted, {k: v[start:stop] for k, v in feed.items()})
            except Exception:
                return True
            return False

        for r, row in enumerate(rows):
            for spec in self.inputs:
                known = spec.get("categories")
                value = row.get(spec["name"])
                if spec["dtype"] != "string" or known is None or _blank(value):
                    continue
                if str(value) not in [str(c) for c in known] and fails(r, r + 1):
                    listed = ", ".join(map(str, known))
                    return InputError(
                        f"row {r + 1}: column {spec['name']!r}: {str(value)!r} is not one of "
                        f"{listed} (the model cannot handle a value it never saw)"
                    )
        if not fails(0, len(rows)):
            return InputError(f"the model cannot score these rows together ({reason})")
        low, high = 1, len(rows)  # the shortest failing prefix ends at the refused row
        while low < high:
            mid = (low + high) // 2
            low, high = (low, mid) if fails(0, mid) else (mid + 1, high)
        r = low - 1
        culprit = self._text_culprit(feed, wanted, r, good=0 if r else None, fails=fails)
        if culprit is not None:
            culprit = next(
                (i.get("column", i["name"]) for i in self.graph["inputs"] if i["name"] == culprit),
                culprit,
            )
            value = rows[r].get(culprit)
            return InputError(
                f"row {r + 1}: column {culprit!r}: {str(value)!r} is a value the model never "
                f"saw and cannot handle ({reason})"
            )
        return InputError(f"row {r + 1}: the model cannot score it ({reason})")

    def _text_culprit(
        self, feed: dict[str, np.ndarray], wanted: list[str], r: int, good: int | None, fails: Any
    ) -> str | None:
        """The text input that makes row ``r`` fail: swapping in a scored row's value fixes it.

        An open-text column (too many training values to list) has no known set to
        check, and onnxruntime's message does not quote the value, so each text input
        of the refused row is swapped for the value of a row the graph scores.
        """
        if good is None:  # the first row is refused: look for one that scores
            rows = len(next(iter(feed.values())))
            good = next((k for k in range(1, min(rows, 50)) if not fails(k, k + 1)), None)
            if good is None:
                return None
        for item in self.graph["inputs"]:
            if item["type"] != "string":
                continue
            trial = {k: v[r : r + 1] for k, v in feed.items()}
            trial[item["name"]] = feed[item["name"]][good : good + 1]
            try:
                self.session.run(wanted, trial)
            except Exception:
                continue
            return item["name"]
        return None


def _first_line(exc: Exception) -> str:
    """The graph's own message: onnxruntime's status prefix ("[ONNXRuntimeError] : 1 :
    FAIL : ") dropped, as index.html drops onnxruntime-web's, so both runners say the same."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    text = re.sub(r"^\[ONNXRuntimeError\] : \d+ : \w+ : ", "", text) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."


class MissingWord(str):
    """A CSV field that is one of the ``csv_missing`` words (``NA``, ``nan`` ...): a
    missing value that keeps its text, so a refusal names what the file said."""


def _blank(raw: Any) -> bool:
    return (
        raw is None or isinstance(raw, MissingWord) or (isinstance(raw, str) and raw.strip() == "")
    )


def _value(raw: Any, spec: dict[str, Any], row: int) -> Any:
    """One value checked against its column's type (None for a missing value)."""
    name, dtype = spec["name"], spec["dtype"]
    if _blank(raw):
        if not spec.get("nullable"):
            if isinstance(raw, MissingWord) and raw:
                raise InputError(
                    f"row {row}: column {name!r}: {str(raw)!r} is a missing value, and the "
                    "model needs a value"
                )
            raise InputError(f"row {row}: column {name!r} is empty, and the model needs a value")
        return None
    if isinstance(raw, float) and math.isnan(raw):  # JSON's NaN
        return _nan(spec, row, raw)
    if dtype == "string":
        value = str(raw)
        if spec.get("categorical") and value not in spec.get("categories", []):
            known = ", ".join(map(str, spec.get("categories", [])))
            raise InputError(f"row {row}: column {name!r}: {value!r} is not one of {known}")
        return value
    if dtype == "boolean":
        text = str(raw).strip().lower()
        if text in _TRUE or raw is True:
            return 1.0
        if text in _FALSE or raw is False:
            return 0.0
        raise InputError(f"row {row}: column {name!r}: {raw!r} is not true or false")
    if isinstance(raw, bool):
        raise InputError(f"row {row}: column {name!r}: expected a number, got {raw!r}")
    try:
        number = float(raw)
    except (TypeError, ValueError):
        raise InputError(f"row {row}: column {name!r}: expected a number, got {raw!r}") from None
    except OverflowError:  # a JSON integer beyond the largest float
        raise InputError(
            f"row {row}: column {name!r}: {raw!r} is beyond the largest number"
        ) from None
    if math.isnan(number):  # "nan" in a CSV
        return _nan(spec, row, raw)
    if math.isinf(number):  # "inf", "1e400", JSON's Infinity: as load_model(...).predict refuses
        raise InputError(
            f"row {row}: column {name!r}: {raw!r} is infinity, and the model needs a finite number"
        )
    if dtype == "integer" and not number.is_integer():
        raise InputError(f"row {row}: column {name!r}: expected a whole number, got {raw!r}")
    return number


def _nan(spec: dict[str, Any], row: int, raw: Any) -> None:
    """NaN is a missing value: None where the column may be missing, else refused."""
    if not spec.get("nullable"):
        raise InputError(
            f"row {row}: column {spec['name']!r}: {raw!r} is NaN, a missing value, and the "
            "model needs a value"
        )
    return None


def _numbers(values: list[Any], spec: dict[str, Any]) -> np.ndarray:
    """A column as float64: a category column as its code (position), missing as NaN."""
    if spec.get("categorical"):
        categories = [str(c) for c in spec.get("categories", [])]
        return np.array([np.nan if v is None else categories.index(str(v)) for v in values])
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def read_rows(
    text: str, fmt: str, missing: frozenset[str] = frozenset({""})
) -> list[dict[str, Any]]:
    """Rows as dicts; a CSV field whose text is one of ``missing`` is a :class:`MissingWord`."""
    if fmt == "csv":
        return [
            {k: MissingWord(v) if v in missing else v for k, v in row.items()}
            for row in csv.DictReader(io.StringIO(text))
        ]
    rows = []
    for i, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"line {i}: not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"line {i}: expected a JSON object of column: value")
            rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score CSV or JSON lines with model.onnx.")
    parser.add_argument("input", help="a .csv or .jsonl file, or - for standard input")
    parser.add_argument("--format", choices=["csv", "jsonl"], help="default: from the suffix")
    args = parser.parse_args(argv)
    fmt = args.format or ("csv" if str(args.input).lower().endswith(".csv") else "jsonl")
    try:
        text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text("utf-8")
        model = EdgeModel()
        results = model.predict(read_rows(text, fmt, model.csv_missing))
    except (InputError, OSError) as exc:
        print(f"Error: {exc}", file=sys.stderr)
        return 1
    try:
        for item in results:
            print(json.dumps(item, allow_nan=False))  # NaN is not JSON; predict() refuses it
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader stopped early (`predict.py rows.csv | head`): not an error. Point
        # stdout at /dev/null so Python's own flush at exit does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
