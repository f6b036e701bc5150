"""The Open Inference Protocol's (KServe V2) messages, as pydantic models.

Requests are validated against these once, at the edge; responses are built as
plain dicts and these models only document them in the OpenAPI schema.

Example:
    >>> InferenceRequest.model_validate(
    ...     {"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1.0]}]}
    ... ).inputs[0].datatype
    'FP64'
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Datatype = Literal[
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
]
_MAX_DIMENSION = 2**31


class RequestInput(BaseModel):
    """One input tensor."""

    model_config = ConfigDict(extra="ignore")

    name: str = Field(min_length=1)
    shape: list[Annotated[int, Field(ge=0, le=_MAX_DIMENSION)]] = Field(min_length=1)
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    #: JSON values; absent when the tensor comes as binary data (``binary_data_size``).
    data: list[Any] | None = None


class RequestOutput(BaseModel):
    """An output the client asks for."""

    model_config = ConfigDict(extra="ignore")

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    """``POST /v2/models/{name}/infer`` body."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ErrorBody(BaseModel):
    """The protocol's error body (Shipyard adds the field and expected type)."""

    model_config = ConfigDict(title="V2Error")

    error: str
    type: str | None = None
    field: str | None = None
    expected: str | None = None
    request_id: str | None = None
