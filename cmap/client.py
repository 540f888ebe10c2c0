"""A trio client of the ``cmap`` service, speaking libcmap's protocol, so the same
code reads totemd and corosync::

    async with cmap.connect() as db:
        name = (await db.get("totem.cluster_name")).python()
        for key, value in await db.items("runtime.members."):
            ...

A missing key raises :class:`~totem.ipc.errors.ServiceError` with ``cs_error``
NOT_EXIST, as libcmap reports it; TRY_AGAIN is retried inside.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import AsyncIterator

from totem.cmapdb import VALUE_MAX, Value, ValueType
from totem.ipc.calls import check, retrying
from totem.ipc.client import IpcClient
from totem.ipc.errors import ServiceError
from totem.lib import cmap as lib
from totem.lib.common import CsError

__all__ = ["Client", "connect"]


class Client:
    """One connection to the ``cmap`` service. Use :func:`connect`."""

    def __init__(self, ipc: IpcClient) -> None:
        self.ipc = ipc

    async def _call(self, data: bytes, what: str) -> lib.CmapMessage:
        res = await retrying(lambda: self.ipc.request(data))
        assert res is not None
        msg = lib.decode_message(res)
        check(msg.error, what)
        return msg

    async def get(self, key: str) -> Value:
        """The typed value of ``key``."""
        head = await self._call(lib.encode_get(key, 0), f"get {key}")
        assert isinstance(head, lib.GetResult)
        if head.value_len == 0:
            return Value(ValueType(head.type), b"")
        msg = await self._call(lib.encode_get(key, min(head.value_len, VALUE_MAX)), f"get {key}")
        assert isinstance(msg, lib.GetResult)
        return Value(ValueType(msg.type), msg.value)

    async def find(self, key: str) -> Value | None:
        """The typed value of ``key``, or None when it does not exist."""
        try:
            return await self.get(key)
        except ServiceError as exc:
            if exc.cs_error != CsError.NOT_EXIST:
                raise
            return None

    async def keys(self, prefix: str = "") -> list[tuple[str, ValueType, int]]:
        """(key, type, value length) of every key that starts with ``prefix``, in order."""
        it = await self._call(lib.encode_iter_init(prefix), f"iterate {prefix!r}")
        assert isinstance(it, lib.HandleResult)
        found = []
        try:
            while True:
                res = await retrying(lambda: self.ipc.request(lib.encode_handle_request(lib.ReqId.ITER_NEXT,
                                                                                       it.handle)))
                assert res is not None
                entry = lib.decode_message(res)
                if entry.error == CsError.NO_SECTIONS:
                    return found
                check(entry.error, f"iterate {prefix!r}")
                assert isinstance(entry, lib.IterEntry)
                found.append((entry.key, ValueType(entry.type), entry.value_len))
        finally:
            await self.ipc.request(lib.encode_handle_request(lib.ReqId.ITER_FINALIZE, it.handle))

    async def items(self, prefix: str = "") -> list[tuple[str, Value]]:
        """(key, value) of every key that starts with ``prefix``. A key deleted between
        the listing and its read is left out."""
        out = []
        for key, _, _ in await self.keys(prefix):
            value = await self.find(key)
            if value is not None:
                out.append((key, value))
        return out

    async def set(self, key: str, value: Value) -> None:
        await self._call(lib.encode_set(key, value.type, value.data), f"set {key}")

    async def delete(self, key: str) -> None:
        await self._call(lib.encode_delete(key), f"delete {key}")


@asynccontextmanager
async def connect(*, socket_dir: str | None = None, stats: bool = False) -> AsyncIterator[Client]:
    """Connect to the local ``cmap`` service (totemd or corosync); ``stats`` selects
    the statistics map (``stats.*``) instead of the main one."""
    async with await IpcClient.connect("cmap", socket_dir=socket_dir) as ipc:
        client = Client(ipc)
        if stats:
            await client._call(lib.encode_set_current_map(lib.MapId.STATS), "select the stats map")
        yield client
