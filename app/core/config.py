"""Service settings, read from environment variables (no prefix) with safe defaults.

MODEL_PATH      model/weights.json   the artifact to serve
MAX_BATCH_SIZE  1000                 most instances in one /predict/batch request
MAX_BODY_BYTES  1048576 (1 MiB)      largest request body; a bigger one gets 413
LOG_LEVEL       info                 critical, error, warning, info or debug
API_KEY         unset                when set, /predict, /predict/batch, /explain, /metrics,
                                     /feedback, /monitoring and the V2 infer routes need it in
                                     the X-API-Key header
API_KEYS        unset                named keys, name=key,name2=key2 (guard as API_KEY does)
RECORD          true                 keep the durable record of predictions; false: none
RECORD_DIR      var/record           folder of the record's SQLite file
DATABASE_URL    unset                a postgresql:// URL: the record is kept there instead
RECORD_RETENTION_DAYS  unset         the service prunes records older than this; unset: keeps all
RECORD_PRUNE_INTERVAL_SECONDS  3600  how often it prunes when RECORD_RETENTION_DAYS is set
MONITORING_WINDOW  200               /monitoring's recent window: the last N confirmed cases
DRIFT_WINDOW    500                  recorded rows drift is checked on
MONITORING_REFRESH_SECONDS  30       how old /monitoring's figures may be
HOST            127.0.0.1            address `python -m app` binds
PORT            8000                 port `python -m app` binds
WORKERS         1                    uvicorn worker processes of `python -m app`
DEFAULT_CONFIDENCE  0.95             confidence of the prediction sets when a request names none
SHUTDOWN_DRAIN_SECONDS  1.0          on SIGTERM, how long `python -m app` keeps serving its open
                                     connections (each answer then closes its connection)
                                     before it closes the rest; 0: close them at once
HEADER_TIMEOUT_SECONDS  10           a request's headers must arrive within it (408, or closed)
BODY_TIMEOUT_SECONDS    30           the whole request must arrive within it (408, or closed)
MAX_HEADER_BYTES        16384        request line plus headers, at most (431; 414 for a URL)
MAX_HEADER_COUNT        100          header fields per request, at most (431)
MAX_CONNECTIONS         1000         open connections per worker; one more gets 503
SEND_TIMEOUT_SECONDS    30           a client that reads none of its queued answers for this
                                     long is cut off
MODEL_SHA256            unset        the content hash MODEL_PATH must have, else no start
V2_MODEL_NAME   malignancy-predictor the model's name in the Open Inference Protocol's /v2 URLs
V2_MAX_ROWS     100000               most rows in one /v2 infer request
V2_MAX_BODY_BYTES  8388608 (8 MiB)   largest /v2 infer body: 100,000 rows of nine 8-byte binary
                                     values are 7,200,000 bytes, and as JSON ("10.0, " each) 5.4 MB
MAX_BUFFERED_BODY_BYTES  0           request body bytes one worker holds at once; past them,
                                     503 with Retry-After; 0: 4 x the larger of MAX_BODY_BYTES
                                     and V2_MAX_BODY_BYTES (32 MiB)
METRICS_PORT    9464                 port of the Prometheus exposition `python -m app` serves on
                                     METRICS_HOST (not behind API_KEY); 0: no metrics server
METRICS_HOST    127.0.0.1            address of the Prometheus exposition
PROMETHEUS_MULTIPROC_DIR  unset      where workers write their metrics (emptied at start);
                                     unset: a private temporary directory (removed at
                                     exit, or at the next start)
LOG_FORMAT      text                 text (one line per record) or json (JSON lines)
CORS_ALLOW_ORIGINS  unset            comma-separated origins browsers may call the API from
ROOT_PATH       unset                path prefix a proxy serves the service under, e.g. /ml
"""

import re
from pathlib import Path
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.record.config import RecordConfigError, check_database_url
from model.artifact import DEFAULT_ARTIFACT_PATH
from model.conformal import DEFAULT_CONFIDENCE

LogLevel = Literal["critical", "error", "warning", "info", "debug"]
LogFormat = Literal["text", "json"]
MIB: Final = 1024 * 1024
BUFFERED_BODIES: Final = 4  # of the largest allowed, MAX_BUFFERED_BODY_BYTES' default
DEFAULT_METRICS_PORT: Final = 9464  # Prometheus' registry of default ports lists it as free
# A path prefix: segments of URL-safe characters, no trailing slash, no dot segments.
_ROOT_PATH: Final = re.compile(r"(/[A-Za-z0-9_~-][A-Za-z0-9._~-]*)*")
_ORIGIN_SCHEMES: Final = frozenset({"http", "https"})
_CALLER: Final = re.compile(r"[A-Za-z0-9_.-]{1,32}")
DEFAULT_CALLER: Final = "default"


