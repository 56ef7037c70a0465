"""The OpenAPI document carries only schemas something refers to, and every reference resolves:
FastAPI adds `HTTPValidationError` and `ValidationError` to every document, used or not."""

import copy
import json
import re
from typing import Any, Final

import pytest
from fastapi import FastAPI

from app.core.config import Settings
from app.main import create_app
from app.openapi.document import build_schema
from model.artifact import DEFAULT_ARTIFACT_PATH

REF: Final = re.compile(r'"\$ref": "#/components/schemas/([^"]+)"')


def settings(api_key: str | None) -> Settings:
    return Settings(model_path=DEFAULT_ARTIFACT_PATH, api_key=api_key)


def unreferenced(document: dict[str, Any]) -> set[str]:
    """Schemas no `$ref` elsewhere in the document names (read from its JSON text, apart from the
    code under test); a schema only an unreferenced one names is left to the next round."""
    schemas = document["components"]["schemas"]

    def named_outside(name: str) -> set[str]:
        rest = {k: v for k, v in schemas.items() if k != name}
        others = {**document, "components": {**document["components"], "schemas": rest}}
        return set(REF.findall(json.dumps(others)))

    return {name for name in schemas if name not in named_outside(name)}


@pytest.mark.slow
@pytest.mark.parametrize("api_key", [None, "a-key-for-the-keyed-document"])
def test_every_component_schema_is_referenced(api_key: str | None) -> None:
    document = create_app(settings(api_key)).openapi()
    assert document["components"]["schemas"]
    assert unreferenced(document) == set()


@pytest.mark.parametrize("api_key", [None, "a-key-for-the-keyed-document"])
def test_every_reference_resolves(api_key: str | None) -> None:
    document = create_app(settings(api_key)).openapi()
    names = set(REF.findall(json.dumps(document)))
    assert names
    assert names <= set(document["components"]["schemas"])


def test_the_check_finds_a_schema_nothing_names() -> None:
    document = copy.deepcopy(create_app(settings(None)).openapi())
    document["components"]["schemas"]["Orphan"] = {"type": "string"}
    assert unreferenced(document) == {"Orphan"}


def test_fastapis_validation_error_schemas_are_gone() -> None:
    """FastAPI's own document has them (the /v2 operations' 422s name them until dropped)."""
    raw = FastAPI.openapi(create_app(settings(None)))
    final = create_app(settings(None)).openapi()["components"]["schemas"]
    assert {"HTTPValidationError", "ValidationError"} <= set(raw["components"]["schemas"])
    assert not {"HTTPValidationError", "ValidationError"} & set(final)


def test_a_chain_of_references_is_kept_and_an_unused_one_dropped() -> None:
    app = create_app(settings(None))
    app.openapi_schema = None
    raw = FastAPI.openapi(app)
    # One the document keeps: FastAPI's own 422 schemas are dropped with its 422 answers, and a
    # set's order changes with the hash seed, so the pick is sorted, not the set's first.
    dropped = {"HTTPValidationError", "ValidationError"}
    used = sorted(set(REF.findall(json.dumps(raw["paths"]))) - dropped)[0]
    raw["components"]["schemas"]["Orphan"] = {"$ref": "#/components/schemas/OrphanChild"}
    raw["components"]["schemas"]["OrphanChild"] = {"type": "string"}
    raw["components"]["schemas"][used] = {"$ref": "#/components/schemas/Child"}
    raw["components"]["schemas"]["Child"] = {"type": "integer"}
    app.openapi_schema = raw  # what FastAPI.openapi returns from its cache
    schemas = build_schema(app, {})["components"]["schemas"]
    assert {used, "Child"} <= set(schemas)
    assert not {"Orphan", "OrphanChild", "HTTPValidationError", "ValidationError"} & set(schemas)
