"""What the importer says: refusals (problems) and the report of every directive (findings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

CARRIED = "carried"
"""The directive's meaning is in the corosync.conf."""
NOT_CARRIED = "not carried"
"""Recognised, but nothing in corosync.conf does what it did (the text says why)."""
REFUSED = "refused"
"""A medium totemd cannot speak (broadcast, multicast, serial)."""
NOTE = "note"
"""Something the user should know about a line (Heartbeat ignored part of it, ...)."""

KINDS = (CARRIED, NOT_CARRIED, REFUSED, NOTE)


@dataclass(frozen=True)
class Problem:
    """One reason the import cannot go on: the file and line to blame and what was expected."""

    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.message}"


class HeartbeatError(Exception):
    """The Heartbeat files cannot be imported; ``problems`` lists every reason found."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class Finding:
    """What became of one directive (or one line of authkeys or haresources)."""

    file: str
    line: int | None
    directive: str
    """The line as written, without its comment."""
    kind: str
    """One of :data:`KINDS`."""
    text: str

    def where(self) -> str:
        return self.file if self.line is None else f"{self.file}:{self.line}"


def expected(directive: str, what: str, got: str | None, note: str | None = None) -> str:
    """``DIRECTIVE: expected WHAT, got 'GOT' (NOTE)``, the config reader's wording."""
    shown = "nothing" if got is None else f"'{got}'"
    text = f"{directive}: expected {what}, got {shown}"
    return f"{text} ({note})" if note else text
