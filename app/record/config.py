"""Where the record is kept, read from the environment the service runs in.

`DATABASE_URL` (a `postgresql://` URL) puts it in PostgreSQL; without it the record is a SQLite
file `record.sqlite3` in `RECORD_DIR` (default `var/record`, relative to the working directory,
so that `python -m app audit ...` run where the service runs finds the same store).

The URL holds a password: it is kept out of `repr`, and `redact` strips it (and the whole URL)
from any message before that message is logged or shown.
"""

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

DEFAULT_RECORD_DIR: Final = Path("var/record")
SQLITE_NAME: Final = "record.sqlite3"
_SCHEMES: Final = ("postgresql", "postgres")
_USERINFO: Final = re.compile(r"(postgres(?:ql)?://)[^@/\s]*@")


class RecordConfigError(ValueError):
    """A setting of the record that cannot be used (its message never holds the URL)."""


@dataclass(frozen=True, slots=True)
class RecordConfig:
    record_dir: Path = DEFAULT_RECORD_DIR
    database_url: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.database_url is not None:
            check_database_url(self.database_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> "RecordConfig":
        """From DATABASE_URL and RECORD_DIR, named in any case as the service's settings are
        (app/core/config.py), so that `audit` finds the store the service uses."""
        url = _setting(environ, "DATABASE_URL").strip() or None
        record_dir = _setting(environ, "RECORD_DIR").strip()
        return cls(Path(record_dir) if record_dir else DEFAULT_RECORD_DIR, url)

    @property
    def backend(self) -> str:
        return "postgresql" if self.database_url else "sqlite"

    @property
    def sqlite_path(self) -> Path:
        return self.record_dir / SQLITE_NAME

    def describe(self) -> str:
        """Where the record is, safe to log: the database's host and name, or the file."""
        if self.database_url is None:
            return f"sqlite:{self.sqlite_path}"
        parts = urlsplit(self.database_url)
        host = parts.hostname or "local socket"
        try:
            port = f":{parts.port}" if parts.port else ""
        except ValueError:  # not a number: the connection will say so, redacted
            port = ""
        return f"postgresql://{host}{port}{parts.path}"

    def redact(self, text: str) -> str:
        return redact(text, self.database_url)


def _setting(environ: Mapping[str, str], name: str) -> str:
    """`name`'s value in `environ`, the upper-case spelling first, else any other ("")."""
    if name in environ:
        return environ[name]
    return next((value for key, value in environ.items() if key.upper() == name), "")


def redact(text: str, url: str | None) -> str:
    """`text` without `url`, its password or any user:password@ of a postgres URL in it."""
    if url:
        text = text.replace(url, "<DATABASE_URL>")
        password = urlsplit(url).password
        if password:
            text = text.replace(password, "***")
    return _USERINFO.sub(r"\1***@", text)


def check_database_url(url: str) -> None:
    """A postgresql:// URL that Python and libpq read alike. They disagree on where the
    password ends when it holds an unencoded '@', '/', '?' or '#' (libpq's user part ends at
    the first '@', Python's at the last before the first '/'), and then the password is not
    where `redact` looks for it: such a URL is refused, never shown."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # a bad port or an unbalanced '[' raise here
    except ValueError:
        raise RecordConfigError(
            "DATABASE_URL is not a URL that can be read (percent-encode the user name and "
            "password: '@' as %40, '/' as %2F, '[' as %5B)"
        ) from None
    if parts.scheme not in _SCHEMES:
        raise RecordConfigError("DATABASE_URL must be a postgresql:// URL")
    rest = url.split("://", 1)[1] if "://" in url else ""
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if rest.count("@") != authority.count("@") or authority.count("@") > 1:
        raise RecordConfigError(
            "DATABASE_URL has an '@', '/', '?' or '#' in its user name or password: "
            "percent-encode them ('@' as %40, '/' as %2F, '?' as %3F, '#' as %23)"
        )
