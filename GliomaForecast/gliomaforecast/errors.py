"""The one exception type that user-facing code turns into a one-line message and exit code 2."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad input: names the file (or argument) and the field that is wrong.

    ``str(err)`` is a single line: ``"<file>: <field>: <message>"``.
    """

    def __init__(self, source: str | Path | None, field: str | None, message: str) -> None:
        self.source = None if source is None else str(source)
        self.field = field
        self.message = " ".join(str(message).split())
        parts = [p for p in (self.source, field, self.message) if p]
        super().__init__(": ".join(parts))

    def __reduce__(self):
        """Pickled with its three parts, so an InputError raised in a worker process arrives whole."""
        return type(self), (self.source, self.field, self.message)
