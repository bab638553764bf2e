"""Errors that are the user's to fix: the CLI prints them as one line and exits with status 2."""


class UserError(Exception):
    """A bad recipe, key, file or option. The message names the file or key and what was expected."""
