"""Request and response models, built from a model's signature once per loaded version.

``/docs`` must show the real fields and types, so the record model is made with
pydantic's ``create_model`` from the signature's columns. The rules match
:meth:`Signature.coerce`, which does the actual checking on the request path
(once, at the boundary): numbers must be JSON numbers (``"5.1"`` is refused),
booleans must be booleans, ``null`` only where the training sample had missing
values, never infinity or NaN; extra fields are ignored (and listed in the answer).

Example:
    >>> from shipyard.registry.signature import ColumnSpec, OutputSpec, Signature
    >>> sig = Signature((ColumnSpec("x", "float", minimum=0.0, maximum=2.0),),
    ...                 OutputSpec("regression", "float"))
    >>> record_model(sig, "demo").model_json_schema()["properties"]["x"]["type"]
    'number'
    >>> warmup_record(sig)
    {'x': 1.0}
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, create_model

from shipyard.registry.signature import ColumnSpec, Signature

INSTANCES_KEY = "instances"
_WARMUP_DATETIME = "2000-01-01T00:00:00"


def _python_type(spec: ColumnSpec, example: Any) -> Any:
    field = Field(examples=[example], description=_describe(spec))
    base: Any
    if spec.dtype == "float":
        base = Annotated[float, Field(strict=True, allow_inf_nan=False)]
    elif spec.dtype == "integer":
        base = StrictInt
    elif spec.dtype == "boolean":
        base = StrictBool
    elif spec.dtype == "string":
        base = StrictStr
    else:
        base = datetime
    if spec.nullable:
        base = Union[base, None]  # noqa: UP007 - a runtime type expression, not an annotation
    return Annotated[base, field]


def _describe(spec: ColumnSpec) -> str:
    parts: list[str] = [spec.dtype]
    if spec.minimum is not None and spec.maximum is not None:
        parts.append(f"seen in training between {spec.minimum:g} and {spec.maximum:g}")
    if spec.categorical and spec.categories:
        parts.append(f"one of the training categories: {', '.join(map(str, spec.categories))}")
    elif spec.categories:
        shown = ", ".join(map(str, spec.categories[:10]))
        parts.append(f"seen in training: {shown}")
    if spec.unused:
        parts.append("unused by the model: may be null or left out")
    elif spec.nullable:
        parts.append("may be null")
    return "; ".join(parts)


def _model_name(model: str, suffix: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", model)
    return "".join(w[:1].upper() + w[1:] for w in words if w) + suffix


def record_model(signature: Signature, model: str) -> type[BaseModel]:
    """One input record: a field per signature column, named ``<Model>Record``."""
    example = warmup_record(signature)
    fields: dict[str, Any] = {
        # A column the model never reads is optional (see Signature: ``unused``).
        spec.name: (_python_type(spec, example[spec.name]), None if spec.unused else ...)
        for spec in signature.inputs
    }
    return create_model(  # type: ignore[call-overload, no-any-return]
        _model_name(model, "Record"),
        __config__=ConfigDict(extra="ignore", title=_model_name(model, "Record")),
        **fields,
    )


_DTYPE_TYPES: dict[str, Any] = {
    "int32": int,
    "int64": int,
    "float32": float,
    "float64": float,
    "bool": bool,
    "string": str,
    "timestamp": str,
}


def request_model(fields: dict[str, str], model: str) -> type[BaseModel]:
    """The record of a feature-backed model: its entity keys and request-time fields only
    (the features it fetches are not the caller's to send)."""
    typed: dict[str, Any] = {
        name: (_DTYPE_TYPES.get(dtype, str), ...) for name, dtype in fields.items()
    }
    return create_model(  # type: ignore[call-overload, no-any-return]
        _model_name(model, "Record"),
        __config__=ConfigDict(extra="ignore", title=_model_name(model, "Record")),
        **typed,
    )


def instances_model(record: type[BaseModel], model: str) -> type[BaseModel]:
    """``{"instances": [record, ...]}`` (TF-Serving style batch)."""
    # The record type is made at run time, which static checkers cannot follow.
    instances: Any = Annotated[list[record], Field(min_length=1)]  # type: ignore[valid-type]
    return create_model(  # type: ignore[call-overload, no-any-return]
        _model_name(model, "Instances"),
        __config__=ConfigDict(extra="forbid"),
        instances=(instances, ...),
    )


def warmup_record(signature: Signature) -> dict[str, Any]:
    """A plausible record for ``signature``: the middle of each range, a known category.

    Used for the warm-up prediction before the server reports ready, and as the
    example in ``/docs``.
    """
    record: dict[str, Any] = {}
    for spec in signature.inputs:
        if spec.categorical and spec.categories:  # only its categories are valid
            record[spec.name] = spec.categories[0]
        elif spec.dtype in ("float", "integer"):
            lo, hi = spec.minimum, spec.maximum
            mid = (lo + hi) / 2 if lo is not None and hi is not None else (lo or hi or 0)
            record[spec.name] = float(mid) if spec.dtype == "float" else round(mid)
        elif spec.dtype == "boolean":
            record[spec.name] = False
        elif spec.dtype == "string":
            record[spec.name] = str(spec.categories[0]) if spec.categories else "a"
        else:
            record[spec.name] = _WARMUP_DATETIME
    return record


# -- responses (static: the same for every model) ------------------------------------------

Label = Union[StrictBool, StrictInt, float, str]  # noqa: UP007
_IGNORED = (
    "Fields sent that the model does not take (present only when there were some); "
    "a server started with --reject-unknown-fields answers 422 instead."
)


class PredictResponse(BaseModel):
    """Answer to one record."""

    prediction: Label | None
    probabilities: dict[str, float] | None = Field(
        default=None, description="Class probabilities, when the model has them."
    )
    model: str
    version: int
    request_id: str
    ignored_fields: list[str] | None = Field(default=None, description=_IGNORED)


class PredictBatchResponse(BaseModel):
    """Answer to a list of records (or ``instances``), in the order sent."""

    predictions: list[Label | None]
    probabilities: list[dict[str, float]] | None = None
    model: str
    version: int
    request_id: str
    ignored_fields: list[str] | None = Field(default=None, description=_IGNORED)


class ErrorResponse(BaseModel):
    """Every 4xx/5xx of the native and V2 routes."""

    error: str
    type: str
    field: str | None = None
    expected: str | None = None
    rows: list[int] | None = None
    request_id: str | None = None


class MlflowErrorResponse(BaseModel):
    """MLflow's scoring-server error shape."""

    error_code: str
    message: str


def body_schema(model: type[BaseModel] | Any, *, components: dict[str, Any]) -> dict[str, Any]:
    """JSON schema of ``model`` (a model or a type) for an OpenAPI request body.

    Nested definitions are moved into ``components`` so ``$ref`` s resolve from
    the document root, where OpenAPI tools look for them.
    """
    from pydantic import TypeAdapter

    schema = TypeAdapter(model).json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    return schema
