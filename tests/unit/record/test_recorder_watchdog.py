"""The recorder's watchdog, for waiters of an event loop other than its own."""

import asyncio

from app.record import recorder


def test_a_waiter_of_a_loop_that_has_closed_is_let_go_quietly() -> None:
    """Another thread's loop may close between the watchdog's look at the waiter and its call:
    the watchdog goes on (it must still time out the waiters after it)."""
    theirs, ours = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        waiter = theirs.create_future()
        theirs.close()
        theirs.is_closed = lambda: False  # type: ignore[method-assign]  # it closes just after
        try:
            recorder._expire_in_its_loop(waiter, ours)  # no RuntimeError: "loop is closed"
        finally:
            del theirs.is_closed
        assert not waiter.done()
    finally:
        ours.close()


def test_a_waiter_of_a_running_loop_is_failed_in_that_loop() -> None:
    theirs, ours = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        waiter = theirs.create_future()
        recorder._expire_in_its_loop(waiter, ours)
        assert not waiter.done()  # not from this thread: its loop fails it when it runs
        theirs.run_until_complete(asyncio.sleep(0))
        assert isinstance(waiter.exception(), recorder._ExpiredError)
    finally:
        theirs.close()
        ours.close()
