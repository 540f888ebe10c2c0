"""Calling a corosync service as its C library does: retry while the daemon says
TRY_AGAIN, raise :class:`~totem.ipc.errors.ServiceError` for any other refusal.

The cpg, quorum, votequorum and cmap clients share this; only their codecs differ.
"""

from __future__ import annotations

from typing import Awaitable, Callable

import trio

from ..lib.common import CsError, parse_response_header_untrusted
from .errors import ServiceError, TryAgain

__all__ = ["BACKOFF_FIRST", "BACKOFF_MAX", "check", "retrying"]

BACKOFF_FIRST = 0.001
"""Seconds before the first retry of a refused call; doubled up to :data:`BACKOFF_MAX`."""
BACKOFF_MAX = 0.1


async def retrying(call: Callable[[], Awaitable[bytes | None]]) -> bytes | None:
    """Run ``call`` until it is not refused with TRY_AGAIN, raised (flow control, a
    full request ring) or answered (the response header's error)."""
    delay = BACKOFF_FIRST
    while True:
        try:
            res = await call()
        except TryAgain:
            res = None
            again = True
        else:
            again = res is not None and parse_response_header_untrusted(res)[2] == CsError.TRY_AGAIN
        if not again:
            return res
        await trio.sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX)


def check(error: int, what: str) -> None:
    """Raise :class:`ServiceError` unless ``error`` is CS_OK."""
    if error != CsError.OK:
        raise ServiceError(what, error)
