"""cfg (service 1): corosync's configuration service for clients, and its exec messages.

What ``corosync-cfgtool`` and Pacemaker's pacemakerd ask of a node (spec
client-ipc.md §2.6), as corosync 3.1.7's ``exec/cfg.c`` answers it:

* LOCAL_GET, GET_NODE_ADDRS, NODESTATUSGET and the legacy RINGSTATUSGET describe the
  node and its one udpu link (link 0) from a :class:`CfgView` the daemon provides;
* KILLNODE multicasts an exec KILLNODE to the ring (only for a node whose
  ``runtime.members.<id>.status`` is ``joined``); the node it names exits at once;
* TRYSHUTDOWN asks every other connection that called TRACKSTART whether the node
  may stop (TESTSHUTDOWN events), waits for their REPLYTOSHUTDOWN or for
  ``cfg.shutdown_timeout`` (default 5 s), answers the requester, and if the answer is
  yes multicasts an exec SHUTDOWN: every node logs it, the sender then shuts down;
* RELOAD_CONFIG multicasts an exec RELOAD_CONFIG: every node re-reads its own
  corosync.conf, and the requesting node answers its client when done;
* REOPEN_LOG_FILES asks the daemon to reopen its log files.

The service is pure: what only the daemon can do is asked for with events
(:class:`~totem.services.cmap.ShutdownRequested`, :class:`KilledByNode`,
:class:`ReloadRequested`, :class:`ReopenLogFiles`), and time comes in through
:meth:`CfgService.handle_timer` with :attr:`CfgService.deadline` telling when.

Exec messages (spec services-wire.md §5.2) use the layouts of
:mod:`totem.services.layouts`; cfg takes no part in service synchronisation.
"""

from __future__ import annotations

import enum
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Collection, Protocol, Sequence

from construct import ConstructError

from ..cmapdb import CmapDb, ValueType
from ..lib import cfg as lib
from ..lib.common import CsError, response_header
from ..wire.errors import WireError
from .base import Service
from .cmap import QueuedMulticast, ShutdownRequested
from .layouts import CMAP_KEY_MAX, layouts

if TYPE_CHECKING:
    from ..config.model import ClusterConfig

SERVICE_ID = 1
DEFAULT_SHUTDOWN_TIMEOUT = 5000
"""ms a TRYSHUTDOWN waits for replies unless ``cfg.shutdown_timeout`` says otherwise."""
MCAST_HEADERS = 62
"""What corosync takes off a udpu link's MTU for its two totem mcast headers."""


class ExecFn(enum.IntEnum):
    RINGREENABLE = 0
    KILLNODE = 1
    SHUTDOWN = 2
    RELOAD_CONFIG = 3
    CRYPTO_RECONFIG = 4


def udpu_link_mtu(netmtu: int = 1500, ipv6: bool = False) -> int:
    """The MTU corosync 3.1.7 reports for a udpu link: ``totem.netmtu`` less the IP
    and UDP headers and two totem mcast headers (1410 for IPv4 by default)."""
    return netmtu - (48 if ipv6 else 28) - MCAST_HEADERS


class CfgView(Protocol):
    """What cfg needs to know of the node; the daemon implements it (or uses
    :class:`NodeView` and keeps it up to date)."""

    def members(self) -> Collection[int]:
        """Node ids of the current ring (corosync: totemsrp's processor list)."""
        ...

    def node_addresses(self, nodeid: int) -> Sequence[str]:
        """A configured node's link addresses (IP text, link 0 first); empty for a
        node that is not in the nodelist."""
        ...

    def link_enabled(self) -> bool:
        """Whether the udpu socket is bound (corosync: the interface is up)."""
        ...

    def link_mtu(self) -> int:
        """See :func:`udpu_link_mtu`."""
        ...


@dataclass
class NodeView:
    """A :class:`CfgView` the daemon updates: ``members`` on every new ring,
    ``addresses`` at start and after a config reload."""

    addresses: dict[int, list[str]] = field(default_factory=dict)
    ring: tuple[int, ...] = ()
    enabled: bool = True
    mtu: int = udpu_link_mtu()

    def members(self) -> Collection[int]:
        return self.ring

    def node_addresses(self, nodeid: int) -> Sequence[str]:
        return self.addresses.get(nodeid, ())

    def link_enabled(self) -> bool:
        return self.enabled

    def link_mtu(self) -> int:
        return self.mtu

    @classmethod
    def from_config(cls, cfg: "ClusterConfig") -> "NodeView":
        ipv6 = ":" in cfg.local.addr
        return cls({n.nodeid: [n.addr] for n in cfg.nodes}, mtu=udpu_link_mtu(cfg.srp.netmtu, ipv6))


