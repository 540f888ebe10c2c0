"""cmap (service 0): the configuration map for clients, its exec message and sync step.

Exec side: in its sync step every corosync node multicasts its
``totem.config_version`` (or "does not exist") in a cmap MCAST with reason SYNC, and
again with reason NEW_CONFIG_VERSION whenever the key changes; receivers store each
member's version as ``runtime.members.<nodeid>.config_version`` and, on their first
multi-node sync, shut down if another member has a different non-zero one (spec
services-wire.md §5.1).

Lib side (``lib_name = "cmap"``, spec client-ipc.md §2.5): libcmap's requests served
from the node's :class:`~totem.cmapdb.CmapDb` (or, after SET_CURRENT_MAP, its
:class:`~totem.cmapdb.StatsMap`), with per-connection iterators and trackers that are
dropped when the connection goes. Responses have exactly the sizes libcmap expects;
a request that does not decode, or an unknown request id, gets corosync's generic
refusal (a 24-byte header, id 0, INVALID_PARAM).

:meth:`CmapService.allowed` is corosync's rule for which non-root clients may connect.
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from ..cmapdb import TRACK_ALL, CmapDb, Notification, StatsMap, Track, Value, ValueType
from ..cmapdb import stats_clear_kind, value_from_request
from ..lib import cmap as lib
from ..lib.common import IPC_REQUEST_SIZE, CsError, response_header
from ..wire import RingId, ServiceHeader
from ..wire.errors import WireError
from ..wire.layout import flat_format
from .base import LibConnection, Service
from .layouts import CMAP_KEY_MAX, layouts

SERVICE_ID = 0
MCAST_HEADER_SIZE = 48
ITEM_FIXED_SIZE = 280
ITEMS_MAX = 32
"""corosync never sends more items in one MCAST."""
CONFIG_VERSION_KEY = b"totem.config_version"


class CmapReason(enum.IntEnum):
    SYNC = 0
    NEW_CONFIG_VERSION = 1


CmapValueType = enum.IntEnum(  # type: ignore[misc]
    "CmapValueType", [("NOT_EXIST", 0)] + [(t.name, t.value) for t in ValueType])
"""An item's type in the exec MCAST: the map's value types and NOT_EXIST (0)."""


@dataclass(frozen=True, slots=True)
class CmapItem:
    key: bytes
    value_type: int
    value: bytes = b""

    @property
    def size(self) -> int:
        """Bytes on the wire: the fixed part and the value, padded to 8."""
        return (ITEM_FIXED_SIZE + len(self.value) + 7) & ~7

    def as_uint(self) -> int:
        """The value as corosync's receiver reads a u64 from it (0 unless UINT64)."""
        if self.value_type != CmapValueType.UINT64:
            return 0
        return int.from_bytes(self.value[:8].ljust(8, b"\0"), "little")


@dataclass(frozen=True, slots=True)
class CmapMcast:
    reason: int
    items: tuple[CmapItem, ...]
    header: ServiceHeader | None = None
    """As received; None builds the header corosync writes (id 0, size computed)."""

    def pack(self) -> bytes:
        size = MCAST_HEADER_SIZE + sum(i.size for i in self.items)
        h = self.header or ServiceHeader.for_function(SERVICE_ID, 0, size)
        out = [_MCAST.pack(h.id, h.pad0, size if self.header is None else h.size, h.pad1,
                           self.reason, len(self.items), 0, 0)]
        for item in self.items:
            if len(item.key) >= CMAP_KEY_MAX:
                raise ValueError("cmap key too long")
            out.append(_ITEM.pack(len(item.key), item.key, item.value_type, len(item.value)))
            out.append(item.value + bytes(-(ITEM_FIXED_SIZE + len(item.value)) % 8))
        return b"".join(out)

    def find(self, key: bytes) -> CmapItem | None:
        for item in self.items:
            if item.key == key:
                return item
        return None


