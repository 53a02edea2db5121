"""`pipelinejobs serve` stops on Ctrl-C whichever of its threads the signal lands on.

A SIGINT sent to the process may be delivered to any thread that does not block it (the HTTP bridge's,
the event sources'); Python then runs its handler in the main thread only when that thread next runs
bytecode. A main thread asleep in one long `time.sleep` would not notice for as long as it sleeps (CI saw
`serve` ignore Ctrl-C for more than 30 s under load).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest

from pipelinejobs.local.commands import wait_for_interrupt


@pytest.fixture
def python_sigint() -> Iterator[None]:
    """Python's own SIGINT handler (KeyboardInterrupt), whatever the test runner's worker installed."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def test_an_interrupt_landing_on_another_thread_stops_the_wait_within_a_second(python_sigint) -> None:
    # given a thread that receives the SIGINT itself, as the kernel may choose
    assert threading.current_thread() is threading.main_thread()

    def receive_it() -> None:
        time.sleep(0.2)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    thread = threading.Thread(target=receive_it, daemon=True)
    started = time.monotonic()
    thread.start()
    # when serve's main thread is waiting for Ctrl-C (for at most 5 s here)
    with pytest.raises(KeyboardInterrupt):
        wait_for_interrupt(give_up=lambda: time.monotonic() - started > 5)
    # then it stopped waiting within about a second of the signal
    thread.join(5)
    assert time.monotonic() - started < 2
