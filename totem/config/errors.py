"""The one exception of the config layer."""

from __future__ import annotations


class ConfigError(Exception):
    """A corosync.conf that totemd cannot use, with where and what.

    ``str()`` gives ``FILE:LINE: KEY: MESSAGE``, for example
    ``corosync.conf:12: totem.token: expected an integer >= 30, got 'abc'``.
    ``line`` is None when no line of the file is to blame (an empty file, a missing
    section); ``key`` is None when the fault is not about one key (a bad line).
    ``expected`` and ``got`` are set when the message has the form "expected X, got Y".
    """

    def __init__(self, message: str, *, file: str, line: int | None = None,
                 key: str | None = None, expected: str | None = None,
                 got: str | None = None) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.key = key
        self.expected = expected
        self.got = got
        super().__init__(str(self))

    @classmethod
    def expecting(cls, expected: str, got: str | None, *, file: str, line: int | None,
                  key: str | None, note: str | None = None) -> "ConfigError":
        """``expected EXPECTED, got 'GOT'`` (``got nothing`` when ``got`` is None)."""
        shown = "nothing" if got is None else f"'{got}'"
        message = f"expected {expected}, got {shown}"
        if note:
            message += f" ({note})"
        return cls(message, file=file, line=line, key=key, expected=expected, got=got)

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"

    def __reduce__(self):  # keep pickling (pytest-xdist, multiprocessing) working
        return (_rebuild, (self.message, self.file, self.line, self.key, self.expected, self.got))


def _rebuild(message, file, line, key, expected, got) -> ConfigError:
    return ConfigError(message, file=file, line=line, key=key, expected=expected, got=got)
