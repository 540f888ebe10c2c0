"""Quorum state for Python, from totemd or corosync: what corosync-quorumtool shows.

:func:`status` gathers it the way corosync-quorumtool does, over the same client
libraries' protocols: the quorum service for quorate/members/ring, votequorum for the
votes of every member (when it is the provider), cmap for the provider's name and the
nodes' names. :func:`set_expected` and :func:`set_votes` are quorumtool's ``-e`` and
``-v``. Every call opens its connections and closes them again; a daemon that is not
there raises :class:`~totem.ipc.errors.DaemonUnavailable`.
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass

import trio

from totem.ipc.calls import check, retrying
from totem.ipc.client import IpcClient
from totem.ipc.errors import IpcError
from totem.lib import quorum as qlib
from totem.lib import votequorum as vqlib
from totem.lib.common import TRACK_CURRENT, CsError, parse_response_header_untrusted
from totem.wire import RingId

from cmap import Client as CmapClient
from cmap import connect as cmap_connect

from .arithmetic import InfoFlags

__all__ = ["NodeVotes", "QuorumStatus", "VOTEQUORUM", "set_expected", "set_votes", "status"]

VOTEQUORUM = "corosync_votequorum"
"""``quorum.provider`` when votequorum decides (the only provider corosync 3 has)."""
EVENT_WAIT = 5.0
"""Seconds to wait for the notification a TRACK_CURRENT start promises."""


@dataclass(frozen=True, slots=True)
class NodeVotes:
    """One member of the current ring, as votequorum sees it."""

    nodeid: int
    name: str
    """The nodelist's ``name``, else its first address (``ring0_addr``), else empty."""
    local: bool
    votes: int | None = None
    """None when votequorum is not the provider (or did not know the node)."""
    expected_votes: int | None = None
    state: str | None = None
    flags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QuorumStatus:
    """corosync-quorumtool -s, as data."""

    provider: str | None
    """``corosync_votequorum``, or None when no quorum provider is configured."""
    quorate: bool
    local_nodeid: int
    ring_id: RingId
    """The ring's representative is 0 when votequorum is not there to tell it."""
    nodes: tuple[NodeVotes, ...]
    expected_votes: int | None = None
    highest_expected: int | None = None
    total_votes: int | None = None
    quorum: int | None = None
    flags: tuple[str, ...] = ()
    """Votequorum's flags as quorumtool names them (``Quorate``, ``2Node``, ...)."""
    qdevice: str | None = None
    """The registered quorum device's name, if any."""
    qdevice_votes: int = 0

    def as_dict(self) -> dict:
        """A JSON-ready form (the ring id as ``"rep.seq"`` in hex, as corosync prints it)."""
        d = asdict(self)
        d["ring_id"] = f"{self.ring_id.rep:x}.{self.ring_id.seq:x}"
        d["nodes"] = [asdict(n) for n in self.nodes]
        return d


async def status(*, socket_dir: str | None = None) -> QuorumStatus:
    """The local node's view of quorum, votes and membership."""
    async with AsyncExitStack() as stack:
        cmap = await stack.enter_async_context(cmap_connect(socket_dir=socket_dir))
        q = await stack.enter_async_context(await IpcClient.connect("quorum", socket_dir=socket_dir))
        qtype = qlib.decode_message(await _request(q, qlib.encode_request(qlib.ReqId.GETTYPE), "quorum gettype"))
        provider = None
        if isinstance(qtype, qlib.QuorumType) and qtype.quorum_type == qlib.QUORUM_SET:
            value = await cmap.find("quorum.provider")
            provider = None if value is None else str(value.python())
        quorate = qlib.decode_message(await _request(q, qlib.encode_request(qlib.ReqId.GETQUORATE),
                                                     "quorum getquorate"))
        assert isinstance(quorate, qlib.Quorate)
        await _request(q, qlib.encode_trackstart(TRACK_CURRENT), "quorum trackstart")
        view = await _event(q, qlib.decode_message, qlib.Notification)
        await _request(q, qlib.encode_request(qlib.ReqId.TRACKSTOP), "quorum trackstop")
        names = await _node_names(cmap)
        if provider != VOTEQUORUM:
            local = await _local_nodeid(cmap)
            nodes = tuple(NodeVotes(n, names.get(n, ""), n == local) for n in view.members)
            return QuorumStatus(provider, quorate.quorate, local, view.ring_id, nodes)
        vq = await stack.enter_async_context(await IpcClient.connect("votequorum", socket_dir=socket_dir))
        me = await _getinfo(vq, 0)
        await _request(vq, vqlib.encode_trackstart(0, TRACK_CURRENT), "votequorum trackstart")
        ring = await _event(vq, vqlib.decode_message, vqlib.NodelistEvent)
        nodes = []
        for nodeid in view.members:
            info = await _getinfo(vq, nodeid, missing_ok=True)
            known = info.error == CsError.OK
            nodes.append(NodeVotes(nodeid, names.get(nodeid, ""), nodeid == me.nodeid,
                                   info.votes if known else None, info.expected_votes if known else None,
                                   vqlib.state_name(info.state) if known else None,
                                   tuple(vqlib.flag_names(info.flags))))
        qdev = me.qdevice_name.decode("utf-8", "replace") if me.flags & InfoFlags.QDEVICE_REGISTERED else None
        return QuorumStatus(provider, quorate.quorate, me.nodeid, RingId(ring.ring_id.rep, view.ring_id.seq),
                            tuple(nodes), me.expected_votes, me.highest_expected, me.total_votes, me.quorum,
                            tuple(vqlib.flag_names(me.flags)), qdev, me.qdevice_votes)
    raise AssertionError("unreachable")  # pragma: no cover  (AsyncExitStack swallows nothing)


