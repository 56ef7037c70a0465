"""`python -m app audit` on real stores: verify names what was altered or removed, prune keeps
verify passing, replay is bit for bit, export parses back; verify, replay and export write
nothing (a read-only role runs them, a store at an older schema is named and left as it was)."""

import csv
import hashlib
import io
import json
import os
import secrets
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from app.record.audit import BASE_COLUMNS, Problem, replay, verify
from app.record.config import RecordConfig
from app.record.entry import PredictionRecord
from app.record.outcomes import Outcome, OutcomeColumns, confirmed_cases, put_outcome
from app.record.store import SCHEMA_VERSION, SqlStore, open_store
from model.artifact import DEFAULT_ARTIFACT_PATH, load_artifact
from model.features import FEATURE_NAMES
from tests.postgres import PostgresServer
from tests.record_records import Answers

DAY_NS = 86_400 * 1_000_000_000
REPO = Path(__file__).resolve().parents[3]


def audit(config: RecordConfig, *args: str) -> subprocess.CompletedProcess[str]:
    settings = {"RECORD_DIR": str(config.record_dir)}
    if config.database_url:
        settings["DATABASE_URL"] = config.database_url
    return audit_with(settings, *args)


def audit_with(settings: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m app audit ARGS` with the record's settings as given, and no others."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RECORD_DIR")}
    env.update(settings)
    return subprocess.run(
        [sys.executable, "-m", "app", "audit", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=600,
    )


def append(store: SqlStore, writer: str, records: list[PredictionRecord]) -> None:
    head = store.head(writer)
    store.append(head, head.extend(records), 0)


def set_value(store: SqlStore, column: str, value: object, writer: str, seq: int) -> None:
    store.execute(
        f"UPDATE records SET {column} = ? WHERE writer_id = ? AND seq = ?",  # noqa: S608
        (value, writer, seq),
    )


def delete(store: SqlStore, writer: str, seq: int) -> None:
    store.execute("DELETE FROM records WHERE writer_id = ? AND seq = ?", (writer, seq))


# -- verify -----------------------------------------------------------------------------------
def test_verify_names_exactly_the_altered_and_the_removed_record(
    store: SqlStore, config: RecordConfig, answers: Answers
) -> None:
    a = [answers.single() for _ in range(12)]
    b = [answers.batch(4) for _ in range(6)]
    append(store, "writer-a", a)
    append(store, "writer-b", b)
    assert verify(store) == []
    assert audit(config, "verify").returncode == 0
    set_value(store, "threshold", 0.25, "writer-a", 5)  # one stored value edited
    delete(store, "writer-b", 3)  # one record deleted
    assert verify(store) == [
        Problem("altered", "writer-a", 5, 5, a[4].request_id),
        Problem("removed", "writer-b", 3, 3, None),
    ]
    run = audit(config, "verify")
    assert run.returncode == 1
    assert run.stdout.splitlines() == [
        f"altered: writer writer-a seq 5 request_id {a[4].request_id}",
        "removed: writer writer-b seq 3",
    ]


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("scores", bytes([1] * 9)),  # a valid input that was not the one scored
        ("probabilities", (0.5).hex().encode()),  # not even 8 bytes: invalid as a record
        ("caller", None),
        ("answered_ns", 0),
        ("status", 201),
    ],
)
def test_verify_catches_any_edited_column(
    store: SqlStore, answers: Answers, column: str, value: object
) -> None:
    append(store, "w", [answers.single() for _ in range(3)])
    set_value(store, column, value, "w", 2)
    assert verify(store) == [Problem("altered", "w", 2, 2, "req-" + str(answers.count - 1))]


def test_verify_catches_a_moved_record_and_a_cut_tail(store: SqlStore, answers: Answers) -> None:
    records = [answers.single() for _ in range(5)]
    append(store, "w", records)
    set_value(store, "seq", 10, "w", 2)  # record 2 moved to the end
    delete(store, "w", 5)
    problems = verify(store)
    assert Problem("removed", "w", 2, 2, None) in problems  # gone from its place
    assert Problem("altered", "w", 10, 10, records[1].request_id) in problems  # not its place
    store.execute("DELETE FROM records WHERE writer_id = 'w' AND seq >= 4")
    assert verify(store)[-1] == Problem("removed", "w", 4, 5, None)  # the head remembers 5


def test_prune_deletes_old_records_and_verify_still_passes(
    store: SqlStore, config: RecordConfig, answers: Answers
) -> None:
    now = time.time_ns()
    old, recent = now - 40 * DAY_NS, now - 5 * DAY_NS
    append(store, "mixed", [answers.single(answered_ns=old) for _ in range(4)])
    append(store, "mixed", [answers.single(answered_ns=recent) for _ in range(3)])
    append(store, "old-only", [answers.batch(3, answered_ns=old) for _ in range(2)])
    run = audit(config, "prune", "--older-than", "30")
    assert run.returncode == 0, run.stderr
    remaining = [(s.writer_id, s.seq) for s in store.links()]
    assert remaining == [("mixed", 5), ("mixed", 6), ("mixed", 7)]
    assert {c.writer_id: c.first_seq for c in store.cuts().values()} == {"mixed": 5, "old-only": 3}
    assert verify(store) == []
    assert audit(config, "verify").returncode == 0
    append(store, "mixed", [answers.single()])  # the chain goes on after the cut
    delete(store, "mixed", 6)
    assert verify(store) == [Problem("removed", "mixed", 6, 6, None)]


# -- replay -----------------------------------------------------------------------------------
def test_replay_of_10000_predictions_is_bit_for_bit_and_names_an_altered_input(
    store: SqlStore, config: RecordConfig, answers: Answers
) -> None:
    singles = [answers.single() for _ in range(4_000)]
    batches = [answers.batch(n) for n in (1_000, 2_500, 1, 2_499)]
    explained = [answers.explained() for _ in range(3)]
    append(store, "w", [*singles, *batches, *explained])
    artifact = load_artifact(DEFAULT_ARTIFACT_PATH)
    result = replay(store, artifact)
    assert (result.records, result.rows) == (4_007, 10_003)
    assert result.differences == []
    assert audit(config, "replay", "--model", str(DEFAULT_ARTIFACT_PATH)).returncode == 0

    scores = bytearray(batches[1].scores)
    row = 1_234
    scores[row * 9 + 5] = 11 - scores[row * 9 + 5]  # one score of one row changed
    set_value(store, "scores", bytes(scores), "w", 4_002)
    found = replay(store, artifact).differences
    assert found
    assert {(d.seq, d.row, d.request_id) for d in found} == {(4_002, row, batches[1].request_id)}
    assert "probability" in {d.field for d in found}
    run = audit(config, "replay", "--model", str(DEFAULT_ARTIFACT_PATH))
    assert run.returncode == 1
    assert all(
        f"seq 4002 request_id {batches[1].request_id} row {row}:" in line
        for line in run.stdout.splitlines()
    )


# -- export -----------------------------------------------------------------------------------
def exported_records(answers: Answers) -> list[PredictionRecord]:
    return [answers.single(), answers.batch(50), answers.explained(), answers.batch(7)]


def expected_rows(records: list[PredictionRecord]) -> list[tuple[str, int, float, int]]:
    return [
        (r.request_id, i, float(p), int(r.score_matrix()[i, 0]))
        for r in records
        for i, p in enumerate(r.probability_array())
    ]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_export_parses_back_row_for_row(
    store: SqlStore, config: RecordConfig, answers: Answers, tmp_path: Path, fmt: str
) -> None:
    records = exported_records(answers)
    append(store, "w", records)
    out = tmp_path / f"export.{fmt}"
    run = audit(config, "export", "--format", fmt, "--output", str(out))
    assert run.returncode == 0, run.stderr
    if fmt == "jsonl":
        rows = [json.loads(line) for line in out.read_text().splitlines()]
    elif fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(out.read_text())))
    else:
        rows = pq.read_table(out).to_pylist()
    assert list(rows[0]) == [*BASE_COLUMNS, *OutcomeColumns.names]
    assert {x["outcome"] for x in rows} <= {None, ""}  # no outcome was sent
    got = [
        (x["request_id"], int(x["row"]), float(x["probability"]), int(x[FEATURE_NAMES[0]]))
        for x in rows
    ]
    assert got == expected_rows(records)  # floats as stored, to the bit
    explained = [x for x in rows if x["request_id"] == records[2].request_id]
    base, contributions = records[2].explanation_values() or (None, ())
    assert float(explained[0]["base_value"]) == base
    assert [float(explained[0][f"contribution_{n}"]) for n in FEATURE_NAMES] == list(contributions)


def test_an_outcome_goes_with_the_row_monitoring_counts_it_against(
    store: SqlStore, config: RecordConfig, answers: Answers
) -> None:
    """A request id sent twice (a one-row answer, then a three-row batch): the outcome of row 0
    is exported on the first record's row only, that of row 2 on the batch's (the only record
    with a row 2), as confirmed_cases counts them; no row carries an outcome twice."""
    now = time.time_ns()
    first = answers.single(answered_ns=now - 2_000, request_id="sent-twice")
    second = answers.batch(3, answered_ns=now - 1_000, request_id="sent-twice")
    append(store, "w", [second, first])  # stored out of answered order: the order is by time
    sent: tuple[tuple[int, Outcome], ...] = ((0, "benign"), (2, "malignant"))
    for row, outcome in sent:
        put_outcome(store, "sent-twice", row, outcome, source=None, caller=None, now_ns=now)
    run = audit(config, "export", "--format", "jsonl")
    assert run.returncode == 0, run.stderr
    rows = [json.loads(line) for line in run.stdout.splitlines()]
    with_outcome = {
        (x["answered_at"], x["row"]): (x["outcome"], x["probability"]) for x in rows if x["outcome"]
    }
    counted = {(c.answered_ns, c.row): c for c in confirmed_cases(store)}
    assert len(with_outcome) == len(counted) == 2
    by_row = {row: outcome for (_, row), (outcome, _) in with_outcome.items()}
    assert by_row == {0: "benign", 2: "malignant"}
    for case in counted.values():
        exported = [v for (_, row), v in with_outcome.items() if row == case.row]
        assert exported == [("malignant" if case.malignant else "benign", case.probability)]
    assert {x["answered_at"] for x in rows if x["outcome"] and x["row"] == 0} == {
        next(x["answered_at"] for x in rows if x["seq"] == 2)  # the one-row record, seq 2
    }


def test_export_selects_by_answered_time(
    store: SqlStore, config: RecordConfig, answers: Answers
) -> None:
    day = 1_767_225_600 * 1_000_000_000  # 2026-01-01T00:00:00Z
    append(store, "w", [answers.single(answered_ns=day + i * DAY_NS) for i in range(5)])
    run = audit(
        config,
        "export",
        "--format",
        "jsonl",
        "--since",
        "2026-01-02",
        "--until",
        "2026-01-04T00:00:00+00:00",
    )
    assert run.returncode == 0, run.stderr
    stamps = [json.loads(line)["answered_at"] for line in run.stdout.splitlines()]
    assert stamps == ["2026-01-02T00:00:00.000000000Z", "2026-01-03T00:00:00.000000000Z"]


EXPORT_PEAK = """
import resource, sys
from app.record.cli import main
code = main(sys.argv[1:])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, code)
"""


def peak_kib(config: RecordConfig, out: Path) -> int:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RECORD_DIR")}
    env["RECORD_DIR"] = str(config.record_dir)
    if config.database_url:
        env["DATABASE_URL"] = config.database_url
    run = subprocess.run(
        [sys.executable, "-c", EXPORT_PEAK, "export", "--format", "jsonl", "--output", str(out)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=900,
        check=True,
    )
    kib, code = run.stdout.split()
    assert code == "0", run.stderr
    return int(kib)


@pytest.mark.slow
def test_export_of_a_million_rows_runs_in_constant_memory(
    store: SqlStore, config: RecordConfig, answers: Answers, tmp_path: Path
) -> None:
    append(store, "w", [answers.batch(10)])
    baseline = peak_kib(config, tmp_path / "small.jsonl")  # the interpreter and its imports
    template = answers.batch(10)
    fields = {name: getattr(template, name) for name in PredictionRecord.__slots__}
    for start in range(0, 100_000, 10_000):  # 100,000 records of 10 rows
        batch = [
            PredictionRecord(**{**fields, "request_id": f"big-{start + i}"}) for i in range(10_000)
        ]
        head = store.head("big")
        store.append(head, head.extend(batch), 0)
    out = tmp_path / "big.jsonl"
    peak = peak_kib(config, out)
    with out.open() as f:
        assert sum(1 for _ in f) == 1_000_010
    # All 100,000 stored rows held at once would take hundreds of MiB; a stream, a few.
    assert peak - baseline < 40 * 1024, f"peak {peak} KiB against {baseline} KiB"


def negatively_explained(answers: Answers) -> PredictionRecord:
    for _ in range(100):
        record = answers.explained()
        _, contributions = record.explanation_values() or (0.0, ())
        if min(contributions) < 0:
            return record
    raise AssertionError("no explanation with a negative contribution in 100 random rows")


def test_csv_export_escapes_every_cell_a_spreadsheet_would_run(
    store: SqlStore, config: RecordConfig, answers: Answers, tmp_path: Path
) -> None:
    # values the record accepts (visible ASCII; case references of [A-Za-z0-9._:/+=@-])
    formulas = [
        answers.single(request_id="=1+2", case_ref="@SUM", caller="-key"),
        negatively_explained(answers),  # a number starting with -, left as it is
        answers.single(request_id="+cmd", case_ref="-2+3", caller="=cmd|'/C'!A0"),
    ]
    append(store, "w", formulas)
    out = tmp_path / "export.csv"
    run = audit(config, "export", "--format", "csv", "--output", str(out))
    assert run.returncode == 0, run.stderr
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    by_id = {row["request_id"]: row for row in rows}
    assert by_id["'=1+2"]["case_ref"] == "'@SUM"
    assert by_id["'=1+2"]["caller"] == "'-key"
    assert by_id["'+cmd"]["case_ref"] == "'-2+3"
    assert by_id["'+cmd"]["caller"] == "'=cmd|'/C'!A0"
    explained = by_id[formulas[1].request_id]
    contributions = [float(explained[f"contribution_{n}"]) for n in FEATURE_NAMES]
    assert any(c < 0 for c in contributions)  # the case this checks: a number starting with -
    for row in rows:
        for name, cell in row.items():
            if cell.startswith(("=", "+", "-", "@", "\t", "\r")):
                float(cell)  # only a number may start so, and it must read as one
                assert name.startswith("contribution_") or name == "base_value", name
    jsonl = audit(config, "export", "--format", "jsonl")  # other formats keep the values
    assert {json.loads(line)["request_id"] for line in jsonl.stdout.splitlines()} >= {
        "=1+2",
        "+cmd",
    }


# -- what an auditor runs: nothing that writes ------------------------------------------------
READING_COMMANDS = [
    pytest.param(("verify",), id="verify"),
    pytest.param(("replay", "--model", str(DEFAULT_ARTIFACT_PATH)), id="replay"),
    pytest.param(("export", "--format", "csv"), id="export"),
]


@pytest.mark.parametrize("command", READING_COMMANDS)
def test_reading_commands_name_an_older_schema_and_leave_it_as_it_was(
    config: RecordConfig, command: tuple[str, ...]
) -> None:
    older = SCHEMA_VERSION - 1
    with open_store(config) as store:
        store.migrate(older)
    run = audit(config, *command)
    assert run.returncode == 1
    assert f"the record is at schema {older}, this code reads {SCHEMA_VERSION}" in run.stderr
    with open_store(config) as store:
        assert store.schema_version() == older
    assert audit(config, "prune", "--older-than", "30").returncode == 0  # prune writes: migrates
    with open_store(config) as store:
        assert store.schema_version() == SCHEMA_VERSION


def _files(folder: Path) -> dict[str, str]:
    """Each file in `folder` by name, with the sha256 of its bytes."""
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in folder.iterdir()}


@pytest.mark.parametrize("journal", ["delete", "wal"])
@pytest.mark.parametrize("command", READING_COMMANDS)
def test_reading_commands_leave_an_evidence_copy_byte_for_byte(
    answers: Answers, tmp_path: Path, command: tuple[str, ...], journal: str
) -> None:
    """A copy kept as evidence (VACUUM INTO makes one in the rollback journal mode; a copy of
    the file alone is in WAL mode): each reading command leaves its bytes, its journal mode and
    its folder as they were (but for the -wal and -shm files SQLite needs to read a WAL file)."""
    evidence = RecordConfig(record_dir=tmp_path / "evidence")
    evidence.record_dir.mkdir()
    with open_store(RecordConfig(record_dir=tmp_path / "record")) as store:
        store.migrate()
        append(store, "w", [answers.single() for _ in range(5)] + [answers.batch(3)])
        store.execute("INSERT INTO outcomes VALUES ('x', 0, 'benign', NULL, NULL, 1)")
    with sqlite3.connect(tmp_path / "record" / "record.sqlite3", isolation_level=None) as live:
        live.execute("VACUUM INTO ?", (str(evidence.sqlite_path),))
    live.close()
    with sqlite3.connect(evidence.sqlite_path) as copy:
        assert copy.execute(f"PRAGMA journal_mode={journal}").fetchone() == (journal,)
    copy.close()
    before = _files(evidence.record_dir)
    run = audit(evidence, *command)
    assert run.returncode == 0, run.stderr
    after = _files(evidence.record_dir)
    assert after[evidence.sqlite_path.name] == before[evidence.sqlite_path.name]
    added = set(after) - set(before)
    assert added <= ({"record.sqlite3-wal", "record.sqlite3-shm"} if journal == "wal" else set())
    with sqlite3.connect(f"file:{evidence.sqlite_path}?mode=ro", uri=True) as copy:
        assert copy.execute("PRAGMA journal_mode").fetchone() == (journal,)
    copy.close()


@pytest.mark.parametrize(
    ("version", "message"),
    [
        pytest.param(0, "holds no record", id="empty"),
        pytest.param(SCHEMA_VERSION + 1, f"newer than this code's {SCHEMA_VERSION}", id="newer"),
    ],
)
def test_verify_names_a_store_it_cannot_read_and_leaves_it(
    config: RecordConfig, version: int, message: str
) -> None:
    with open_store(config) as store:  # opening makes SQLite's file, empty
        if version:
            store.migrate()
            store.execute("UPDATE schema_version SET version = ?", (version,))
    run = audit(config, "verify")
    assert run.returncode == 1
    assert message in run.stderr
    with open_store(config) as store:
        assert store.schema_version() == version


def _read_only_url(url: str) -> str:
    """A new role that may read every table of the database at `url` and write none; its URL."""
    role, password = f"auditor_{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    with psycopg.connect(url, autocommit=True) as conn:
        name = sql.Identifier(role)
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(name, password))
        conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(name))
    parts = urlsplit(url)
    return parts._replace(netloc=f"{role}:{password}@{parts.hostname}:{parts.port}").geturl()


def test_an_auditor_with_a_read_only_role_runs_every_reading_command(
    pg_server: PostgresServer, answers: Answers
) -> None:
    url = pg_server.database("record_read_only")
    with open_store(RecordConfig(database_url=url)) as store:
        store.migrate()
        append(store, "w", [answers.single() for _ in range(5)] + [answers.batch(3)])
    reader = {"DATABASE_URL": _read_only_url(url)}
    for param in READING_COMMANDS:
        command = param.values[0]
        run = audit_with(reader, *command)  # type: ignore[misc]
        assert run.returncode == 0, (command, run.stderr)
    assert len(audit_with(reader, "export", "--format", "csv").stdout.splitlines()) == 1 + 5 + 3
    # The control: the role really cannot write.
    run = audit_with(reader, "prune", "--older-than", "30")
    assert run.returncode == 1
    assert "permission denied" in run.stderr