# -- events for the daemon -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KilledByNode:
    """Another node's KILLNODE named this one: exit now, without leaving the ring, as
    corosync does (it logs "Corosync Cluster Engine exiting with status -1" and exits
    with status 255)."""

    sender: int
    reason: str


@dataclass(frozen=True, slots=True)
class ReloadRequested:
    """A RELOAD_CONFIG was delivered (every node gets it): re-read corosync.conf, then
    call :meth:`CfgService.finish_reload` with ``conn`` (the requesting client on the
    node that sent it, None elsewhere), the new config or the reason it failed. The
    daemon also applies the new nodelist to its transport and :class:`CfgView`."""

    sender: int
    conn: int | None


@dataclass(frozen=True, slots=True)
class ReopenLogFiles:
    """A client asked for the log files to be reopened (``corosync-cfgtool -L``)."""


# -- exec messages ---------------------------------------------------------------------------


def _header(fn: ExecFn, size: int) -> dict[str, Any]:
    return {"id": SERVICE_ID << 16 | fn, "pad0": bytes(4), "size": size, "pad1": bytes(4)}


def build_killnode(nodeid: int, reason: bytes, length: int | None = None) -> bytes:
    """KILLNODE (288 bytes); ``reason`` is the name value (at most 256 bytes) and
    ``length`` its length field (default: the bytes up to the first NUL)."""
    lay = layouts("<").cfg_killnode
    if length is None:
        length = len(reason.split(b"\0", 1)[0])
    value = reason[:CMAP_KEY_MAX].ljust(CMAP_KEY_MAX, b"\0")
    return lay.build({"header": _header(ExecFn.KILLNODE, lay.sizeof()), "nodeid": nodeid,
                      "pad0": bytes(4), "reason": {"length": length, "pad": bytes(6), "value": value}})


def build_shutdown() -> bytes:
    """SHUTDOWN: the 16-byte header alone."""
    lay = layouts("<").cfg_shutdown
    return lay.build({"header": _header(ExecFn.SHUTDOWN, lay.sizeof())})


def build_reload_config(nodeid: int, conn: int) -> bytes:
    """RELOAD_CONFIG from connection ``conn`` of node ``nodeid`` (32 bytes)."""
    lay = layouts("<").cfg_reload_config
    return lay.build({"header": _header(ExecFn.RELOAD_CONFIG, lay.sizeof()),
                      "source": {"nodeid": nodeid, "pad": bytes(4), "conn": conn}})


def parse_exec_untrusted(fn: int, body: bytes) -> Any:
    """The fields of a cfg exec message (a construct Container, pads included)."""
    lay = layouts("<")
    layout = {ExecFn.RINGREENABLE: lay.cfg_ringreenable, ExecFn.KILLNODE: lay.cfg_killnode,
              ExecFn.SHUTDOWN: lay.cfg_shutdown, ExecFn.RELOAD_CONFIG: lay.cfg_reload_config,
              ExecFn.CRYPTO_RECONFIG: lay.cfg_crypto_reconfig}.get(fn)  # type: ignore[call-overload]
    if layout is None:
        raise WireError(f"no cfg exec function {fn}", 0)
    try:
        return layout.parse(body)
    except (ConstructError, ValueError) as exc:
        raise WireError(f"cfg exec message {fn} of {len(body)} bytes does not decode: {exc}", 0) from None


# -- the service --------------------------------------------------------------------------------


class _Reply(enum.Enum):
    UNKNOWN = 0
    YES = 1
    NO = 2


_INVALID = response_header(0, 24, CsError.INVALID_PARAM)
"""corosync's answer to a request it cannot take (unknown id, bad size)."""


