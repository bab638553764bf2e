"""Errors a person can act on: bad recipes, missing data files, bad weight files, busy run folders.

The CLI prints a :class:`UserError` as one line (``error: <message>``) and exits with
``exit_code``; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in the user's input; the message is one line naming the file or key and what was expected."""

    exit_code = 2


class RunInterrupted(UserError):
    """Training stopped by SIGTERM or Ctrl-C after saving a checkpoint; the message says where."""

    exit_code = 130
