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

import pytest

from pipelinejobs.local.commands import wait_for_interrupt


def test_an_interrupt_landing_on_another_thread_stops_the_wait_within_a_second() -> None:
    # given a thread that receives the SIGINT itself, as the kernel may choose
    main = threading.main_thread().ident
    assert threading.current_thread() is threading.main_thread()
    fallback = threading.Event()

    def receive_it() -> None:
        time.sleep(0.2)
        signal.pthread_kill(threading.get_ident(), signal.SIGINT)
        if not fallback.wait(5):  # the wait did not end: wake the main thread so the test fails, not hangs
            assert main is not None
            signal.pthread_kill(main, signal.SIGINT)

    thread = threading.Thread(target=receive_it, daemon=True)
    started = time.monotonic()
    thread.start()
    # when serve's main thread is waiting for Ctrl-C
    with pytest.raises(KeyboardInterrupt):
        wait_for_interrupt()
    # then it stopped waiting within about a second of the signal, not at the test's fallback
    fallback.set()
    thread.join(5)
    assert time.monotonic() - started < 2
