"""cmap (service 0): the one exec message, MCAST, and the sync step that sends it.

In its sync step every corosync node multicasts its ``totem.config_version`` (or
"does not exist") in a cmap MCAST with reason SYNC; receivers remember each
member's version and, on their first multi-node sync, shut down if another member
has a higher non-zero one (spec services-wire.md §5.1). This node sends NOT_EXIST
unless it is given a version, which then must equal the real nodes'.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ..wire import RingId, ServiceHeader
from ..wire.errors import WireError
from ..wire.layout import flat_format
from .base import Service
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


class CmapValueType(enum.IntEnum):
    NOT_EXIST = 0
    INT8 = 1
    UINT8 = 2
    INT16 = 3
    UINT16 = 4
    INT32 = 5
    UINT32 = 6
    INT64 = 7
    UINT64 = 8
    FLOAT = 9
    DOUBLE = 10
    STRING = 11
    BINARY = 12


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


def build_sync_message(config_version: int | None) -> bytes:
    """The MCAST a node sends in its cmap sync step."""
    if config_version is None:
        item = CmapItem(CONFIG_VERSION_KEY, CmapValueType.NOT_EXIST)
    else:
        item = CmapItem(CONFIG_VERSION_KEY, CmapValueType.UINT64, config_version.to_bytes(8, "little"))
    return CmapMcast(CmapReason.SYNC, (item,)).pack()


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


class CmapService(Service):
    """cmap's part in sync: send the config version, check the others' at activation."""

    service_id = SERVICE_ID
    name = "corosync configuration map access"
    subsys = "CMAP"
    exec_count = 1

    def __init__(self, nodeid: int, config_version: int | None = None) -> None:
        super().__init__(nodeid)
        self.config_version = config_version
        """This node's ``totem.config_version``; None = not set (sent as NOT_EXIST)."""
        self.member_config_versions: dict[int, int] = {}
        """``runtime.members.<nodeid>.config_version`` as received."""
        self.highest_received = 0
        self._trans_entries = 0
        self._first_sync = True
        self.shutdown_requested: str | None = None

    def sync_init(self, trans: tuple[int, ...], members: tuple[int, ...], ring_id: RingId) -> None:
        self._trans_entries = len(trans)
        self.highest_received = self.config_version or 0

    def sync_process(self) -> tuple[list[bytes], bool]:
        return [build_sync_message(self.config_version)], True

    def sync_activate(self) -> None:
        if self._trans_entries == 0:
            self.log("debug", "Single node sync -> no action")
            return
        if not self._first_sync:
            self.log("debug", "Not first sync -> no action")
            return
        self._first_sync = False
        mine = self.config_version or 0
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


@dataclass(frozen=True, slots=True)
class ShutdownRequested:
    """A service decided that this node must leave (cmap's config version check)."""

    reason: str
