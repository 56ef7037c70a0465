"""The audit tools and the store where a reviewer broke them: a verify while the service commits
or prunes, a -0.0 that SQLite reads back as 0.0, export arguments and files that cannot be used,
and DATABASE_URLs whose password Python and libpq would read differently."""

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.record.audit import Problem, verify
from app.record.config import RecordConfig, RecordConfigError
from app.record.entry import PredictionRecord, RecordError
from app.record.outcomes import put_outcome
from app.record.store import SqlStore, open_store
from app.v2.codec import _threshold
from tests.record_records import Answers
from tests.system.record.test_audit import append, audit_with

REPO = Path(__file__).resolve().parents[3]
PASSWORD = "Secr3tPw"  # noqa: S105 - a made-up one


def sqlite_store(
    tmp_path: Path, answers: Answers, n: int = 3
) -> tuple[RecordConfig, list[PredictionRecord]]:
    config = RecordConfig(record_dir=tmp_path / "record")
    records = [answers.single() for _ in range(n)]
    with open_store(config) as store:
        store.migrate()
        append(store, "w", records)
    return config, records


def env_of(config: RecordConfig) -> dict[str, str]:
    return {"RECORD_DIR": str(config.record_dir)}


# -- verify reads one snapshot -----------------------------------------------------------------
def test_verify_while_a_writer_commits(
    store: SqlStore, config: RecordConfig, answers: Answers
) -> None:
    append(store, "w", [answers.single() for _ in range(3)])
    real_cuts = store.cuts

    def cuts_then_a_commit():  # type: ignore[no-untyped-def]
        found = real_cuts()  # the live writer commits between verify's reads
        with open_store(config) as writer:
            append(writer, "w", [answers.single() for _ in range(2)])
        return found

    store.cuts = cuts_then_a_commit  # type: ignore[method-assign]
    assert verify(store) == []


def test_verify_while_a_prune_runs(store: SqlStore, config: RecordConfig, answers: Answers) -> None:
    append(store, "w", [answers.single(answered_ns=10**7) for _ in range(3)])
    append(store, "w", [answers.single() for _ in range(2)])
    real_cuts = store.cuts

    def cuts_then_a_prune():  # type: ignore[no-untyped-def]
        found = real_cuts()  # retention prunes between verify's reads
        with open_store(config) as other:
            assert other.prune(10**8, 10**8) == {"w": 3}
        return found

    store.cuts = cuts_then_a_prune  # type: ignore[method-assign]
    assert verify(store) == []


# -- -0.0 ----------------------------------------------------------------------------------------
def test_a_negative_zero_threshold_is_recorded_as_zero_and_verifies(
    tmp_path: Path, answers: Answers
) -> None:
    assert math.copysign(1.0, _threshold({"threshold": -0.0}) or 1.0) == 1.0  # V2, as native
    single = answers.single()
    record = PredictionRecord.of(
        **{
            **{name: getattr(single, name) for name in (
                "request_id", "route", "protocol", "encoding", "caller", "case_ref",
                "model_version", "service_version", "scorer", "confidence", "status",
            )},
            "received": single.received_ns,
            "answered": single.answered_ns,
            "threshold": -0.0,
            "scores": single.score_matrix(),
            "probabilities": single.probability_array(),
            "classes": single.class_array(),
            "sets": single.set_array(),
            "latency_s": -0.0,
        }
    )  # fmt: skip
    assert math.copysign(1.0, record.threshold) == 1.0
    config = RecordConfig(record_dir=tmp_path / "record")
    with open_store(config) as store:
        store.migrate()
        append(store, "w", [record])
        assert verify(store) == []  # SQLite's REAL gave the hash's -0.0 back as 0.0


def test_a_record_holding_negative_zero_is_refused(answers: Answers) -> None:
    single = answers.single()
    fields = {name: getattr(single, name) for name in single.__slots__}
    with pytest.raises(RecordError, match=r"-0\.0"):
        PredictionRecord(**{**fields, "threshold": -0.0})


# -- export's arguments and files ------------------------------------------------------------------
def test_parquet_export_with_a_stored_outcome(tmp_path: Path, answers: Answers) -> None:
    config, records = sqlite_store(tmp_path, answers)
    with open_store(config) as store:
        put_outcome(store, records[0].request_id, 0, "benign", source="lab", caller="c", now_ns=1)
    done = audit_with(
        env_of(config), "export", "--format", "parquet", "--output", str(tmp_path / "o")
    )
    assert done.returncode == 0, done.stderr[-300:]
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "o")
    assert table.column("outcome_at_ns").to_pylist() == [1, None, None]


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (("--format", "jsonl", "--until", "3000-01-01"), 2, "1970 to 2262"),
        (("--format", "jsonl", "--since", "1600-01-01"), 2, "1970 to 2262"),
        (("--format", "csv", "--output", "/nonexistent-dir/x.csv"), 1, "No such file"),
        (("--format", "parquet", "--output", "/nonexistent-dir/x.parquet"), 1, "No such file"),
        (("--format", "csv", "--output", "/tmp"), 1, "Is a directory"),
    ],
)
def test_bad_export_arguments_are_reported_without_a_traceback(
    tmp_path: Path, answers: Answers, args: tuple[str, ...], code: int, says: str
) -> None:
    config, _ = sqlite_store(tmp_path, answers)
    done = audit_with(env_of(config), "export", *args)
    assert "Traceback" not in done.stderr, done.stderr[-300:]
    assert done.returncode == code
    assert says in done.stderr