def _structs() -> tuple[struct.Struct, struct.Struct]:
    lay = layouts("<")
    m = flat_format(lay.cmap_mcast)
    assert m.names == ("header.id", "header.pad0", "header.size", "header.pad1", "reason", "no_items",
                       "reserved1", "reserved2"), m.names
    i = flat_format(lay.cmap_mcast_item)
    assert i.names == ("key_name_length", "key_name_value", "value_type", "value_len"), i.names
    return struct.Struct(m.fmt), struct.Struct(i.fmt)


_MCAST, _ITEM = _structs()
assert _MCAST.size == MCAST_HEADER_SIZE and _ITEM.size == ITEM_FIXED_SIZE


def build_sync_message(config_version: int | None, reason: int = CmapReason.SYNC) -> bytes:
    """The MCAST a node sends in its cmap sync step (or, with reason
    NEW_CONFIG_VERSION, when its ``totem.config_version`` changes)."""
    if config_version is None:
        return build_item_message(reason, None)
    return build_item_message(reason, Value(ValueType.UINT64, config_version.to_bytes(8, "little")))


def build_item_message(reason: int, value: Value | None, key: bytes = CONFIG_VERSION_KEY) -> bytes:
    """An MCAST of one item: ``key`` with its value as the map holds it (None: NOT_EXIST)."""
    if value is None:
        item = CmapItem(key, CmapValueType.NOT_EXIST)
    else:
        item = CmapItem(key, value.type, value.data)
    return CmapMcast(reason, (item,)).pack()


def parse_mcast_untrusted(body: bytes) -> CmapMcast:
    """Decode a cmap MCAST; items must lie within ``body``."""
    if len(body) < MCAST_HEADER_SIZE:
        raise WireError(f"cmap MCAST of {len(body)} bytes is shorter than its 48-byte header", 0)
    id_, pad0, size, pad1, reason, count, _, _ = _MCAST.unpack_from(body)
    items = []
    pos = MCAST_HEADER_SIZE
    for n in range(count):
        if len(body) < pos + ITEM_FIXED_SIZE:
            raise WireError(f"cmap MCAST item {n} does not fit in {len(body)} bytes", pos)
        key_len, key_buf, vtype, vlen = _ITEM.unpack_from(body, pos)
        if key_len >= CMAP_KEY_MAX:
            raise WireError(f"cmap key length {key_len} exceeds the key buffer", pos)
        end = pos + ITEM_FIXED_SIZE + vlen
        if vlen > len(body) or end > len(body):
            raise WireError(f"cmap MCAST item {n} value of {vlen} bytes does not fit", pos + 272)
        items.append(CmapItem(key_buf[:key_len], vtype, body[pos + ITEM_FIXED_SIZE:end]))
        pos = (end + 7) & ~7
    return CmapMcast(reason, tuple(items), ServiceHeader(id_, size, pad0, pad1))


@dataclass(frozen=True, slots=True)
class ShutdownRequested:
    """A service decided that this node must leave the ring and stop, as corosync's
    ``shutdown_request`` does (cmap's config version check, cfg's shutdown)."""

    reason: str


@dataclass(frozen=True, slots=True)
class StatsClearRequested:
    """A client set ``stats.clear.<kind>`` in the stats map: reset those counters
    (``totem``: the SRP and totempg ones, ``ipc``, ``knet``, ``schedmiss``, ``all``)."""

    kind: str


class QueuedMulticast:
    """Exec messages a service originates, kept in order until :meth:`Service.multicast`
    takes them (it refuses while a sync runs or the totem queue is full; corosync's
    own sends never fail, they wait in its queue). Mix in before :class:`Service`."""

    multicast: Callable[[bytes], bool]

    def __init__(self, *args, **kwargs) -> None:
        self._outbox: deque[bytes] = deque()
        super().__init__(*args, **kwargs)

    def queue_multicast(self, body: bytes) -> None:
        self._outbox.append(body)
        self.flush_pending()

    def flush_pending(self) -> None:
        outbox = self._outbox
        while outbox and self.multicast(outbox[0]):
            outbox.popleft()

    @property
    def pending_multicasts(self) -> int:
        return len(self._outbox)