async def set_expected(expected_votes: int, *, socket_dir: str | None = None) -> None:
    """Change the cluster's expected votes (corosync-quorumtool -e)."""
    async with await IpcClient.connect("votequorum", socket_dir=socket_dir) as vq:
        await _request(vq, vqlib.encode_setexpected(expected_votes), f"set expected votes {expected_votes}")


async def set_votes(votes: int, nodeid: int = 0, *, socket_dir: str | None = None) -> None:
    """Change a node's votes, this node's for ``nodeid`` 0 (corosync-quorumtool -v/-n)."""
    async with await IpcClient.connect("votequorum", socket_dir=socket_dir) as vq:
        await _request(vq, vqlib.encode_setvotes(nodeid, votes), f"set votes {votes} for node {nodeid}")


# -- the calls --------------------------------------------------------------------------


async def _request(ipc: IpcClient, data: bytes, what: str, *, missing_ok: bool = False) -> bytes:
    res = await retrying(lambda: ipc.request(data))
    assert res is not None
    error = parse_response_header_untrusted(res)[2]
    if not (missing_ok and error == CsError.NOT_EXIST):
        check(error, what)
    return res


async def _getinfo(vq: IpcClient, nodeid: int, *, missing_ok: bool = False) -> vqlib.GetInfo:
    info = vqlib.decode_message(await _request(vq, vqlib.encode_getinfo(nodeid), f"votequorum getinfo {nodeid}",
                                               missing_ok=missing_ok))
    if not isinstance(info, vqlib.GetInfo):
        raise IpcError(f"votequorum answered getinfo with {info}")
    return info


async def _event(ipc: IpcClient, decode, kind: type):
    """The first event of ``kind`` (others, such as a quorum notification that comes
    with the nodelist one, are skipped)."""
    with trio.fail_after(EVENT_WAIT):
        while True:
            msg = decode(await ipc.receive_event())
            if isinstance(msg, kind):
                return msg


async def _node_names(cmap: CmapClient) -> dict[int, str]:
    """nodeid -> the nodelist's name for it (``name``, else ``ring0_addr``)."""
    by_pos: dict[str, dict[str, object]] = {}
    for key, value in await cmap.items("nodelist.node."):
        parts = key.split(".")
        if len(parts) == 4:
            by_pos.setdefault(parts[2], {})[parts[3]] = value.python()
    names: dict[int, str] = {}
    for fields in by_pos.values():
        nodeid = fields.get("nodeid")
        if isinstance(nodeid, int):
            names[nodeid] = str(fields.get("name") or fields.get("ring0_addr") or "")
    return names


async def _local_nodeid(cmap: CmapClient) -> int:
    """This node's id without votequorum: the nodelist entry at ``local_node_pos``."""
    try:
        pos = (await cmap.get("nodelist.local_node_pos")).python()
        return int((await cmap.get(f"nodelist.node.{pos}.nodeid")).python())  # type: ignore[arg-type]
    except IpcError:
        return 0
