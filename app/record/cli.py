"""`python -m app audit verify|replay|export|prune`: the operator's tools on the record.

The store is the one the service uses, found from the same environment (DATABASE_URL, else the
SQLite file in RECORD_DIR; app/record/config.py). Exit codes: 0 all is well, 1 problems found
(or the store cannot be read), 2 usage. No message shows DATABASE_URL or its password.

Only `prune` writes, and migrates the schema as the service does on start. `verify`, `replay` and
`export` write nothing: an auditor may run them with a read-only role, or on a copy kept as
evidence, which must come out as it went in; a store at another schema than this code's is
named, not migrated.
"""

import argparse
import contextlib
import csv
import json
import os
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

from app.record import audit
from app.record.config import RecordConfig, RecordConfigError
from app.record.entry import RecordError, epoch_ns
from app.record.outcomes import OutcomeColumns
from app.record.store import SCHEMA_VERSION, SqlStore, StoredLink, StoreError, open_store
from model.features import FEATURE_NAMES

PROG: Final = "python -m app audit"
FORMATS: Final = ("jsonl", "csv", "parquet")
PARQUET_ROW_GROUP: Final = 16_384  # rows held in memory at once when writing parquet
DAY_NS: Final = 86_400 * 1_000_000_000
_EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST: Final = datetime(2262, 4, 11, tzinfo=UTC)  # 2**63 ns after 1970 is later that day

# Columns that later parts add to every export (the next issue's outcomes): append an
# audit.ExtraColumns here.
EXTRA_COLUMNS: list[audit.ExtraColumns] = []


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line and exit code 2, like argparse, no usage
        self.exit(2, f"{PROG}: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Check, replay, export and prune the record of predictions. The store is "
        "found as the service finds it: PostgreSQL when DATABASE_URL is set, else the SQLite "
        "file record.sqlite3 in RECORD_DIR (default var/record).",
    )
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("verify", help="walk every writer's hash chain; name what was altered")
    replay = sub.add_parser("replay", help="recompute the records of one model artifact")
    replay.add_argument("--model", type=Path, required=True, help="the artifact's JSON file")
    export = sub.add_parser("export", help="one row per scored row, streamed")
    export.add_argument("--since", type=_when, help="ISO 8601 date or time (UTC if no zone)")
    export.add_argument("--until", type=_when, help="exclusive; ISO 8601 (UTC if no zone)")
    export.add_argument("--format", choices=FORMATS, required=True)
    export.add_argument("--output", default="-", help="a file, or - for standard output")
    prune = sub.add_parser("prune", help="delete the records answered more than DAYS ago")
    prune.add_argument("--older-than", type=_days, required=True, metavar="DAYS")
    return p


def main(argv: Sequence[str]) -> int:
    try:
        args = parser().parse_args(list(argv))
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else 2
    try:
        config = RecordConfig.from_env()
    except RecordConfigError as exc:
        return _fail(str(exc), 2)
    if args.command == "export" and args.format == "parquet" and args.output == "-":
        return _fail("parquet needs --output FILE", 2)
    if config.backend == "sqlite" and not config.sqlite_path.is_file():
        return _fail(f"no record at {config.sqlite_path} (set RECORD_DIR or DATABASE_URL)", 1)
    try:
        with open_store(config, read_only=args.command not in _WRITING) as store:
            if args.command in _WRITING:
                store.migrate()
            elif problem := _schema_problem(store.schema_version()):
                return _fail(f"{config.describe()}: {problem}")
            return _COMMANDS[args.command](store, args)
    except StoreError as exc:
        return _fail(f"cannot read the record ({config.describe()}): {config.redact(str(exc))}")
    except BrokenPipeError:  # `export | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 0
    except OSError as exc:  # the export's file: a folder that is not there, a full disk
        return _fail(f"cannot write {exc.filename or 'the output'}: {exc.strerror or exc}", 1)


def _schema_problem(found: int) -> str | None:
    if found == SCHEMA_VERSION:
        return None
    if found == 0:
        return "holds no record"
    if found < SCHEMA_VERSION:
        return (
            f"the record is at schema {found}, this code reads {SCHEMA_VERSION}: start the "
            "service on it once (it migrates the schema on start), or read it with the release "
            "that wrote it"
        )
    return f"the record is at schema {found}, newer than this code's {SCHEMA_VERSION}"


def _verify(store: SqlStore, args: argparse.Namespace) -> int:
    problems = audit.verify(store)
    for problem in problems:
        print(problem.describe())
    writers = len(store.writers())
    print(f"{len(problems)} problem(s) in the chains of {writers} writer(s)", file=sys.stderr)
    return 1 if problems else 0


def _replay(store: SqlStore, args: argparse.Namespace) -> int:
    from model.artifact import ArtifactError, load_artifact

    try:
        artifact = load_artifact(args.model)
    except ArtifactError as exc:
        return _fail(str(exc), 2)
    result = audit.replay(store, artifact)
    for difference in result.differences:
        print(difference.describe())
    print(
        f"replayed {result.records} record(s), {result.rows} row(s) of model "
        f"{artifact.model_version}: {len(result.differences)} difference(s)",
        file=sys.stderr,
    )
    return 1 if result.differences else 0