@dataclass
class _Iter:
    prefix: str
    last: str | None = None
    done: bool = False


@dataclass
class _ConnState:
    """What corosync keeps per cmap connection: the map it reads, its iterators and
    trackers (by the handles it was given)."""

    map: CmapDb
    iters: dict[int, _Iter] = field(default_factory=dict)
    tracks: dict[int, tuple[Track, int, CmapDb]] = field(default_factory=dict)
    """handle -> (tracker, the client's track_inst_handle, the map it is on)."""
    next_handle: int = 1

    def handle(self) -> int:
        h, self.next_handle = self.next_handle, self.next_handle + 1
        return h


_GET_FIXED = lib.GetRes.sizeof()
_INVALID = response_header(0, 24, CsError.INVALID_PARAM)
"""corosync's answer to a request it cannot take (unknown id, bad size)."""


class CmapService(QueuedMulticast, Service):
    """cmap: the config version exchange in sync, and the client library's requests.

    ``db`` is the node's map (default: an empty one, with ``config_version`` in it if
    given), ``stats`` its stats map.
    """

    service_id = SERVICE_ID
    name = "corosync configuration map access"
    subsys = "CMAP"
    exec_count = 1
    lib_name = "cmap"

    def __init__(self, nodeid: int, config_version: int | None = None, *, db: CmapDb | None = None,
                 stats: StatsMap | None = None) -> None:
        super().__init__(nodeid)
        self.db = db if db is not None else CmapDb()
        self.stats = stats if stats is not None else StatsMap()
        if config_version is not None:
            self.config_version = config_version
        self.member_config_versions: dict[int, int] = {}
        """``runtime.members.<nodeid>.config_version`` as received."""
        self.highest_received = 0
        self._my_version = self.config_version or 0
        self._trans_entries = 0
        self._first_sync = True
        self.shutdown_requested: str | None = None
        self._conns: dict[int, _ConnState] = {}
        self.db.track_add(CONFIG_VERSION_KEY.decode(), int(TRACK_ALL), self._config_version_changed)
        self._handlers: dict[int, Callable[[int, _ConnState, bytes], bytes]] = {
            lib.ReqId.SET: self._set, lib.ReqId.DELETE: self._delete, lib.ReqId.GET: self._get,
            lib.ReqId.ADJUST_INT: self._adjust_int, lib.ReqId.ITER_INIT: self._iter_init,
            lib.ReqId.ITER_NEXT: self._iter_next, lib.ReqId.ITER_FINALIZE: self._iter_finalize,
            lib.ReqId.TRACK_ADD: self._track_add, lib.ReqId.TRACK_DELETE: self._track_delete,
            lib.ReqId.SET_CURRENT_MAP: self._set_current_map,
        }

    @property
    def config_version(self) -> int | None:
        """This node's ``totem.config_version`` (None when the map has no u64 value)."""
        v = self.db.python(CONFIG_VERSION_KEY.decode(), ValueType.UINT64)
        return v if isinstance(v, int) else None

    @config_version.setter
    def config_version(self, version: int | None) -> None:
        if version is None:
            self.db.delete(CONFIG_VERSION_KEY.decode())
        else:
            self.db.set_value(CONFIG_VERSION_KEY.decode(), ValueType.UINT64, version)

    def allowed(self, uid: int, gid: int) -> bool:
        """Whether a client with these credentials may connect (spec client-ipc.md §1.3)."""
        return self.db.allowed(uid, gid)

    # -- sync -------------------------------------------------------------------------

    def sync_init(self, trans: tuple[int, ...], members: tuple[int, ...], ring_id: RingId) -> None:
        self._trans_entries = len(trans)
        self._my_version = self.config_version or 0
        self.highest_received = self._my_version

    def sync_process(self) -> tuple[list[bytes], bool]:
        return [self._version_message(CmapReason.SYNC)], True

    def sync_activate(self) -> None:
        if self._trans_entries == 0:
            self.log("debug", "Single node sync -> no action")
            return
        if not self._first_sync:
            self.log("debug", "Not first sync -> no action")
            return
        self._first_sync = False
        mine = self._my_version
        if mine == 0:
            self.log("debug", "My config version is 0 -> no action")
            return
        if self.highest_received != mine:
            reason = (f"Received config version ({self.highest_received}) is different than my config "
                      f"version ({mine})! Exiting")
            self.log("error", reason)
            self.shutdown_requested = reason
            self._emit(ShutdownRequested(reason))

    def deliver(self, sender: int, fn: int, body: bytes) -> None:
        msg = parse_mcast_untrusted(body)
        if msg.reason not in (CmapReason.SYNC, CmapReason.NEW_CONFIG_VERSION):
            return
        item = msg.find(CONFIG_VERSION_KEY)
        version = item.as_uint() if item is not None else 0
        if sender != self.nodeid and version > self.highest_received:
            self.highest_received = version
        self.member_config_versions[sender] = version
        self.db.set_member_config_version(sender, version)

    def _version_message(self, reason: int) -> bytes:
        return build_item_message(reason, self.db.get(CONFIG_VERSION_KEY.decode()))

    def _config_version_changed(self, track: Track, n: Notification) -> None:
        self._my_version = self.config_version or 0
        self.queue_multicast(self._version_message(CmapReason.NEW_CONFIG_VERSION))

    # -- client connections --------------------------------------------------------------

    def lib_connect(self, conn: LibConnection) -> None:
        self._conns[conn.id] = _ConnState(self.db)

    def lib_disconnect(self, conn: int) -> None:
        state = self._conns.pop(conn, None)
        if state is not None:
            for track, _inst, owner in state.tracks.values():
                owner.track_delete(track)

    def lib_request(self, conn: int, msg_id: int, data: bytes) -> None:
        state = self._conns.get(conn)
        if state is None:
            state = self._conns[conn] = _ConnState(self.db)
        handler = self._handlers.get(msg_id)
        if handler is None:
            self.respond(conn, _INVALID)
            return
        try:
            response = handler(conn, state, data)
        except WireError:
            response = _INVALID
        self.respond(conn, response)

    def _set(self, conn: int, state: _ConnState, data: bytes) -> bytes:
        req = lib.decode_set(data)
        if state.map.is_read_only(req.key):
            err = CsError.ACCESS
        elif state.map is self.stats:
            kind = stats_clear_kind(req.key)
            err = CsError.OK if kind is not None else CsError.NOT_SUPPORTED
            if kind is not None:
                self._emit(StatsClearRequested(kind))
        else:
            value = value_from_request(req.type, req.value)
            err = value if isinstance(value, CsError) else state.map.set(req.key, value)
        return lib.encode_status(lib.ResId.SET, err)

    def _delete(self, conn: int, state: _ConnState, data: bytes) -> bytes:
        key = lib.decode_key_request(lib.ReqId.DELETE, data).key or ""
        if state.map.is_read_only(key):
            err = CsError.ACCESS
        elif state.map is self.stats:
            err = CsError.NOT_SUPPORTED
        else:
            err = state.map.delete(key)
        return lib.encode_status(lib.ResId.DELETE, err)

    def _get(self, conn: int, state: _ConnState, data: bytes) -> bytes:
        req = lib.decode_key_request(lib.ReqId.GET, data)
        requested = req.number
        if _GET_FIXED + requested > IPC_REQUEST_SIZE:
            return lib.encode_get_response(CsError.NO_MEMORY)
        value = state.map.get(req.key or "")
        if value is None:
            return lib.encode_get_response(CsError.NOT_EXIST)
        if requested and requested < len(value.data):
            return lib.encode_get_response(CsError.INVALID_PARAM)
        return lib.encode_get_response(CsError.OK, value.type, value.data, requested)

    def _adjust_int(self, conn: int, state: _ConnState, data: bytes) -> bytes:
        req = lib.decode_key_request(lib.ReqId.ADJUST_INT, data)
        key = req.key or ""
        if state.map.is_read_only(key):
            err = CsError.ACCESS
        elif state.map is self.stats:
            err = CsError.NOT_SUPPORTED
        else:
            err = state.map.adjust_int(key, req.number)
        return lib.encode_status(lib.ResId.ADJUST_INT, err)

    def _iter_init(self, conn: int, state: _ConnState, data: bytes) -> bytes:
        prefix = lib.decode_key_request(lib.ReqId.ITER_INIT, data).key or ""
        handle = state.handle()
        state.iters[handle] = _Iter(prefix)
        return lib.encode_handle_response(lib.ResId.ITER_INIT, handle)

    def _iter_next(self, conn: int, state: _ConnState, data: bytes) -> bytes:
        it = state.iters.get(lib.decode_handle_request(data))
        if it is None:
            return lib.encode_iter_next(CsError.BAD_HANDLE)
        key = None if it.done else state.map.next_key(it.prefix, it.last)
        if key is None:
            it.done = True
            return lib.encode_iter_next(CsError.NO_SECTIONS)
        it.last = key
        value = state.map.get(key)
        assert value is not None
        return lib.encode_iter_next(CsError.OK, key, value.type, len(value.data))

    def _iter_finalize(self, conn: int, state: _ConnState, data: bytes) -> bytes:
        found = state.iters.pop(lib.decode_handle_request(data), None) is not None
        return lib.encode_status(lib.ResId.ITER_FINALIZE, CsError.OK if found else CsError.BAD_HANDLE)

    def _track_add(self, conn: int, state: _ConnState, data: bytes) -> bytes:
        req = lib.decode_track_add(data)
        inst = req.track_inst_handle

        def notify(track: Track, n: Notification) -> None:
            self.event(conn, _notification(inst, n))

        track = state.map.track_add(req.key, req.track_type, notify)
        if isinstance(track, CsError):
            return lib.encode_handle_response(lib.ResId.TRACK_ADD, 0, track)
        handle = state.handle()
        state.tracks[handle] = (track, inst, state.map)
        return lib.encode_handle_response(lib.ResId.TRACK_ADD, handle)

    def _track_delete(self, conn: int, state: _ConnState, data: bytes) -> bytes:
        entry = state.tracks.pop(lib.decode_handle_request(data), None)
        if entry is None:
            return lib.encode_handle_response(lib.ResId.TRACK_DELETE, 0, CsError.BAD_HANDLE)
        track, inst, owner = entry
        return lib.encode_handle_response(lib.ResId.TRACK_DELETE, inst, owner.track_delete(track))

    def _set_current_map(self, conn: int, state: _ConnState, data: bytes) -> bytes:
        which = lib.decode_set_current_map(data)
        if state.iters or state.tracks:
            err = CsError.BUSY
        elif which == lib.MapId.DEFAULT:
            state.map, err = self.db, CsError.OK
        elif which == lib.MapId.STATS:
            state.map, err = self.stats, CsError.OK
        else:
            err = CsError.NOT_EXIST
        return lib.encode_status(lib.ResId.SET_CURRENT_MAP, err)


def _notification(inst: int, n: Notification) -> bytes:
    new_type, new = (n.new.type, n.new.data) if n.new is not None else (0, b"")
    old_type, old = (n.old.type, n.old.data) if n.old is not None else (0, b"")
    return lib.encode_notify(inst, n.key, int(n.event), new_type, new, old_type, old)
