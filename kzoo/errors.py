"""The one exception type kzoo raises for user mistakes.

The CLI prints a `KzooError` as one line and exits with status 2; anything else is a bug
and keeps its traceback.
"""


class KzooError(ValueError):
    """A user-facing error whose message says what is wrong, where, and what to do."""


class EchoedError(KzooError):
    """An error another process of a multi-process job has already reported: the CLI exits with
    status 2 without printing the same line again."""
