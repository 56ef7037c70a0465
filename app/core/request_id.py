"""X-Request-ID: every answer carries one, and the request's log lines name it.

A client's (or a proxy's) X-Request-ID is kept when it is a sane token: 1 to 128 characters of
letters, digits and `._:/+=@-`, so it cannot break a log line or a header. Otherwise (absent,
empty, too long, spaces, quotes, ...) the service makes one: 32 hex digits, a keyed BLAKE2b hash
of this process's id and a counter under a 256-bit key drawn once per process, so as
unpredictable as 128 random bits to anyone without the key, and never repeated. Not
`secrets.token_hex`: `os.urandom` is a system call that releases the GIL, and on the event loop,
with the record's writer thread waiting for it, taking it back cost about 100 us a request
(cProfile of /predict with the record on). The id is in a
context variable for the rest of the request (the log formatters read it) and on the response,
error answers included: the 500 handler, which Starlette runs outside every middleware, reads it
from the same variable (`current_request_id`).
"""

import hashlib
import itertools
import os
import re
from contextvars import ContextVar
from typing import Final

HEADER: Final = "X-Request-ID"
HEADER_KEY: Final = HEADER.lower().encode("latin-1")
MAX_LENGTH: Final = 128
_SANE: Final = re.compile(rb"[A-Za-z0-9._:/+=@-]{1,%d}" % MAX_LENGTH)
_KEY: Final = os.urandom(32)  # drawn at import: each worker (a spawned process) its own
_issued = itertools.count()

# Each request runs in its own task (uvicorn), with its own copy of the context: no reset needed,
# and the 500 handler, running after this middleware has exited, still sees the value.
_request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
_received_ns: ContextVar[int | None] = ContextVar("received_ns", default=None)


def current_request_id() -> str | None:
    """The id of the request being answered, or None outside a request."""
    return _request_id.get()


def accepted_or_new(value: bytes | None) -> str:
    """`value` when it is a sane token, else 32 new random hex digits."""
    if value is not None and _SANE.fullmatch(value):
        return value.decode("ascii")
    return new_request_id()


def new_request_id() -> str:
    """32 hex digits no one without this process's key can predict; unique per process (its
    pid is hashed too, so a forked copy of the counter gives other ids)."""
    message = b"%d:%d" % (os.getpid(), next(_issued))
    return hashlib.blake2b(message, key=_KEY, digest_size=16).hexdigest()


def set_request_id(request_id: str, received: int | None = None) -> None:
    """Name the request being answered, and when it arrived (ns since the epoch), for the rest
    of its task."""
    _request_id.set(request_id)
    _received_ns.set(received)


def received_ns() -> int | None:
    """When the request being answered arrived (the request-id middleware's clock)."""
    return _received_ns.get()
