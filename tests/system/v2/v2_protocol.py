"""The Open Inference Protocol's (V2) REST messages as JSON Schemas, stated here from the
specification (`inference_rest.md`, KServe's open-inference-protocol, Apache-2.0) and Triton's
binary tensor data extension, so that no test depends on a copy of the specification.

`validate(kind, body)` checks an answer against its message's schema with `jsonschema`.
"""

import json
from typing import Any, Final

import jsonschema

_PARAMETERS: Final = {
    "type": "object",
    "additionalProperties": {"type": ["string", "number", "boolean"]},
}
_TENSOR_DATA: Final = {
    "type": "array",
    "items": {
        "anyOf": [{"$ref": "#/$defs/tensor_data"}, {"type": ["number", "string", "boolean"]}]
    },
}
_METADATA_TENSOR: Final = {
    "type": "object",
    "required": ["name", "datatype", "shape"],
    "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": -1}},
    },
}
# $response_output: data, unless the binary extension's binary_data_size says where it is.
_RESPONSE_OUTPUT: Final = {
    "type": "object",
    "required": ["name", "shape", "datatype"],
    "properties": {
        "name": {"type": "string"},
        "shape": {"type": "array", "items": {"type": "integer", "minimum": 0}},
        "datatype": {"type": "string"},
        "parameters": {"$ref": "#/$defs/parameters"},
        "data": {"$ref": "#/$defs/tensor_data"},
    },
    "oneOf": [
        {"required": ["data"]},
        {
            "required": ["parameters"],
            "properties": {
                "parameters": {
                    "required": ["binary_data_size"],
                    "properties": {"binary_data_size": {"type": "integer", "minimum": 0}},
                }
            },
        },
    ],
}
_DEFS: Final = {"parameters": _PARAMETERS, "tensor_data": _TENSOR_DATA}

SCHEMAS: Final[dict[str, dict[str, Any]]] = {
    "server_metadata": {
        "type": "object",
        "required": ["name", "version", "extensions"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "extensions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "server_live": {
        "type": "object",
        "required": ["live"],
        "properties": {"live": {"type": "boolean"}},
    },
    # The specification's text shows {"live": $bool} here, evidently copied from the live
    # answer; KServe's client reads "ready", as KServe and MLServer answer.
    "server_ready": {
        "type": "object",
        "required": ["ready"],
        "properties": {"ready": {"type": "boolean"}},
    },
    "model_ready": {
        "type": "object",
        "required": ["name", "ready"],
        "properties": {"name": {"type": "string"}, "ready": {"type": "boolean"}},
    },
    "model_metadata": {
        "type": "object",
        "required": ["name", "platform", "inputs", "outputs"],
        "properties": {
            "name": {"type": "string"},
            "versions": {"type": "array", "items": {"type": "string"}},
            "platform": {"type": "string"},
            "inputs": {"type": "array", "items": _METADATA_TENSOR},
            "outputs": {"type": "array", "items": _METADATA_TENSOR},
        },
    },
    "inference_response": {
        "$defs": _DEFS,
        "type": "object",
        "required": ["model_name", "outputs"],
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "id": {"type": "string"},
            "parameters": {"$ref": "#/$defs/parameters"},
            "outputs": {"type": "array", "items": _RESPONSE_OUTPUT},
        },
    },
    # Every error: $inference_error_response and the metadata error objects are all this.
    "error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string", "minLength": 1}},
        "additionalProperties": False,
    },
}

for _schema in SCHEMAS.values():
    jsonschema.Draft202012Validator.check_schema(_schema)


def validate(kind: str, body: Any) -> None:
    """Raise jsonschema.ValidationError unless `body` is a valid `kind` message."""
    jsonschema.validate(body, SCHEMAS[kind], cls=jsonschema.Draft202012Validator)


def split_binary(body: bytes, header_length: str | None) -> tuple[Any, bytes]:
    """(the JSON header as parsed, the binary part) of a response body."""
    if header_length is None:
        return json.loads(body), b""
    n = int(header_length)
    return json.loads(body[:n]), body[n:]