def _export(store: SqlStore, args: argparse.Namespace) -> int:
    since = None if args.since is None else epoch_ns(args.since)
    until = None if args.until is None else epoch_ns(args.until)
    invalid: list[str] = []

    def note(link: StoredLink, exc: RecordError) -> None:
        invalid.append(f"writer {link.writer_id} seq {link.seq}: {exc}")

    extra = [*EXTRA_COLUMNS, OutcomeColumns(store)]
    columns = audit.export_columns(extra)
    # closing() ends the read while the store is open, however the writing ends (a closed pipe)
    with contextlib.closing(audit.export_rows(store, since, until, extra, note)) as rows:
        if args.format == "parquet":
            count = _write_parquet(Path(args.output), columns, rows)
        else:
            with _open_text(args.output) as out:
                writer = _write_jsonl if args.format == "jsonl" else _write_csv
                count = writer(out, columns, rows)
    for line in invalid:
        print(f"skipped an invalid record: {line} (run verify)", file=sys.stderr)
    print(f"exported {count} row(s)", file=sys.stderr)
    return 1 if invalid else 0


def _prune(store: SqlStore, args: argparse.Namespace) -> int:
    now = time.time_ns()
    deleted = store.prune(now - int(args.older_than * DAY_NS), now)
    print(f"deleted {sum(deleted.values())} record(s) of {len(deleted)} writer(s)", file=sys.stderr)
    return 0


_COMMANDS: Final = {"verify": _verify, "replay": _replay, "export": _export, "prune": _prune}
_WRITING: Final = frozenset({"prune"})


# -- output -----------------------------------------------------------------------------------
def _open_text(output: str) -> IO[str]:
    if output == "-":
        return open(sys.stdout.fileno(), "w", encoding="utf-8", newline="", closefd=False)
    return open(output, "w", encoding="utf-8", newline="")


def _write_jsonl(out: IO[str], columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    """One JSON object per line. The rows of a record share most of their values (the same
    objects): each column's last encoding is kept and reused while its value is the same
    object, so a row costs the encoding of the values that change."""
    keys = [json.dumps(name) + ":" for name in columns]
    last: list[tuple[Any, str]] = [(_UNSET, "")] * len(columns)
    count = 0
    for row in rows:
        parts = []
        for i, value in enumerate(row):
            seen, text = last[i]
            if value is not seen:
                text = keys[i] + _json_value(value)
                last[i] = (value, text)
            parts.append(text)
        out.write("{" + ",".join(parts) + "}\n")
        count += 1
    return count


_UNSET: Final = object()
_encode_str: Final = json.JSONEncoder(ensure_ascii=True).encode


def _json_value(value: Any) -> str:
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("a non-finite float cannot be exported")
        return float.__repr__(value)  # what json writes: the shortest exact text
    return _encode_str(value)


# A spreadsheet reads a cell starting with one of these as a formula (OWASP, "CSV Injection").
FORMULA_STARTS: Final = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: str) -> str:
    """A text cell a spreadsheet shows as text: one starting like a formula gets a leading
    single quote (OWASP's escape; the quote is part of the exported text)."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _write_csv(out: IO[str], columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    """Every text cell quoted (so that a spreadsheet splitting on its locale's separator
    cannot start a new cell inside one) and escaped by `csv_text`; numbers are left as numbers
    (a negative contribution is -0.01, which no spreadsheet runs), floats as repr: the
    shortest text that reads back exactly."""
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_NONNUMERIC)
    writer.writerow([csv_text(name) for name in columns])
    count = 0
    for row in rows:
        writer.writerow([csv_text(v) if type(v) is str else v for v in row])
        count += 1
    return count


def _write_parquet(path: Path, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> int:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise StoreError("store_error", "parquet needs pyarrow: pip install '.[audit]'") from None
    schema = _arrow_schema(pa, columns)
    count = 0
    with pq.ParquetWriter(path, schema) as writer:
        chunk: list[tuple[Any, ...]] = []
        for row in rows:
            chunk.append(row)
            if len(chunk) == PARQUET_ROW_GROUP:
                writer.write_table(_table(pa, schema, chunk))
                count += len(chunk)
                chunk = []
        if chunk or not count:
            writer.write_table(_table(pa, schema, chunk))
            count += len(chunk)
    return count


def _arrow_schema(pa: Any, columns: Sequence[str]) -> Any:
    ints = {"row", "seq", "status", "outcome_at_ns", *FEATURE_NAMES}
    floats = {"threshold", "confidence", "probability", "base_value", "latency_s"}
    fields = []
    for name in columns:
        if name in ints:
            kind = pa.int64()
        elif name in floats or name.startswith("contribution_"):
            kind = pa.float64()
        else:
            kind = pa.string()
        fields.append(pa.field(name, kind))
    return pa.schema(fields)


def _table(pa: Any, schema: Any, chunk: list[tuple[Any, ...]]) -> Any:
    arrays = [
        pa.array([row[i] for row in chunk], type=field.type) for i, field in enumerate(schema)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


# -- arguments --------------------------------------------------------------------------------
def _when(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {text!r}") from None
    when = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    if not _EARLIEST <= when <= _LATEST:  # what nanoseconds since 1970 in 63 bits can hold
        raise argparse.ArgumentTypeError(f"a time from 1970 to 2262 expected: {text!r}")
    return when


def _days(text: str) -> float:
    try:
        days = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of days: {text!r}") from None
    if not 0 < days < 100_000:
        raise argparse.ArgumentTypeError("DAYS must be more than 0")
    return days


def _fail(message: str, code: int = 1) -> int:
    print(f"{PROG}: {message}", file=sys.stderr)
    return code
