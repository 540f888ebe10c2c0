"""A trio client for CPG that speaks libcpg's protocol, to totemd or to real corosync.

::

    async with cpg.connect() as client:
        group = await client.join(b"name")
        await group.send(b"hello")
        async for event in group:
            ...  # cpg.Message, cpg.MembershipChange or cpg.RingChange

One connection holds at most one group at a time, as in libcpg: open a client per
group. Inside:

* events are read by a task of the client as they come and queued for the reader,
  a bounded queue: a reader that stops reading stops the client reading, and the
  daemon then treats the client as it treats any slow client;
* TRY_AGAIN (flow control during a sync, a full totem queue) is retried with a
  short back-off, so :meth:`Group.send` returns once the daemon has the message;
* messages larger than libcpg's fragment size go as PARTIAL_MCAST fragments and
  fragments delivered by the daemon are put together again per sender, as libcpg does;
* a daemon that is not there, or goes away, raises :class:`DaemonUnavailable` or
  :class:`ConnectionClosed`.
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

import trio

from totem.ipc.client import IpcClient
from totem.ipc.calls import retrying
from totem.ipc.errors import ConnectionClosed, DaemonUnavailable, IpcError, ServiceError
from totem.lib import cpg as lib
from totem.lib.common import CsError
from totem.wire import RingId

__all__ = ["Client", "ConnectionClosed", "CpgError", "DaemonUnavailable", "Event", "Group",
           "MembershipChange", "Message", "RingChange", "connect"]

Member = lib.Member
Address = lib.Address
EVENT_QUEUE = 4096
"""Events the client holds for a reader that is behind."""


@dataclass(frozen=True, slots=True)
class Message:
    """A message delivered to the group, in the order every member sees."""

    group: bytes
    nodeid: int
    pid: int
    data: bytes


@dataclass(frozen=True, slots=True)
class MembershipChange:
    """The group's members after a change, and who left or joined (with the reason:
    :class:`totem.lib.cpg.CpgReason`)."""

    group: bytes
    members: tuple[Member, ...]
    left: tuple[Address, ...] = ()
    joined: tuple[Address, ...] = ()


@dataclass(frozen=True, slots=True)
class RingChange:
    """The ring (the cluster's nodes) CPG synchronised on, for groups joined with
    ``ring_changes=True``."""

    ring_id: RingId
    members: tuple[int, ...]


Event = Message | MembershipChange | RingChange


class CpgError(ServiceError):
    """The cpg service answered a request with an error (``cs_error``: a :class:`CsError`)."""


class Client:
    """One connection to the ``cpg`` service. Use :func:`connect`."""

    def __init__(self, ipc: IpcClient, pid: int) -> None:
        self.ipc = ipc
        self.pid = pid
        self.group: Group | None = None
        self._send_events, self._events = trio.open_memory_channel[Event | BaseException](EVENT_QUEUE)
        self._partial: dict[tuple[int, int], list[bytes]] = {}

    # -- queries ---------------------------------------------------------------------

    async def local_nodeid(self) -> int:
        res = await retrying(lambda: self.ipc.request(lib.simple_request(lib.CpgRequestId.LOCAL_GET)))
        assert res is not None
        error, nodeid = lib.parse_local_get_response_untrusted(res)
        _check(error, "local_get")
        return nodeid

    async def members(self, group: bytes) -> list[Member]:
        """The current members (nodeid, pid) of any group, joined or not."""
        req = lib.membership_request(lib.CpgName.of(group))
        res = await retrying(lambda: self.ipc.request(req))
        assert res is not None
        m = lib.parse_membership_response_untrusted(res)
        _check(m.error, "membership_get")
        return list(m.members)

    async def groups(self, group: bytes | None = None) -> list[tuple[bytes, int, int]]:
        """(group, nodeid, pid) of every member of every group (or of one group), as
        corosync-cpgtool lists them."""
        if group is None:
            req = lib.IterationInitializeRequest(lib.IterationType.ALL).pack()
        else:
            req = lib.IterationInitializeRequest(lib.IterationType.ONE_GROUP, lib.CpgName.of(group)).pack()
        res = await retrying(lambda: self.ipc.request(req))
        assert res is not None
        error, handle = lib.parse_iteration_initialize_response_untrusted(res)
        _check(error, "iteration_initialize")
        out = []
        try:
            while True:
                nxt = lib.parse_iteration_next_response_untrusted(
                    await self.ipc.request(lib.iteration_request(lib.CpgRequestId.ITERATIONNEXT, handle)))
                if nxt.error == CsError.NO_SECTIONS:
                    break
                _check(nxt.error, "iteration_next")
                out.append((nxt.group.name, nxt.nodeid, nxt.pid))
        finally:
            with trio.CancelScope(shield=True):
                await self.ipc.request(lib.iteration_request(lib.CpgRequestId.ITERATIONFINALIZE, handle))
        return out

    # -- the group -------------------------------------------------------------------

    async def join(self, group: bytes, *, ring_changes: bool = False) -> "Group":
        """Join ``group``; with ``ring_changes`` the group's events include
        :class:`RingChange` (the first right after the first membership change)."""
        if self.group is not None:
            raise CpgError(f"this connection is already in group {self.group.name!r}", CsError.EXIST)
        flags = lib.JOIN_FLAG_INITIAL_TOTEM_CONF if ring_changes else 0
        req = lib.JoinRequest(lib.CpgName.of(group), self.pid, flags).pack()
        res = await retrying(lambda: self.ipc.request(req))
        assert res is not None
        _check(lib.parse_status_untrusted(res)[1], f"join {group!r}")
        self.group = Group(self, group)
        return self.group

    # -- events ----------------------------------------------------------------------

    async def _read_events(self) -> None:
        send = self._send_events
        try:
            while True:
                ev = self._decode(await self.ipc.receive_event())
                if ev is not None:
                    await send.send(ev)
        except (ConnectionClosed, trio.ClosedResourceError) as exc:
            with trio.CancelScope(shield=True):
                try:
                    await send.send(ConnectionClosed(str(exc) or "the daemon closed the connection"))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass

    def _decode(self, data: bytes) -> Event | None:
        ev = lib.parse_event_untrusted(data)
        if isinstance(ev, lib.DeliverCallback):
            return Message(ev.group.name, ev.nodeid, ev.pid, ev.data)
        if isinstance(ev, lib.ConfchgCallback):
            return MembershipChange(ev.group.name, ev.members, ev.left, ev.joined)
        if isinstance(ev, lib.TotemConfchgCallback):
            return RingChange(ev.ring_id, tuple(ev.members))
        if isinstance(ev, lib.PartialDeliverCallback):
            key = (ev.nodeid, ev.pid)
            if ev.type == lib.PartialType.FIRST:
                self._partial[key] = [ev.data]
                return None
            parts = self._partial.get(key)
            if parts is None:
                return None  # its first fragment came before we joined
            parts.append(ev.data)
            if ev.type != lib.PartialType.LAST:
                return None
            del self._partial[key]
            data = b"".join(parts)
            if len(data) != ev.msglen:
                return None
            return Message(ev.group.name, ev.nodeid, ev.pid, data)
        return None

    async def _next_event(self) -> Event:
        ev = await self._events.receive()
        if isinstance(ev, BaseException):
            await self._send_events.aclose()
            raise ev
        return ev


class Group:
    """A joined group: send to it, iterate over its events, leave it."""

    def __init__(self, client: Client, name: bytes) -> None:
        self.client = client
        self.name = name

    async def send(self, data: bytes) -> None:
        """Multicast ``data`` (up to 1 MiB and beyond: fragmented) to the group's members,
        this process included. A large message cut by a membership change is sent
        again whole (receivers drop the incomplete one), so it arrives once."""
        ipc = self.client.ipc
        if len(data) <= lib.FRAGMENT_SIZE:
            req = lib.McastRequest(data).pack()
            await retrying(lambda: ipc.send(req, fc_max=2))
            return
        while not await self._send_fragments(data):
            pass  # a configuration change cut it: members drop the pieces, send it again

    async def _send_fragments(self, data: bytes) -> bool:
        """Send ``data`` as PARTIAL_MCAST fragments; False if the daemon answered
        INTERRUPT (the group changed since the first fragment, as libcpg reports)."""
        ipc = self.client.ipc
        size = lib.FRAGMENT_SIZE
        for start in range(0, len(data), size):
            kind = (lib.PartialType.FIRST if start == 0 else
                    lib.PartialType.LAST if start + size >= len(data) else lib.PartialType.CONTINUED)
            req = lib.PartialMcastRequest(len(data), kind, data[start:start + size]).pack()
            res = await retrying(lambda: ipc.request(req))
            assert res is not None
            error = lib.parse_status_untrusted(res)[1]
            if error == CsError.INTERRUPT:
                return False
            _check(error, "partial mcast")
        return True

    async def receive(self) -> Event:
        """The next event; raises :class:`ConnectionClosed` when the daemon went away."""
        return await self.client._next_event()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.receive()

    async def members(self) -> list[Member]:
        return await self.client.members(self.name)

    async def leave(self) -> None:
        req = lib.LeaveRequest(lib.CpgName.of(self.name), self.client.pid).pack()
        res = await retrying(lambda: self.client.ipc.request(req))
        assert res is not None
        _check(lib.parse_status_untrusted(res)[1], f"leave {self.name!r}")
        self.client.group = None


def _check(error: int, what: str) -> None:
    if error != CsError.OK:
        raise CpgError(what, error)


@asynccontextmanager
async def connect(*, socket_dir: str | None = None, pid: int | None = None) -> AsyncIterator[Client]:
    """Connect to the local ``cpg`` service (totemd or corosync). ``pid`` is the
    process id members see (default: this process's)."""
    ipc = await IpcClient.connect("cpg", socket_dir=socket_dir)
    client = Client(ipc, os.getpid() if pid is None else pid)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(client._read_events)
            try:
                yield client
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True, deadline=trio.current_time() + 2):
            try:
                await ipc.request(lib.simple_request(lib.CpgRequestId.FINALIZE))
            except IpcError:
                pass
            await ipc.aclose()