class CfgService(QueuedMulticast, Service):
    """cfg: the requests of libcfg clients and the exec messages they cause.

    ``db`` is the node's map (KILLNODE checks ``runtime.members.*``, TRYSHUTDOWN reads
    ``cfg.shutdown_timeout``, a reload updates it), ``view`` what the node knows of its
    ring and links, ``clock`` a monotonic clock in seconds (for the shutdown timer).
    """

    service_id = SERVICE_ID
    name = "corosync configuration service"
    subsys = "CFG"
    exec_count = len(ExecFn)
    syncs = False
    lib_name = "cfg"

    def __init__(self, nodeid: int, view: CfgView, db: CmapDb | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(nodeid)
        self.view = view
        self.db = db if db is not None else CmapDb()
        self.clock = clock
        self._trackers: list[int] = []
        """Connections that called TRACKSTART, the newest first (corosync's list order)."""
        self._replies: dict[int, _Reply] = {}
        self._tried: set[int] = set()
        """Connections that started a (non-immediate) TRYSHUTDOWN at some time."""
        self._shutdown_conn: int | None = None
        self._flags = 0
        self._yes = self._no = self._expected = 0
        self.deadline: float | None = None
        """When :meth:`handle_timer` must be called (a pending shutdown's timeout)."""
        self._handlers: dict[int, Callable[[int, bytes], None]] = {
            lib.ReqId.RINGSTATUSGET: self._ringstatusget, lib.ReqId.RINGREENABLE: self._ringreenable,
            lib.ReqId.KILLNODE: self._killnode, lib.ReqId.TRYSHUTDOWN: self._tryshutdown,
            lib.ReqId.REPLYTOSHUTDOWN: self._replytoshutdown,
            lib.ReqId.GET_NODE_ADDRS: self._get_node_addrs, lib.ReqId.LOCAL_GET: self._local_get,
            lib.ReqId.RELOAD_CONFIG: self._reload_config,
            lib.ReqId.REOPEN_LOG_FILES: self._reopen_log_files,
            lib.ReqId.NODESTATUSGET: self._nodestatusget, lib.ReqId.TRACKSTART: self._trackstart,
            lib.ReqId.TRACKSTOP: self._trackstop,
        }

    @property
    def shutdown_pending(self) -> bool:
        """Whether a TRYSHUTDOWN is waiting for replies."""
        return self._shutdown_conn is not None

    # -- client requests ------------------------------------------------------------------

    def lib_request(self, conn: int, msg_id: int, data: bytes) -> None:
        handler = self._handlers.get(msg_id)
        if handler is None:
            self.respond(conn, _INVALID)
            return
        try:
            handler(conn, data)
        except WireError:
            self.respond(conn, _INVALID)

    def lib_disconnect(self, conn: int) -> None:
        self._forget_tracker(conn)
        self._replies.pop(conn, None)
        self._tried.discard(conn)

    def _ringstatusget(self, conn: int, data: bytes) -> None:
        addrs = self.view.node_addresses(self.nodeid)
        self.respond(conn, lib.encode_ringstatus([(f"{i} {a}", "OK") for i, a in enumerate(addrs)]))

    def _ringreenable(self, conn: int, data: bytes) -> None:
        self.respond(conn, lib.encode_status(lib.ResId.RINGREENABLE, CsError.NOT_SUPPORTED))

    def _killnode(self, conn: int, data: bytes) -> None:
        nodeid, length, reason = lib.decode_killnode(data)
        status = self.db.get(f"runtime.members.{nodeid}.status")
        if status is None:
            err = CsError.NOT_EXIST
        elif status.type != ValueType.STRING:
            err = CsError.LIBRARY
        elif status.python() != "joined":
            err = CsError.NOT_EXIST
        else:
            err = CsError.OK
            self.queue_multicast(build_killnode(nodeid, reason, length))
        self.respond(conn, lib.encode_status(lib.ResId.KILLNODE, err))

    def _get_node_addrs(self, conn: int, data: bytes) -> None:
        nodeid = lib.decode_u32_request(data) or self.nodeid
        addrs = list(self.view.node_addresses(nodeid))
        self.respond(conn, lib.encode_node_addrs(addrs, CsError.OK if addrs else CsError.NOT_EXIST))

    def _local_get(self, conn: int, data: bytes) -> None:
        self.respond(conn, lib.encode_u32_response(lib.ResId.LOCAL_GET, self.nodeid))

    def _reload_config(self, conn: int, data: bytes) -> None:
        # answered by finish_reload once the message was delivered and the file read
        self.queue_multicast(build_reload_config(self.nodeid, conn))

    def _reopen_log_files(self, conn: int, data: bytes) -> None:
        self.log("debug", "Reopening logging files")
        self._emit(ReopenLogFiles())
        self.respond(conn, lib.encode_status(lib.ResId.REOPEN_LOG_FILES))

    def _nodestatusget(self, conn: int, data: bytes) -> None:
        nodeid, version = lib.decode_nodestatusget(data)
        if version != lib.NODE_STATUS_V1:
            self.respond(conn, lib.encode_u32_response(lib.ResId.NODESTATUSGET, 0, CsError.NOT_SUPPORTED))
            return
        self.respond(conn, lib.encode_nodestatus(self.node_status(nodeid)))

    def node_status(self, nodeid: int) -> lib.NodeStatus:
        """What corosync 3.1.7 on udpu reports of ``nodeid``: reachable when in the ring;
        link 0 (for a node in the nodelist) enabled while the socket is bound,
        connected when reachable, with the node's address as its source address."""
        reachable = nodeid in self.view.members()
        addrs = self.view.node_addresses(nodeid)
        links: tuple[lib.Link, ...] = ()
        if addrs:
            links = (lib.Link(enabled=self.view.link_enabled(), connected=reachable,
                              mtu=self.view.link_mtu(), src_ipaddr=addrs[0]),)
        return lib.NodeStatus(nodeid, reachable, links=links)

    # -- shutdown tracking -------------------------------------------------------------------

    def _trackstart(self, conn: int, data: bytes) -> None:
        if conn not in self._trackers:
            self._trackers.insert(0, conn)
            if self._shutdown_conn is not None:
                # a shutdown is already being voted on: ask the newcomer too
                self._replies[conn] = _Reply.UNKNOWN
                self._expected += 1
                self._test_shutdown(CsError.OK, [conn])
        self.respond(conn, lib.encode_status(lib.ResId.STATETRACKSTART))

    def _trackstop(self, conn: int, data: bytes) -> None:
        self._forget_tracker(conn)
        self.respond(conn, lib.encode_status(lib.ResId.STATETRACKSTOP))

    def _tryshutdown(self, conn: int, data: bytes) -> None:
        flags = lib.decode_u32_request(data)
        if flags == lib.ShutdownFlag.IMMEDIATE:
            self.queue_multicast(build_shutdown())
            self.respond(conn, lib.encode_status(lib.ResId.TRYSHUTDOWN))
            return
        if self._shutdown_conn is not None:
            self.respond(conn, lib.encode_status(lib.ResId.TRYSHUTDOWN, CsError.EXIST))
            return
        self._tried.add(conn)
        self._shutdown_conn = conn
        self._flags = flags
        self._yes = self._no = self._expected = 0
        for other in self._trackers:
            if other != conn:
                self._replies[other] = _Reply.UNKNOWN
                self._expected += 1
        if self._expected == 0:
            # nobody to ask; corosync leaves its requester recorded here (the node is
            # going down), so a second TRYSHUTDOWN meanwhile gets EXIST
            self.respond(conn, lib.encode_status(lib.ResId.TRYSHUTDOWN))
            self.queue_multicast(build_shutdown())
            return
        timeout = self.db.python("cfg.shutdown_timeout", ValueType.UINT32)
        if not isinstance(timeout, int):
            timeout = DEFAULT_SHUTDOWN_TIMEOUT
        self.deadline = self.clock() + timeout / 1000
        self._test_shutdown(CsError.OK, [t for t in self._trackers if t != conn])

    def _replytoshutdown(self, conn: int, data: bytes) -> None:
        response = lib.decode_u32_request(data)
        status = CsError.OK
        if self._shutdown_conn is None:
            status = CsError.ACCESS
        else:
            if response:
                self._yes += 1
                self._replies[conn] = _Reply.YES
            else:
                self._no += 1
                self._replies[conn] = _Reply.NO
            self._check_shutdown()
        self.respond(conn, lib.encode_status(lib.ResId.REPLYTOSHUTDOWN, status))

    def handle_timer(self, now: float) -> None:
        """Time passes: a shutdown whose replies did not all come in by :attr:`deadline`
        counts the missing ones as "no"."""
        if self.deadline is None or now < self.deadline:
            return
        self.deadline = None
        self._no = self._expected
        self._check_shutdown()
        # corosync tells of the timeout only the trackers that once asked for a
        # shutdown themselves (it filters on a field only TRYSHUTDOWN sets)
        self._test_shutdown(CsError.TIMEOUT, [t for t in self._trackers if t in self._tried])

    def _check_shutdown(self) -> None:
        conn = self._shutdown_conn
        if conn is None or self._yes + self._no < self._expected:
            return
        self.deadline = None
        self._shutdown_conn = None
        if self._yes >= self._expected or self._flags == lib.ShutdownFlag.REGARDLESS:
            self.respond(conn, lib.encode_status(lib.ResId.TRYSHUTDOWN))
            self.queue_multicast(build_shutdown())
        else:
            self.respond(conn, lib.encode_status(lib.ResId.TRYSHUTDOWN, CsError.BUSY))
        self.log("debug", f"shutdown decision is: (yes count: {self._yes}, no count: {self._no}) "
                          f"flags={self._flags:x}")

    def _forget_tracker(self, conn: int) -> None:
        """corosync's remove_ci_from_shutdown: a requester that goes cancels its
        shutdown; a tracker that goes counts as a "yes"."""
        if conn == self._shutdown_conn:
            self._shutdown_conn = None
            self.deadline = None
        if conn not in self._trackers:
            return
        self._trackers.remove(conn)
        if self._shutdown_conn is not None:
            previous = self._replies.get(conn)
            if previous == _Reply.YES:
                self._yes -= 1
            elif previous == _Reply.NO:
                self._no -= 1
        self._replies[conn] = _Reply.YES
        self._yes += 1
        self._check_shutdown()

    def _test_shutdown(self, status: CsError, conns: list[int]) -> None:
        event = lib.encode_u32_response(lib.ResId.TESTSHUTDOWN, self._flags, status)
        for conn in conns:
            self.event(conn, event)

    # -- reload -------------------------------------------------------------------------------

    def finish_reload(self, conn: int | None, config: "ClusterConfig | None", error: str = "") -> CsError:
        """The daemon re-read corosync.conf for a :class:`ReloadRequested`: ``config``
        is the new configuration, or None when it could not be used (``error`` says
        why). Updates the map as corosync does (``config.*`` progress keys around the
        change, which votequorum and others track), answers ``conn`` if given, and
        returns the result."""
        db = self.db
        db.set_value("config.totemconfig_reload_in_progress", ValueType.UINT8, 1)
        if config is None:
            self.log("error", f"Unable to reload config file: {error}")
            result = CsError.INVALID_PARAM
        else:
            db.set_value("config.reload_in_progress", ValueType.UINT8, 1)
            for notice in db.apply_reload(config):
                self.log("notice", notice)
            result = CsError.OK
        db.set_value("config.reload_status", ValueType.INT32, int(result))
        db.set_value("config.totemconfig_reload_in_progress", ValueType.UINT8, 0)
        db.set_value("config.reload_in_progress", ValueType.UINT8, 0)
        if conn is not None:
            self.respond(conn, lib.encode_status(lib.ResId.RELOAD_CONFIG, result))
        return result

    # -- exec messages ----------------------------------------------------------------------

    def deliver(self, sender: int, fn: int, body: bytes) -> None:
        msg = parse_exec_untrusted(fn, body)
        if fn == ExecFn.KILLNODE:
            self.log("debug", f"request to kill node {msg.nodeid} (us={self.nodeid})")
            if msg.nodeid == self.nodeid:
                value = bytes(msg.reason.value)
                reason = value.split(b"\0", 1)[0].decode("utf-8", "replace")
                self.log("notice", f"Killed by node {sender} : {reason}")
                self._emit(KilledByNode(sender, reason))
        elif fn == ExecFn.SHUTDOWN:
            self.log("notice", f"Node {sender} was shut down by sysadmin")
            if sender == self.nodeid:
                self._emit(ShutdownRequested("shut down by sysadmin"))
        elif fn == ExecFn.RELOAD_CONFIG:
            self.log("notice", f"Config reload requested by node {sender}")
            mine = sender == self.nodeid
            self._emit(ReloadRequested(sender, msg.source.conn if mine else None))
        elif fn == ExecFn.CRYPTO_RECONFIG and sender == self.nodeid:
            self.log("debug", f"Crypto reconfiguration phase {msg.phase}")
