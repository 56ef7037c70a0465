"""The Open Inference Protocol's (V2) messages as pydantic models: the OpenAPI document's
contract and the docs page's examples.

The infer route reads its body itself (app/v2/codec.py, where the rules are enforced); these
models describe what it reads and writes. Field names and shapes follow the protocol's
`inference_rest.md`.
"""

from typing import Annotated, Any, Final

from pydantic import BaseModel, ConfigDict, Field

from app.openapi.examples import BENIGN, MALIGNANT
from app.v2.codec import DATATYPES, SCORES_INPUT
from model.features import FEATURE_NAMES

ParameterValue = str | int | float | bool
Parameters = Annotated[
    dict[str, ParameterValue],
    Field(description="Key/value pairs; each value a string, a number or a boolean."),
]
_CLOSED: Final = ConfigDict(extra="forbid")


class V2ErrorResponse(BaseModel):
    """Every /v2 error answer (4xx), as the protocol defines it."""

    error: str = Field(description="What was wrong: the tensor, the index or the rule broken.")


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str] = Field(description="`binary_tensor_data`: Triton's binary tensors.")


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class MetadataTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int] = Field(description="-1 for the batch dimension.")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[MetadataTensor]
    outputs: list[MetadataTensor]


class RequestInput(BaseModel):
    model_config = _CLOSED

    name: str = Field(
        description=f"{SCORES_INPUT!r} (shape [n, 9]), or a feature name (shape [n]).",
        json_schema_extra={"enum": [SCORES_INPUT, *FEATURE_NAMES]},
    )
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: str = Field(json_schema_extra={"enum": list(DATATYPES)})
    parameters: Parameters | None = None
    data: list[Any] | None = Field(
        default=None,
        description="Row-major values, flat or nested; left out for a binary tensor "
        "(parameters.binary_data_size bytes after the JSON).",
    )


class RequestOutput(BaseModel):
    model_config = _CLOSED

    name: str = Field(json_schema_extra={"enum": ["probability", "class"]})
    parameters: Parameters | None = Field(
        default=None, description="`binary_data: true` to receive this output as binary data."
    )


class InferenceRequest(BaseModel):
    model_config = _CLOSED

    id: str | None = Field(default=None, description="Echoed in the response.")
    model_name: str | None = Field(default=None, description="If given, the URL's model name.")
    model_version: str | None = Field(default=None, description="If given, the model version.")
    parameters: Parameters | None = Field(
        default=None,
        description="`threshold` (0..1, default the model's); `binary_data_output: true` for "
        "every output as binary data.",
    )
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = Field(
        default=None, description="Which outputs to return; all (probability, class) if omitted."
    )


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: Parameters | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: Parameters | None = None
    outputs: list[ResponseOutput]


def _scores_input(rows: list[dict[str, int]], datatype: str = "INT64") -> dict[str, Any]:
    return {
        "name": SCORES_INPUT,
        "shape": [len(rows), len(FEATURE_NAMES)],
        "datatype": datatype,
        "data": [[row[f] for f in FEATURE_NAMES] for row in rows],
    }


INFER_EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "scores_tensor": {
        "summary": "Data set samples 1000025 (benign) and 1017122 (malignant), one [2, 9] tensor",
        "value": {"id": "42", "inputs": [_scores_input([BENIGN, MALIGNANT])]},
    },
    "feature_tensors": {
        "summary": "The same two biopsies as nine [2] tensors named by feature, threshold 0.9",
        "value": {
            "parameters": {"threshold": 0.9},
            "inputs": [
                {"name": f, "shape": [2], "datatype": "INT32", "data": [BENIGN[f], MALIGNANT[f]]}
                for f in FEATURE_NAMES
            ],
            "outputs": [{"name": "class"}],
        },
    },
}

BAD_INFER_EXAMPLES: Final[dict[str, dict[str, Any]]] = {
    "score_out_of_range": {
        "summary": "mitoses 11, above the scale",
        "value": {"inputs": [_scores_input([BENIGN, {**MALIGNANT, "mitoses": 11}])]},
    },
    "data_length": {
        "summary": "18 values for a [3, 9] tensor",
        "value": {"inputs": [{**_scores_input([BENIGN, MALIGNANT]), "shape": [3, 9]}]},
    },
}
