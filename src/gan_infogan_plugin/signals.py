"""The stop signals, SIGINT (Ctrl-C) and SIGTERM, routed to one handler for a block of code: how
``gan-recipes run``, ``sweep`` and ``explore`` all stop."""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Any, Callable, Iterator

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextmanager
def stop_signals_to(handler: Callable[[int, Any], Any]) -> Iterator[None]:
    """For the block, SIGTERM and SIGINT call ``handler(signum, frame)``, also in a process started with
    them ignored (a shell's background job); the handlers before are put back after it. Python sets
    handlers only in the main thread: in any other thread nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, before in previous.items():
            if before is not None:  # None: a handler not set from Python, which cannot be put back
                signal.signal(s, before)