# -- DATABASE_URL ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url",
    [
        f"postgresql://u:ab/{PASSWORD}@127.0.0.1:1/db",
        f"postgresql://u:ab@{PASSWORD}@127.0.0.1:1/db",
        f"postgresql://u:ab[{PASSWORD}@127.0.0.1:1/db",
        f"postgresql://u:ab?{PASSWORD}@127.0.0.1:1/db",
    ],
)
def test_a_database_url_read_two_ways_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(RecordConfigError) as raised:
        RecordConfig(database_url=url)
    assert PASSWORD not in str(raised.value)
    done = audit_with({"DATABASE_URL": url}, "verify")
    assert done.returncode == 2
    assert PASSWORD not in done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "percent-encode" in done.stderr


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u:p%40ss%2Fw@127.0.0.1:5432/db",
        "postgresql:///db?host=/run/postgresql",
        "postgres://127.0.0.1/db",
        "postgresql://[::1]:5432/db",
    ],
)
def test_well_formed_database_urls_are_taken(url: str) -> None:
    assert RecordConfig(database_url=url).database_url == url


def test_postgres_without_psycopg_is_a_clear_error() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from app.record.cli import main; sys.exit(main(['verify']))"
    )
    env = {k: v for k, v in os.environ.items() if k != "RECORD_DIR"}
    env["DATABASE_URL"] = "postgresql://u:pw@127.0.0.1:1/db"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=60
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "postgres` extra" in done.stderr


# -- values of the wrong type ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("update", "says"),
    [
        ("UPDATE records SET seq = 'two' WHERE seq = 2", "a seq of writer w is not a whole"),
        ("UPDATE records SET hash = 'deadbeef' WHERE seq = 2", "writer w seq 2's hash is not"),
        ("UPDATE writers SET last_seq = 'x'", "writer w's last seq is not a whole number"),
    ],
)
def test_a_chain_column_edited_to_another_type_is_named_not_a_crash(
    tmp_path: Path, answers: Answers, update: str, says: str
) -> None:
    """SQLite keeps text where a number was: verify says which value was altered."""
    config, _ = sqlite_store(tmp_path, answers)
    with open_store(config) as store:
        store.execute(update)
    done = audit_with(env_of(config), "verify")
    assert "Traceback" not in done.stderr, done.stderr[-400:]
    assert done.returncode == 1
    assert says in done.stderr
    assert "the record was altered" in done.stderr


@pytest.mark.parametrize("seqs", [(2,), (2, 3), (1, 4)])
def test_an_edited_hash_names_only_its_record(
    tmp_path: Path, answers: Answers, seqs: tuple[int, ...]
) -> None:
    """The next record chains to the hash the edited one had: it is not altered."""
    config, records = sqlite_store(tmp_path, answers, 4)
    with open_store(config) as store:
        for seq in seqs:
            store.execute("UPDATE records SET hash = ? WHERE seq = ?", (bytes(32), seq))
        assert verify(store) == [
            Problem("altered", "w", seq, seq, records[seq - 1].request_id) for seq in seqs
        ]


def test_an_export_read_only_in_part_ends_quietly(tmp_path: Path, answers: Answers) -> None:
    """`audit export | head -1`: the reader closes the pipe after one line; no traceback."""
    config, _ = sqlite_store(tmp_path, answers, 3)
    with open_store(config) as store:
        append(store, "w", [answers.batch(5_000) for _ in range(4)])  # more than a pipe holds
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "RECORD_DIR")}
    env.update(env_of(config))
    with subprocess.Popen(
        [sys.executable, "-m", "app", "audit", "export", "--format", "jsonl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=REPO,
    ) as export:
        assert export.stdout is not None
        assert export.stderr is not None
        assert export.stdout.readline().startswith(b"{")
        export.stdout.close()  # as head does
        errors = export.stderr.read().decode()
        assert export.wait(timeout=300) == 0
    assert "Traceback" not in errors, errors[-400:]
    assert "Exception ignored" not in errors, errors[-400:]