class SettingsError(ValueError):
    """The environment holds an invalid setting; the message is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        case_sensitive=False, extra="ignore", frozen=True, validate_default=True
    )

    model_path: Path = Field(
        default=DEFAULT_ARTIFACT_PATH, description="The model artifact (JSON) to serve."
    )
    max_batch_size: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=1000, description="Most instances accepted by one /predict/batch request."
    )
    max_body_bytes: Annotated[int, Field(ge=1024, le=64 * MIB)] = Field(
        default=MIB, description="Largest request body in bytes; larger bodies get 413."
    )
    log_level: LogLevel = Field(default="info", description="Log level of the service's logs.")
    api_key: SecretStr | None = Field(
        default=None,
        description="When set (or API_KEYS), /predict, /predict/batch, /explain, /metrics, "
        "/feedback, /monitoring and the V2 infer routes require header X-API-Key; its caller "
        "name in the record is `default`.",
    )
    api_keys: Annotated[tuple[tuple[str, SecretStr], ...], NoDecode] = Field(
        default=(),
        description="Named API keys, comma-separated name=key pairs (names: 1 to 32 of "
        "[A-Za-z0-9_.-]); the record names the caller by its key's name, never the key.",
    )
    record: bool = Field(
        default=True,
        description="Keep the durable record of every prediction (committed before it is "
        "answered); false turns it off, said at startup and in /model.",
    )
    record_dir: Path = Field(
        default=Path("var/record"),
        description="Folder of the record's SQLite file when DATABASE_URL is unset.",
    )
    record_retention_days: Annotated[float, Field(gt=0, le=36_500, allow_inf_nan=False)] | None = (
        Field(
            default=None,
            description="Delete the records answered more than this many days ago, at start and "
            "every RECORD_PRUNE_INTERVAL_SECONDS (as `audit prune`); unset: keep every record.",
        )
    )
    record_prune_interval_seconds: Annotated[float, Field(ge=1, le=86_400, allow_inf_nan=False)] = (
        Field(
            default=3600.0,
            description="How often the service prunes the record when RECORD_RETENTION_DAYS is "
            "set.",
        )
    )
    monitoring_window: Annotated[int, Field(ge=20, le=100_000)] = Field(
        default=200,
        description="The recent window of /monitoring: the last N confirmed cases.",
    )
    drift_window: Annotated[int, Field(ge=50, le=100_000)] = Field(
        default=500,
        description="Recorded rows whose scores drift is checked on (a full window is needed).",
    )
    monitoring_refresh_seconds: Annotated[float, Field(ge=1, le=3600, allow_inf_nan=False)] = Field(
        default=30.0,
        description="How often each worker recomputes the monitoring figures and their gauges"
        " (and how old /monitoring's may be).",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="A postgresql:// URL: the record is kept in that PostgreSQL database.",
    )
    host: str = Field(default="127.0.0.1", min_length=1, description="Bind address.")
    port: Annotated[int, Field(ge=1, le=65535)] = Field(default=8000, description="Bind port.")
    workers: Annotated[int, Field(ge=1, le=64)] = Field(
        default=1, description="Number of uvicorn worker processes."
    )
    default_confidence: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] = Field(
        default=DEFAULT_CONFIDENCE,
        description="Confidence of /predict's prediction_set when a request gives none; in (0, 1).",
    )
    # Bounded so that a typo cannot hold a stopping server for hours; orchestrators kill sooner.
    shutdown_drain_seconds: Annotated[float, Field(ge=0, le=300, allow_inf_nan=False)] = Field(
        default=1.0,
        description="Seconds `python -m app` keeps serving open connections after SIGTERM.",
    )
    metrics_port: Annotated[int, Field(ge=0, le=65535)] = Field(
        default=DEFAULT_METRICS_PORT,
        description="Port of the Prometheus exposition `python -m app` serves; 0: none.",
    )
    metrics_host: str = Field(
        default="127.0.0.1",
        min_length=1,
        description="Bind address of the Prometheus exposition (0.0.0.0 for a scraper elsewhere).",
    )
    prometheus_multiproc_dir: Path | None = Field(
        default=None,
        description=(
            "Directory of the workers' metric files (emptied at start); "
            "unset: a private temporary directory (removed at exit, or at the next start)."
        ),
    )
    log_format: LogFormat = Field(
        default="text", description="Log layout: text lines, or JSON lines (one object a line)."
    )
    cors_allow_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="Origins (scheme://host[:port], comma-separated, or *) browsers may call from.",
    )
    root_path: str = Field(
        default="",
        max_length=256,
        description="Path prefix a reverse proxy serves the service under (e.g. /ml).",
    )

    # The request limits of `python -m app` (app/server/edge.py), bounded so that a typo
    # cannot switch one off.
    header_timeout_seconds: Annotated[float, Field(gt=0, le=300, allow_inf_nan=False)] = Field(
        default=10.0,
        description="Seconds a request's headers may take to arrive (408 or closed after).",
    )
    body_timeout_seconds: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = Field(
        default=30.0,
        description="Seconds a whole request, body included, may take to arrive (408 after).",
    )
    max_header_bytes: Annotated[int, Field(ge=1024, le=MIB)] = Field(
        default=16 * 1024,
        description="Most bytes of request line and headers; more gets 431 (414 for a URL).",
    )
    max_header_count: Annotated[int, Field(ge=8, le=10_000)] = Field(
        default=100, description="Most header fields in one request; more gets 431."
    )
    max_connections: Annotated[int, Field(ge=1, le=100_000)] = Field(
        default=1000, description="Most open connections per worker; one more gets 503."
    )
    # At least a second: a loaded client may pause that long; at most an hour, like the body's.
    send_timeout_seconds: Annotated[float, Field(ge=1, le=3600, allow_inf_nan=False)] = Field(
        default=30.0,
        description="Seconds a client may read none of its queued answers before it is cut off.",
    )
    model_sha256: Annotated[str | None, Field(pattern=r"^[0-9a-f]{64}$")] = Field(
        default=None,
        description="When set, the content hash (content_sha256) MODEL_PATH must have to start.",
    )

    @field_validator("body_timeout_seconds")
    @classmethod
    def _body_outlasts_headers(cls, value: float, info: ValidationInfo) -> float:
        # The body's deadline counts from the same start as the headers' (the request's).
        headers = info.data.get("header_timeout_seconds")
        if headers is not None and value < headers:
            raise ValueError("must be at least HEADER_TIMEOUT_SECONDS: it counts the whole request")
        return value

    @field_validator("model_sha256", mode="before")
    @classmethod
    def _lower_case_hash(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    # A name that needs no escaping in a URL path segment, as Triton's and KServe's clients
    # insert it unescaped (tritonclient quotes it; KServe's client does not).
    v2_model_name: str = Field(
        default="malignancy-predictor",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="The model's name in the Open Inference Protocol's /v2/models/{name} URLs.",
    )
    v2_max_rows: Annotated[int, Field(ge=1, le=1_000_000)] = Field(
        default=100_000, description="Most rows (biopsies) in one /v2 infer request."
    )
    # 100,000 rows of nine INT64 or FP64 binary values are 7,200,000 bytes (6.9 MiB) plus the
    # JSON header; the same rows as JSON tensors ("10.0, " per value) are about 5.4 MB.
    v2_max_body_bytes: Annotated[int, Field(ge=1024, le=256 * MIB)] = Field(
        default=8 * MIB,
        description="Largest /v2 infer request body in bytes; larger bodies get 413.",
    )
    # Bodies are held whole while their request runs (JSON is parsed from all its bytes): the
    # sum, not each, is what bounds a worker's memory. Four of the largest at once, by default.
    max_buffered_body_bytes: Annotated[int, Field(ge=0, le=4096 * MIB)] = Field(
        default=0,
        description="Request body bytes one worker holds at once; past them, 503 with "
        "Retry-After. 0: four times the larger of MAX_BODY_BYTES and V2_MAX_BODY_BYTES.",
    )

    @field_validator("max_buffered_body_bytes")
    @classmethod
    def _holds_the_largest_body(cls, value: int, info: ValidationInfo) -> int:
        data = info.data
        largest: int = max(data.get("max_body_bytes", 0), data.get("v2_max_body_bytes", 0))
        if value == 0:
            return BUFFERED_BODIES * largest
        if value < largest:
            raise ValueError(
                "must be 0 or at least MAX_BODY_BYTES and V2_MAX_BODY_BYTES: the largest body "
                "allowed must fit"
            )
        return value

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lower_case_word(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cors_allow_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("cors_allow_origins")
    @classmethod
    def _exact_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        # Browsers send the origin exactly as scheme://host[:port]; anything else would never
        # match, so a typo (a trailing slash, a path) must stop startup rather than block callers.
        for origin in origins:
            if origin != "*" and not _is_origin(origin):
                raise ValueError(
                    "each origin must be * or scheme://host[:port] (http or https, no path)"
                )
        return origins

    @field_validator("root_path")
    @classmethod
    def _path_prefix(cls, value: str) -> str:
        if not _ROOT_PATH.fullmatch(value) or any(p in {".", ".."} for p in value.split("/")):
            raise ValueError("must be empty or a path like /ml/predictor (no trailing slash)")
        return value

    @model_validator(mode="after")
    def _distinct_ports(self) -> "Settings":
        if self.metrics_port == self.port:
            raise ValueError("METRICS_PORT must differ from PORT (or be 0 for no metrics server)")
        return self

    @model_validator(mode="after")
    def _distinct_keys(self) -> "Settings":
        # One key under two names: the record could not say which caller sent a request.
        keys = [key.get_secret_value() for key in self.callers().values()]
        if len(set(keys)) != len(keys):
            raise ValueError("API_KEY and API_KEYS must give every caller a key of its own")
        return self

    @field_validator("model_path", "prometheus_multiproc_dir", "record_dir", mode="before")
    @classmethod
    def _non_empty_path(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            raise ValueError("must not be empty")
        return value

    @field_validator("api_keys", mode="before")
    @classmethod
    def _named_keys(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs = []
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            name, sep, key = part.partition("=")
            if not sep or not _CALLER.fullmatch(name.strip()) or not key.strip():
                raise ValueError("must be comma-separated name=key pairs (the key not empty)")
            pairs.append((name.strip(), SecretStr(key.strip())))
        if not pairs:  # set but empty (say `-e API_KEYS=$UNSET_VAR`): not "no authentication"
            raise ValueError("must not be empty or blank; unset API_KEYS to disable authentication")
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names) or (DEFAULT_CALLER in names):
            raise ValueError(f"names must be distinct and not {DEFAULT_CALLER!r}")
        return tuple(pairs)

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            try:
                check_database_url(value.get_secret_value())
            except RecordConfigError as exc:  # its message never holds the URL
                raise ValueError(str(exc).removeprefix("DATABASE_URL ")) from None
        return value

    @field_validator("host", "metrics_host")
    @classmethod
    def _host_name(cls, value: str) -> str:
        try:  # what the resolver will do with it: a label of 64 characters or more fails
            value.encode("idna")
        except UnicodeError:
            raise ValueError("must be a host name or an IP address") from None
        return value

    @field_validator("record_dir")
    @classmethod
    def _record_folder(cls, value: Path) -> Path:
        if value.exists() and not value.is_dir():
            raise ValueError(f"{value} exists and is not a folder")
        return value

    def callers(self) -> dict[str, SecretStr]:
        """Each API key by its caller's name: API_KEY as `default`, then API_KEYS."""
        named = dict(self.api_keys)
        return {DEFAULT_CALLER: self.api_key, **named} if self.api_key is not None else named

    @field_validator("api_key")
    @classmethod
    def _usable_key(cls, value: SecretStr | None) -> SecretStr | None:
        # An empty key (say `-e API_KEY=$UNSET_VAR`) must not silently switch authentication off.
        if value is not None and not value.get_secret_value().strip():
            raise ValueError("must not be empty or blank; unset API_KEY to disable authentication")
        return value


def _is_origin(origin: str) -> bool:
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:
        return False
    rebuilt = f"{parts.scheme}://{parts.netloc}"
    return (
        parts.scheme in _ORIGIN_SCHEMES
        and bool(parts.hostname)
        and "@" not in parts.netloc
        and rebuilt == origin
    )


def load_settings() -> Settings:
    """Settings from the environment; an invalid value raises SettingsError with one line."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None


def describe_errors(exc: ValidationError) -> str:
    """'PORT: Input should be less than or equal to 65535; ...' without the input values."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        name = ".".join(str(part) for part in error["loc"]).upper() or "settings"
        parts.append(f"{name}: {error['msg']}")
    return "invalid settings: " + "; ".join(parts)
