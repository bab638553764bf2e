"""stop_signals_to: SIGINT and SIGTERM go to one handler for a block, then back to what they were."""

from __future__ import annotations

import os
import signal
import threading

from gan_infogan_plugin.signals import stop_signals_to


def test_both_signals_reach_the_handler_in_the_block_and_the_old_handlers_return():
    seen = []
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a shell starts a background job
    try:
        with stop_signals_to(lambda signum, frame: seen.append(signum)):
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
        assert seen == [signal.SIGTERM, signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN and signal.getsignal(signal.SIGTERM) == before[1]
    finally:
        signal.signal(signal.SIGINT, before[0])


def test_outside_the_main_thread_nothing_changes():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    inside = []

    def block() -> None:
        with stop_signals_to(lambda signum, frame: None):
            inside.append((signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)))

    thread = threading.Thread(target=block)
    thread.start()
    thread.join()
    assert inside == [before]
