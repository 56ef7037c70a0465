"""RecordConfig: where the record is, and the database password kept out of every message."""

from pathlib import Path

import pytest

from app.record.config import DEFAULT_RECORD_DIR, RecordConfig, RecordConfigError, redact

URL = "postgresql://recorder:s3cr%40t-pw@db.internal:5433/predictions?sslmode=require"


def test_defaults_to_sqlite_in_var_record() -> None:
    config = RecordConfig.from_env({})
    assert (config.backend, config.record_dir) == ("sqlite", DEFAULT_RECORD_DIR)
    assert config.sqlite_path == Path("var/record/record.sqlite3")


def test_database_url_selects_postgres_and_stays_out_of_repr() -> None:
    config = RecordConfig.from_env({"DATABASE_URL": URL, "RECORD_DIR": "/data/record"})
    assert config.backend == "postgresql"
    assert config.record_dir == Path("/data/record")
    assert "s3cr" not in repr(config)
    assert "recorder" not in repr(config)
    assert config.describe() == "postgresql://db.internal:5433/predictions"


@pytest.mark.parametrize("url", ["mysql://u:pw@h/db", "pw-only-no-scheme"])
def test_refuses_another_scheme_without_echoing_it(url: str) -> None:
    with pytest.raises(RecordConfigError) as raised:
        RecordConfig.from_env({"DATABASE_URL": url})
    assert "pw" not in str(raised.value)


@pytest.mark.parametrize(
    "message",
    [
        f"could not connect to {URL}",
        "password authentication failed: s3cr%40t-pw",
        "dsn postgres://someone:other@host/db failed",
    ],
)
def test_redact_strips_the_url_and_any_password(message: str) -> None:
    cleaned = redact(message, URL)
    assert "s3cr" not in cleaned
    assert "other@" not in cleaned


@pytest.mark.parametrize(
    ("environ", "record_dir", "url"),
    [
        ({"record_dir": "/data/lower"}, "/data/lower", None),
        ({"Record_Dir": "/data/mixed", "database_url": URL}, "/data/mixed", URL),
        ({"record_dir": "/data/lower", "RECORD_DIR": "/data/upper"}, "/data/upper", None),
    ],
    ids=["lower", "mixed", "upper first"],
)
def test_reads_its_settings_in_any_case_as_the_service_does(
    environ: dict[str, str], record_dir: str, url: str | None
) -> None:
    config = RecordConfig.from_env(environ)
    assert (config.record_dir, config.database_url) == (Path(record_dir), url)
