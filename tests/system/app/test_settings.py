"""Settings come from environment variables, with defaults; bad values are refused by name."""

import asyncio
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from app.core.config import Settings, SettingsError, load_settings
from app.main import create_app
from app.openapi.examples import BENIGN
from model.artifact import DEFAULT_ARTIFACT_PATH
from tests.live_server import SERVICE_VARIABLES


@pytest.fixture(autouse=True)
def clean_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """No service variable from the developer's shell leaks into these tests, the apps they
    start record into a temporary folder (never the checkout's var/record), and the logging
    level create_app sets does not leak out of them."""
    for name in SERVICE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("RECORD_DIR", str(tmp_path_factory.mktemp("record")))
    level = logging.getLogger("app").level
    yield
    logging.getLogger("app").setLevel(level)


def call(app: FastAPI, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One request to the app in process, with its lifespan (the model) started."""

    async def go() -> httpx.Response:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECORD_DIR")
    settings = load_settings()
    assert settings.model_path == DEFAULT_ARTIFACT_PATH
    assert settings.model_path.name == "weights.json"
    assert settings.model_path.parent.name == "model"
    assert settings.max_batch_size == 1000
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.log_level == "info"
    assert settings.api_key is None
    assert (settings.host, settings.port, settings.workers) == ("127.0.0.1", 8000, 1)
    assert settings.shutdown_drain_seconds == 1.0
    assert settings.default_confidence == 0.95
    assert (settings.header_timeout_seconds, settings.body_timeout_seconds) == (10.0, 30.0)
    assert (settings.max_header_bytes, settings.max_header_count) == (16384, 100)
    assert settings.max_connections == 1000
    assert settings.model_sha256 is None
    assert settings.v2_model_name == "malignancy-predictor"
    assert settings.v2_max_rows == 100_000
    # 100,000 rows of nine 8-byte binary values (7,200,000 bytes) and their JSON header fit.
    assert settings.v2_max_body_bytes == 8 * 1024 * 1024 > 100_000 * 9 * 8 + 64 * 1024
    assert settings.metrics_port == 9464
    assert settings.prometheus_multiproc_dir is None
    assert settings.log_format == "text"
    assert settings.cors_allow_origins == ()
    assert settings.root_path == ""
    assert settings.record_dir == Path("var/record")


def test_values_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name, value in {
        "MODEL_PATH": str(tmp_path / "w.json"),
        "MAX_BATCH_SIZE": "25",
        "MAX_BODY_BYTES": "4096",
        "LOG_LEVEL": "DEBUG",
        "API_KEY": "k-1",
        "HOST": "0.0.0.0",
        "PORT": "9000",
        "WORKERS": "4",
        "SHUTDOWN_DRAIN_SECONDS": "2.5",
        "DEFAULT_CONFIDENCE": "0.99",
        "HEADER_TIMEOUT_SECONDS": "2",
        "BODY_TIMEOUT_SECONDS": "2",
        "MAX_HEADER_BYTES": "8192",
        "MAX_HEADER_COUNT": "50",
        "MAX_CONNECTIONS": "10",
        "MODEL_SHA256": " " + "AB" * 32,
        "V2_MODEL_NAME": "wbc_v1.2",
        "V2_MAX_ROWS": "50",
        "V2_MAX_BODY_BYTES": "2048",
        "METRICS_PORT": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "LOG_FORMAT": "JSON",
        "CORS_ALLOW_ORIGINS": "http://localhost:3000, https://app.example.org",
        "ROOT_PATH": "/ml/predictor",
    }.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.model_path == tmp_path / "w.json"
    assert settings.max_batch_size == 25
    assert settings.max_body_bytes == 4096
    assert settings.log_level == "debug"
    assert settings.api_key is not None
    assert settings.api_key.get_secret_value() == "k-1"
    assert (settings.host, settings.port, settings.workers) == ("0.0.0.0", 9000, 4)
    assert settings.shutdown_drain_seconds == 2.5
    assert settings.default_confidence == 0.99
    assert (settings.header_timeout_seconds, settings.body_timeout_seconds) == (2.0, 2.0)
    assert (settings.max_header_bytes, settings.max_header_count) == (8192, 50)
    assert settings.max_connections == 10
    assert settings.model_sha256 == "ab" * 32  # the hash in lower case, spaces stripped
    assert (settings.v2_model_name, settings.v2_max_rows) == ("wbc_v1.2", 50)
    assert settings.v2_max_body_bytes == 2048
    assert settings.metrics_port == 0
    assert settings.prometheus_multiproc_dir == tmp_path / "metrics"
    assert settings.log_format == "json"
    assert settings.cors_allow_origins == ("http://localhost:3000", "https://app.example.org")
    assert settings.root_path == "/ml/predictor"


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        ("*", ("*",)),
        ("http://127.0.0.1:8080", ("http://127.0.0.1:8080",)),
        ("http://[::1]:3000,https://a.example", ("http://[::1]:3000", "https://a.example")),
        (" , ", ()),
    ],
)
def test_cors_origins_are_a_comma_separated_list(
    monkeypatch: pytest.MonkeyPatch, value: str, origins: tuple[str, ...]
) -> None:
    monkeypatch.setenv("CORS_ALLOW_ORIGINS", value)
    assert load_settings().cors_allow_origins == origins


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), ("0.25", 0.25), ("300", 300.0)])
def test_drain_seconds_bounds_are_accepted(
    monkeypatch: pytest.MonkeyPatch, value: str, seconds: float
) -> None:
    monkeypatch.setenv("SHUTDOWN_DRAIN_SECONDS", value)
    assert load_settings().shutdown_drain_seconds == seconds


def test_names_are_case_insensitive(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("max_batch_size", "7")
    assert load_settings().max_batch_size == 7


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("MODEL_PATH", ""),
        ("MAX_BATCH_SIZE", "0"),
        ("MAX_BATCH_SIZE", "many"),
        ("MAX_BATCH_SIZE", "2.5"),
        ("MAX_BATCH_SIZE", "1000000"),
        ("MAX_BODY_BYTES", "10"),
        ("MAX_BODY_BYTES", "1MiB"),
        ("LOG_LEVEL", "verbose"),
        ("API_KEY", ""),
        ("API_KEY", "   "),
        ("HOST", ""),
        ("PORT", "0"),
        ("PORT", "65536"),
        ("PORT", "eighty"),
        ("WORKERS", "0"),
        ("WORKERS", "-1"),
        ("SHUTDOWN_DRAIN_SECONDS", "-0.5"),
        ("SHUTDOWN_DRAIN_SECONDS", "301"),
        ("SHUTDOWN_DRAIN_SECONDS", "soon"),
        ("SHUTDOWN_DRAIN_SECONDS", "1s"),
        ("SHUTDOWN_DRAIN_SECONDS", "nan"),
        ("SHUTDOWN_DRAIN_SECONDS", "inf"),
        ("SHUTDOWN_DRAIN_SECONDS", ""),
        ("DEFAULT_CONFIDENCE", "0"),
        ("DEFAULT_CONFIDENCE", "1"),
        ("DEFAULT_CONFIDENCE", "95"),
        ("DEFAULT_CONFIDENCE", "-0.5"),
        ("DEFAULT_CONFIDENCE", "nan"),
        ("DEFAULT_CONFIDENCE", "high"),
        ("DEFAULT_CONFIDENCE", "95%"),
        ("DEFAULT_CONFIDENCE", ""),
        ("HEADER_TIMEOUT_SECONDS", "0"),
        ("HEADER_TIMEOUT_SECONDS", "301"),
        ("HEADER_TIMEOUT_SECONDS", "inf"),
        ("BODY_TIMEOUT_SECONDS", "-1"),
        ("BODY_TIMEOUT_SECONDS", "5"),  # under the header deadline (10 s)
        ("BODY_TIMEOUT_SECONDS", "nan"),
        ("MAX_HEADER_BYTES", "512"),
        ("MAX_HEADER_BYTES", "16k"),
        ("MAX_HEADER_BYTES", "2000000"),
        ("MAX_HEADER_COUNT", "0"),
        ("MAX_HEADER_COUNT", "20000"),
        ("MAX_CONNECTIONS", "0"),
        ("MAX_CONNECTIONS", "lots"),
        ("MODEL_SHA256", "8cc658d9533e"),  # a model version is a prefix, not the pin
        ("MODEL_SHA256", "z" * 64),
        ("MODEL_SHA256", ""),
        ("V2_MODEL_NAME", ""),
        ("V2_MODEL_NAME", "a/b"),
        ("V2_MODEL_NAME", "-leading-dash"),
        ("V2_MODEL_NAME", "x" * 129),
        ("V2_MAX_ROWS", "0"),
        ("V2_MAX_ROWS", "1000001"),
        ("V2_MAX_ROWS", "lots"),
        ("V2_MAX_BODY_BYTES", "1000"),
        ("V2_MAX_BODY_BYTES", str(256 * 1024 * 1024 + 1)),
        ("METRICS_PORT", "-1"),
        ("METRICS_PORT", "65536"),
        ("METRICS_PORT", "prom"),
        ("PROMETHEUS_MULTIPROC_DIR", ""),
        ("LOG_FORMAT", "xml"),
        ("LOG_FORMAT", ""),
        ("CORS_ALLOW_ORIGINS", "localhost:3000"),
        ("CORS_ALLOW_ORIGINS", "http://localhost:3000/"),
        ("CORS_ALLOW_ORIGINS", "http://localhost:3000/app"),
        ("CORS_ALLOW_ORIGINS", "ftp://files.example"),
        ("CORS_ALLOW_ORIGINS", "http://user@host.example"),
        ("CORS_ALLOW_ORIGINS", "http://host.example:99999"),
        ("CORS_ALLOW_ORIGINS", "http://a.example,null"),
        ("ROOT_PATH", "ml"),
        ("ROOT_PATH", "/ml/"),
        ("ROOT_PATH", "/"),
        ("ROOT_PATH", "/ml/../admin"),
        ("ROOT_PATH", "/ml predictor"),
        ("ROOT_PATH", "/ml?x=1"),
        ("ROOT_PATH", "/" + "a" * 300),
        ("API_KEYS", ""),  # set but empty: not "no authentication"
        ("API_KEYS", " , "),
        ("DATABASE_URL", "postgresql://user:pa@ss#word@127.0.0.1:1/db"),
        ("DATABASE_URL", "postgresql://user:word@h:99999/db"),
        ("DATABASE_URL", "mysql://user@h/db"),
        ("HOST", "a" * 70),  # a label past 63 characters: no resolver takes it
        ("METRICS_HOST", "b" * 70),
        ("RECORD_DIR", "pyproject.toml"),  # a file, not a folder
    ],
)
def test_bad_values_are_refused_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"^invalid settings: {variable}: ") as caught:
        load_settings()
    assert "\n" not in str(caught.value)
    with pytest.raises(SettingsError):
        create_app()  # the factory reads the same environment


@pytest.mark.parametrize(
    "keys",
    [
        {"API_KEYS": "lab=s3cret-one,ward=s3cret-one"},
        {"API_KEY": "s3cret-one", "API_KEYS": "lab=s3cret-one"},
    ],
)
def test_one_key_under_two_names_is_refused(
    monkeypatch: pytest.MonkeyPatch, keys: dict[str, str]
) -> None:
    """The record names the caller by its key: a key shared by two names names neither."""
    for variable, value in keys.items():
        monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match="a key of its own") as caught:
        load_settings()
    assert "s3cret" not in str(caught.value)
    monkeypatch.setenv("API_KEYS", "lab=s3cret-one,ward=s3cret-two")
    monkeypatch.delenv("API_KEY", raising=False)
    assert sorted(load_settings().callers()) == ["lab", "ward"]


def test_metrics_port_must_differ_from_the_api_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("METRICS_PORT", "9000")
    with pytest.raises(SettingsError, match="METRICS_PORT must differ from PORT") as caught:
        load_settings()
    assert "\n" not in str(caught.value)


def test_several_bad_values_are_all_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "x")
    monkeypatch.setenv("WORKERS", "0")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert "PORT" in str(caught.value)
    assert "WORKERS" in str(caught.value)


def test_the_api_key_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "very-secret-key")
    settings = load_settings()
    assert "very-secret-key" not in repr(settings)
    assert "very-secret-key" not in str(settings.model_dump())


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.max_batch_size = 5  # type: ignore[misc]


def test_batch_limit_setting_is_enforced_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BATCH_SIZE", "2")
    app = create_app()
    ok = call(app, "POST", "/predict/batch", json={"instances": [BENIGN] * 2})
    assert ok.status_code == 200
    refused = call(app, "POST", "/predict/batch", json={"instances": [BENIGN] * 3})
    assert refused.status_code == 422
    assert "at most 2 items" in refused.json()["message"]


def test_body_limit_setting_is_enforced_and_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_BODY_BYTES", "2048")
    app = create_app()
    padded = json.dumps(BENIGN).ljust(2048).encode()
    headers = {"content-type": "application/json"}
    assert call(app, "POST", "/predict", content=padded, headers=headers).status_code == 200
    refused = call(app, "POST", "/predict", content=padded + b" ", headers=headers)
    assert refused.status_code == 413
    assert "2048 bytes" in refused.json()["message"]


def test_api_key_setting_protects_the_predictions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_KEY", "k")
    app = create_app()
    assert call(app, "POST", "/predict", json=BENIGN).status_code == 401
    answer = call(app, "POST", "/predict", json=BENIGN, headers={"X-API-Key": "k"})
    assert answer.status_code == 200
    assert call(app, "GET", "/health").status_code == 200


@pytest.mark.parametrize(("level", "access_logged"), [("info", True), ("warning", False)])
def test_log_level_setting(
    monkeypatch: pytest.MonkeyPatch, level: str, access_logged: bool
) -> None:
    monkeypatch.setenv("LOG_LEVEL", level.upper())
    create_app()
    assert logging.getLogger("app").level == getattr(logging, level.upper())
    assert logging.getLogger("app.access").isEnabledFor(logging.INFO) is access_logged


def test_model_path_setting_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    copy = tmp_path / "copy.json"
    copy.write_bytes(DEFAULT_ARTIFACT_PATH.read_bytes())
    monkeypatch.setenv("MODEL_PATH", str(copy))
    app = create_app()
    assert call(app, "GET", "/health").status_code == 200
    assert app.state.settings.model_path == copy
