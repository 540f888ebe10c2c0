"""The one exception raised for bad bytes from outside."""

from __future__ import annotations


class WireError(ValueError):
    """Untrusted bytes did not decode: what was wrong and at which byte offset.

    Every parser in :mod:`totem.wire` raises only this for malformed input,
    whatever the bytes are; anything else escaping a parser is a bug.
    """

    def __init__(self, what: str, offset: int = 0) -> None:
        super().__init__(f"{what} (at offset {offset})")
        self.what = what
        self.offset = offset

    def shifted(self, by: int, context: str = "") -> "WireError":
        """The same error, with the offset made relative to an enclosing structure."""
        what = f"{context}: {self.what}" if context else self.what
        return WireError(what, self.offset + by)
