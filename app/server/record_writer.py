"""The writer process of the record: `python -m app.server.record_writer --fd N ...`.

Started by each worker's Recorder (app/record/recorder.py) with its end of a socket pair, never
by hand. Everything it is told crosses a boundary and is checked: the arguments here, each
frame and record in app/record/writer.py. The store's settings come in the environment
(RECORD_DIR, DATABASE_URL), never on the command line, where `ps` would show a password.

It ignores SIGINT and SIGTERM: a Ctrl-C in a terminal or a stop sent to the whole process group
must not end it before its worker has drained, since every answer waits for it. It exits when
its worker says stop or closes the socket (the worker ended, however it ended).
"""

import argparse
import re
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Final

from app.observability import metrics_store
from app.observability.logs import configure_logging
from app.server.process_guard import name_process

WRITER_ID: Final = re.compile(r"[\x21-\x7e]{1,256}")
LOG_LEVELS: Final = ("critical", "error", "warning", "info", "debug")
LOG_FORMATS: Final = ("text", "json")


def _positive(cast: type[int] | type[float]) -> "argparse._ActionType":
    def parse(text: str) -> int | float:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0 or value != value:
            raise argparse.ArgumentTypeError(f"{text!r} is not positive")
        return value

    return parse


def _writer_id(text: str) -> str:
    if not WRITER_ID.fullmatch(text):
        raise argparse.ArgumentTypeError("a writer id is 1 to 256 visible ASCII characters")
    return text


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="app.server.record_writer", description=__doc__.split("\n")[0])
    p.add_argument("--fd", type=_positive(int), required=True, help="the socket from the worker")
    p.add_argument("--writer-id", type=_writer_id, required=True)
    p.add_argument("--max-group", type=_positive(int), required=True)
    p.add_argument("--retry-seconds", type=_positive(float), required=True)
    p.add_argument("--max-wal-pages", type=_positive(int), required=True)
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info")
    p.add_argument("--log-format", choices=LOG_FORMATS, default="text")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    name_process("record-writer")
    configure_logging(args.log_level, args.log_format)
    metrics_store.install()  # before the record's metrics exist (imported below)
    from app.record.config import RecordConfig
    from app.record.store import open_store
    from app.record.writer import GroupWriter, serve

    config = RecordConfig.from_env()
    try:
        sock = socket.socket(fileno=args.fd)
    except OSError:
        sock = None
    if sock is None or sock.family != socket.AF_UNIX:
        print("app.server.record_writer: --fd is not the worker's socket", file=sys.stderr)
        return 2
    writer = GroupWriter(
        lambda: open_store(config), args.writer_id, max_wal_pages=args.max_wal_pages
    )
    try:
        serve(sock, writer, max_group=args.max_group, retry_seconds=args.retry_seconds)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the worker is gone: nobody is waiting for an answer
    finally:
        writer.close()
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
