"""The one exception type that user-facing code turns into a one-line message and exit code 2, and the JSON
reader that raises it for an integer too long to convert (:func:`parse_json`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


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


MAX_INT_DIGITS = 400  # an integer literal longer than this in a JSON input is refused (no number field needs more)


def parse_json(text: str, source: str | Path) -> Any:
    """``text`` parsed as JSON (``json.loads``: its errors propagate). An integer literal of more than
    :data:`MAX_INT_DIGITS` digits (Python refuses to convert those over 4300 with a bare ValueError) is an
    InputError naming ``source`` and the field that holds it."""
    huge: list[str] = []

    def parse_int(digits: str) -> Any:
        if len(digits.lstrip("-")) <= MAX_INT_DIGITS:
            return int(digits)
        huge.append(digits)
        return _HUGE

    data = json.loads(text, parse_int=parse_int)
    if huge:
        raise InputError(source, _field_of(data, _HUGE), f"an integer of over {MAX_INT_DIGITS} digits is out of range")
    return data


_HUGE = object()  # stands for a too-long integer in parsed JSON until its field is found


def _field_of(data: Any, target: object) -> str | None:
    """The field (``a.b[2].c``) of ``data`` that holds ``target`` (by identity), found without recursion; None when
    it is ``data`` itself or absent."""
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, value = stack.pop()
        if value is target:
            return where or None
        if isinstance(value, dict):
            stack += [(f"{where}.{k}" if where else str(k), v) for k, v in reversed(list(value.items()))]
        elif isinstance(value, list):
            stack += [(f"{where}[{i}]", v) for i, v in reversed(list(enumerate(value)))]
    return None
