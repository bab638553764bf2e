"""Errors a person can act on: bad recipes, missing data files, bad weight files, busy run folders.

The CLI prints a :class:`UserError` as one line (``error: <message>``) and exits with
``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
import re
from typing import Iterable


class UserError(Exception):
    """A mistake in the user's input; the message is one line naming the file or key and what was expected."""

    exit_code = 2


class RunInterrupted(UserError):
    """Training stopped by SIGTERM or Ctrl-C after saving a checkpoint; the message says where."""

    exit_code = 130


def one_line(exc: BaseException, limit: int = 300) -> str:
    """``exc``'s message on one line, for an error message of ours: terminal colour codes removed,
    whitespace (newlines included) collapsed to single spaces, at most ``limit`` characters; the
    exception's type name when it has no message."""
    text = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(exc)).split())
    return text[:limit] if text else type(exc).__name__


def did_you_mean(name: str, known: Iterable[str], otherwise: str, prefix: str = "", cutoff: float = 0.5) -> str:
    """``did you mean a, b?`` with up to three close matches of ``name`` in ``known`` (each after
    ``prefix``), or else ``<otherwise> <every known name>`` (``otherwise`` like ``"known:"``)."""
    known = list(known)
    close = difflib.get_close_matches(name, known, n=3, cutoff=cutoff)
    if close:
        return f"did you mean {', '.join(prefix + c for c in close)}?"
    return f"{otherwise} {', '.join(known) or 'none'}"
