"""The configuration map of a node: corosync's icmap (and its ``stats`` map) as pure code.

A :class:`CmapDb` maps dotted key names to typed values, as corosync 3.1.7's
``exec/icmap.c`` does (spec client-ipc.md §2.5):

* values are typed (:class:`ValueType`); integers and floats have exactly their
  type's width, strings are stored with their terminating NUL, binary values as given;
* a new key must be 3 to 255 characters of ``a-z A-Z 0-9 . _ - / :``;
* setting a key to the value it already has changes nothing and notifies nobody;
* keys iterate in byte order, optionally under a prefix, and an iterator sees keys
  added behind its position (corosync iterates its trie live);
* trackers on a key, or on a prefix, are called with ADD, DELETE and MODIFY
  notifications in the order corosync's trie calls them: the key's own trackers
  (the newest first), then prefix trackers from the longest prefix to the shortest
  (the oldest first on each);
* some keys are read-only *for clients* (:meth:`CmapDb.is_read_only`); the daemon itself
  may change any key.

The node loads it from its :class:`~totem.config.model.ClusterConfig` and keeps the
runtime keys corosync maintains up to date through :meth:`CmapDb.update_membership`,
:meth:`CmapDb.set_member_config_version`, :meth:`CmapDb.register_services` and
:meth:`CmapDb.apply_reload`. :class:`StatsMap` is the separate map of ``stats.*`` keys
that ``corosync-cmapctl -m stats`` reads; the node feeds it with
:meth:`StatsMap.update_srp_stats` and friends.
"""

from __future__ import annotations

import bisect
import enum
import itertools
import math
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Mapping, Sequence

from .lib.common import CsError

if TYPE_CHECKING:
    from .config.model import ClusterConfig

KEY_MIN = 3
KEY_MAX = 255
"""``ICMAP_KEYNAME_MINLEN`` / ``ICMAP_KEYNAME_MAXLEN``."""
VALUE_MAX = 16 * 1024
"""``ICMAP_MAX_VALUE_LEN``: the longest value a key may hold."""


class ValueType(enum.IntEnum):
    """``icmap_value_types_t`` / ``cmap_value_types_t``."""

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

    @property
    def short_name(self) -> str:
        """The name corosync-cmapctl prints and accepts (``u32``, ``str``, ...)."""
        return _SHORT_NAMES[self]

    @classmethod
    def from_short_name(cls, name: str) -> "ValueType":
        try:
            return _BY_SHORT_NAME[name]
        except KeyError:
            raise ValueError(f"unknown cmap value type {name!r}") from None


_SHORT_NAMES = {
    ValueType.INT8: "i8", ValueType.UINT8: "u8", ValueType.INT16: "i16", ValueType.UINT16: "u16",
    ValueType.INT32: "i32", ValueType.UINT32: "u32", ValueType.INT64: "i64", ValueType.UINT64: "u64",
    ValueType.FLOAT: "flt", ValueType.DOUBLE: "dbl", ValueType.STRING: "str", ValueType.BINARY: "bin",
}
_BY_SHORT_NAME = {v: k for k, v in _SHORT_NAMES.items()}
_FORMATS = {
    ValueType.INT8: struct.Struct("<b"), ValueType.UINT8: struct.Struct("<B"),
    ValueType.INT16: struct.Struct("<h"), ValueType.UINT16: struct.Struct("<H"),
    ValueType.INT32: struct.Struct("<i"), ValueType.UINT32: struct.Struct("<I"),
    ValueType.INT64: struct.Struct("<q"), ValueType.UINT64: struct.Struct("<Q"),
    ValueType.FLOAT: struct.Struct("<f"), ValueType.DOUBLE: struct.Struct("<d"),
}
INTEGER_TYPES = frozenset(t for t in _FORMATS if t not in (ValueType.FLOAT, ValueType.DOUBLE))


def value_width(vtype: int) -> int | None:
    """Bytes of a fixed-width type, None for STRING and BINARY (and unknown types)."""
    fmt = _FORMATS.get(vtype)  # type: ignore[call-overload]
    return fmt.size if fmt is not None else None


class TrackType(enum.IntFlag):
    """What a tracker wants to hear of (``ICMAP_TRACK_*``); also a notification's event."""

    DELETE = 1
    MODIFY = 2
    ADD = 4
    PREFIX = 8


TRACK_ALL = TrackType.ADD | TrackType.DELETE | TrackType.MODIFY


@dataclass(frozen=True, slots=True)
class Value:
    """A typed value as icmap stores it (strings include their NUL)."""

    type: ValueType
    data: bytes

    @classmethod
    def of(cls, vtype: ValueType | str, value: int | float | str | bytes) -> "Value":
        """The value of a Python object: an int or float for the numeric types (range
        checked), text for STRING (no NUL inside), bytes for BINARY. ValueError if it
        does not fit the type."""
        vtype = ValueType.from_short_name(vtype) if isinstance(vtype, str) else ValueType(vtype)
        fmt = _FORMATS.get(vtype)
        if fmt is not None:
            if vtype in INTEGER_TYPES:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{vtype.short_name} needs an integer, not {value!r}")
                try:
                    return cls(vtype, fmt.pack(value))
                except struct.error:
                    raise ValueError(f"{value} is not a valid {vtype.short_name} integer") from None
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ValueError(f"{vtype.short_name} needs a number, not {value!r}")
            return cls(vtype, fmt.pack(value))
        if vtype == ValueType.STRING:
            if isinstance(value, str):
                raw = value.encode("utf-8", "surrogateescape")
            elif isinstance(value, (bytes, bytearray, memoryview)):
                raw = bytes(value)
            else:
                raise ValueError(f"str needs text, not {value!r}")
            if b"\0" in raw:
                raise ValueError("a cmap string cannot contain NUL")
            return cls(vtype, raw + b"\0")
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise ValueError(f"bin needs bytes, not {value!r}")
        return cls(vtype, bytes(value))

    @classmethod
    def parse(cls, vtype: ValueType | str, text: str) -> "Value":
        """The value written as text, as corosync.conf and corosync-cmapctl write it."""
        vtype = ValueType.from_short_name(vtype) if isinstance(vtype, str) else ValueType(vtype)
        if vtype in INTEGER_TYPES:
            return cls.of(vtype, int(text, 10))
        if vtype in (ValueType.FLOAT, ValueType.DOUBLE):
            return cls.of(vtype, float(text))
        if vtype == ValueType.BINARY:
            return cls.of(vtype, bytes.fromhex(text))
        return cls.of(vtype, text)

    def python(self) -> int | float | str | bytes:
        """The value as a Python object (a STRING without its NUL)."""
        fmt = _FORMATS.get(self.type)
        if fmt is not None:
            return fmt.unpack(self.data)[0]
        if self.type == ValueType.STRING:
            return self.data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        return self.data


@dataclass(frozen=True, slots=True)
class Notification:
    """One change a tracker hears of. ``old`` is None for ADD and for the in-place
    counters corosync bumps without a copy (see :meth:`CmapDb.fast_adjust_int`),
    ``new`` is None for DELETE."""

    event: TrackType
    key: str
    new: Value | None
    old: Value | None


Notify = Callable[["Track", Notification], None]


@dataclass(eq=False)
class Track:
    """A tracker: ``key`` is an exact key, or a prefix (``""`` = every key) when
    ``track_type`` includes PREFIX."""

    key: str
    track_type: int
    notify: Notify
    seq: int

    @property
    def prefix(self) -> bool:
        return bool(self.track_type & TrackType.PREFIX)


_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-/:")


def valid_key_name(key: str) -> bool:
    """Whether icmap accepts ``key`` as the name of a new key."""
    return KEY_MIN <= len(key) <= KEY_MAX and all(c in _NAME_CHARS for c in key)


def value_from_request(vtype: int, raw: bytes) -> Value | CsError:
    """What a client's SET stores (icmap_check_value_len + icmap_set): a fixed-width
    value must have its width; a string is cut at its first NUL and gets one added,
    and is refused if the client claimed more bytes than the string plus its NUL."""
    if len(raw) > VALUE_MAX:
        return CsError.INVALID_PARAM
    try:
        vt = ValueType(vtype)
    except ValueError:
        return CsError.INVALID_PARAM
    width = value_width(vt)
    if width is not None:
        return Value(vt, raw) if len(raw) == width else CsError.INVALID_PARAM
    if vt == ValueType.STRING:
        text, nul, _ = raw.partition(b"\0")
        if nul and len(raw) > len(text) + 1:
            return CsError.INVALID_PARAM
        return Value(vt, text + b"\0")
    return Value(vt, raw)


class CmapDb:
    """The typed, tracked key-value map (see the module doc)."""

    def __init__(self) -> None:
        self._values: dict[str, Value] = {}
        self._keys: list[str] = []
        """Sorted, for iteration."""
        self._tracks: list[Track] = []
        self._track_seq = itertools.count(1)
        self._read_only: set[tuple[str, bool]] = set()

    # -- reading -----------------------------------------------------------------------------

    def get(self, key: str) -> Value | None:
        return self._values.get(key)

    def python(self, key: str, vtype: ValueType | None = None) -> int | float | str | bytes | None:
        """The value of ``key`` as a Python object; None if absent or not of ``vtype``."""
        v = self._values.get(key)
        if v is None or (vtype is not None and v.type != vtype):
            return None
        return v.python()

    def __contains__(self, key: str) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def keys(self, prefix: str = "") -> list[str]:
        """Keys under ``prefix`` in iteration (byte) order."""
        lo = bisect.bisect_left(self._keys, prefix)
        out = []
        for key in itertools.islice(self._keys, lo, None):
            if not key.startswith(prefix):
                break
            out.append(key)
        return out

    def items(self, prefix: str = "") -> Iterator[tuple[str, Value]]:
        for key in self.keys(prefix):
            yield key, self._values[key]

    def next_key(self, prefix: str, after: str | None) -> str | None:
        """The first key under ``prefix`` beyond ``after`` (None: from the start): one
        step of a live iteration."""
        keys = self._keys
        i = bisect.bisect_left(keys, prefix) if after is None else bisect.bisect_right(keys, after)
        if i < len(keys) and keys[i].startswith(prefix):
            return keys[i]
        return None

    # -- writing (icmap semantics) ---------------------------------------------------------------

    def set(self, key: str, value: Value) -> CsError:
        """Store ``value`` under ``key``: OK (also when nothing changed), NAME_TOO_LONG
        for a new key with a bad name, INVALID_PARAM for a value of the wrong width."""
        width = value_width(value.type)
        if len(value.data) > VALUE_MAX or (width is not None and len(value.data) != width):
            return CsError.INVALID_PARAM
        old = self._values.get(key)
        if old is not None:
            if old == value:
                return CsError.OK
        elif not valid_key_name(key):
            return CsError.NAME_TOO_LONG
        else:
            bisect.insort(self._keys, key)
        self._values[key] = value
        self._notify(TrackType.MODIFY if old is not None else TrackType.ADD, key, value, old)
        return CsError.OK

    def set_value(self, key: str, vtype: ValueType | str, value: int | float | str | bytes) -> CsError:
        """:meth:`set` from a Python value (see :meth:`Value.of`)."""
        return self.set(key, Value.of(vtype, value))

    def delete(self, key: str) -> CsError:
        old = self._values.pop(key, None)
        if old is None:
            return CsError.NOT_EXIST
        del self._keys[bisect.bisect_left(self._keys, key)]
        self._notify(TrackType.DELETE, key, None, old)
        return CsError.OK

    def adjust_int(self, key: str, step: int) -> CsError:
        """Add ``step`` to an integer key, wrapping at its width (icmap_adjust_int)."""
        new = self._adjusted(key, step)
        return new if isinstance(new, CsError) else self.set(key, new)

    def fast_adjust_int(self, key: str, step: int) -> CsError:
        """As :meth:`adjust_int`, but as corosync's in-place counters do it: trackers are
        told of a MODIFY without the old value, even when ``step`` is 0."""
        new = self._adjusted(key, step)
        if isinstance(new, CsError):
            return new
        self._values[key] = new
        self._notify(TrackType.MODIFY, key, new, None)
        return CsError.OK

    def _adjusted(self, key: str, step: int) -> Value | CsError:
        old = self._values.get(key)
        if old is None:
            return CsError.NOT_EXIST
        if old.type not in INTEGER_TYPES:
            return CsError.INVALID_PARAM
        width = len(old.data)
        n = (int.from_bytes(old.data, "little") + step) % (1 << (8 * width))
        return Value(old.type, n.to_bytes(width, "little"))

    # -- tracking ------------------------------------------------------------------------------------

    def track_add(self, key: str | None, track_type: int, notify: Notify) -> Track | CsError:
        """Call ``notify`` on changes of ``key`` (or of every key under it with PREFIX;
        None = ``""``). INVALID_PARAM for unknown track bits."""
        if track_type & ~int(TRACK_ALL | TrackType.PREFIX):
            return CsError.INVALID_PARAM
        track = Track(key or "", track_type, notify, next(self._track_seq))
        self._tracks.append(track)
        return track

    def track_delete(self, track: Track) -> CsError:
        try:
            self._tracks.remove(track)
        except ValueError:
            return CsError.NOT_EXIST
        return CsError.OK

    @property
    def tracks(self) -> tuple[Track, ...]:
        return tuple(self._tracks)

    def _listeners(self, event: TrackType, key: str) -> list[Track]:
        hits = [t for t in self._tracks
                if t.track_type & event and (key.startswith(t.key) if t.prefix else key == t.key)]
        # corosync's trie: the key's node first, then its parents; on one node the exact
        # trackers (newest first) before the prefix trackers (oldest first)
        hits.sort(key=lambda t: (-len(t.key), t.prefix, t.seq if t.prefix else -t.seq))
        return hits

    def _notify(self, event: TrackType, key: str, new: Value | None, old: Value | None) -> None:
        if not self._tracks:
            return
        n = Notification(event, key, new, old)
        for track in self._listeners(event, key):
            if track in self._tracks:  # a callback may have removed a later tracker
                track.notify(track, n)

    # -- client access rules ----------------------------------------------------------------------

    def set_read_only(self, name: str, prefix: bool) -> None:
        """Clients may not change ``name`` (or any key starting with it if ``prefix``)."""
        self._read_only.add((name, prefix))

    def is_read_only(self, key: str) -> bool:
        """Whether a client's SET, DELETE or ADJUST_INT on ``key`` is refused (ACCESS)."""
        return any(key.startswith(name) if prefix else key == name for name, prefix in self._read_only)

    def allowed(self, uid: int, gid: int) -> bool:
        """corosync's IPC access rule (spec client-ipc.md §1.3): root (uid or gid 0), or
        ``uidgid.uid.<uid>``, ``uidgid.config.uid.<uid>``, ``uidgid.gid.<gid>`` or
        ``uidgid.config.gid.<gid>`` holding the u8 value 1."""
        if uid == 0 or gid == 0:
            return True
        one = Value(ValueType.UINT8, b"\x01")
        return any(self._values.get(k) == one for k in (
            f"uidgid.uid.{uid}", f"uidgid.config.uid.{uid}",
            f"uidgid.gid.{gid}", f"uidgid.config.gid.{gid}"))

    # -- what the node keeps up to date ------------------------------------------------------------

    @classmethod
    def from_config(cls, cfg: "ClusterConfig") -> "CmapDb":
        """The map of a node starting with ``cfg``: its keys, the runtime.config.totem.*
        keys, and the read-only marks corosync's main (and votequorum) set."""
        db = cls()
        for name, prefix in READ_ONLY:
            db.set_read_only(name, prefix)
        if cfg.quorum.enabled:
            for name in VOTEQUORUM_READ_ONLY:
                db.set_read_only(name, False)
        for key, value in sorted(config_values(cfg).items()):
            db.set(key, value)
        return db

    def register_services(self, services: Iterable[tuple[int, str, int]]) -> None:
        """The keys corosync writes for each loaded service: (service id, short name such
        as ``cmap`` (a service's ``lib_name``), number of exec message functions)."""
        for sid, name, exec_count in services:
            self.set_value(f"internal_configuration.service.{sid}.name", ValueType.STRING, f"corosync_{name}")
            self.set_value(f"internal_configuration.service.{sid}.ver", ValueType.UINT32, 0)
            self.set_value(f"runtime.services.{name}.service_id", ValueType.UINT16, sid)
            for fn in range(exec_count):
                for direction in ("rx", "tx"):
                    self.set_value(f"runtime.services.{name}.{fn}.{direction}", ValueType.UINT64, 0)

    def count_exec_message(self, service: str, fn: int, sent: bool) -> None:
        """Count one exec message of ``service`` (short name) function ``fn`` in
        ``runtime.services.<name>.<fn>.tx`` or ``.rx``, as corosync does: ``tx`` for every
        message this node multicasts (sync-time ones included), ``rx`` for every one
        delivered to a known function (this node's own included)."""
        self.fast_adjust_int(f"runtime.services.{service}.{fn}.{'tx' if sent else 'rx'}", 1)

    def update_membership(self, joined: Iterable[int], left: Iterable[int],
                          addresses: Mapping[int, Sequence[str]]) -> None:
        """The ``runtime.members.<nodeid>.*`` keys after a configuration change, as
        corosync's main keeps them: call it for every transitional and regular
        configuration (``left`` nodes are marked first, then ``joined`` ones);
        ``addresses`` gives each node's configured link addresses (link 0 first)."""
        for nodeid in left:
            self.set_value(f"runtime.members.{nodeid}.status", ValueType.STRING, "left")
        for nodeid in joined:
            base = f"runtime.members.{nodeid}."
            if base + "ip" in self._values:
                self.adjust_int(base + "join_count", 1)
            else:
                self.set_value(base + "ip", ValueType.STRING, interfaces_text(addresses.get(nodeid, ())))
                self.set_value(base + "join_count", ValueType.UINT32, 1)
            self.set_value(base + "status", ValueType.STRING, "joined")

    def member_status(self, nodeid: int) -> str | None:
        """``runtime.members.<nodeid>.status`` (``joined``, ``left``) or None."""
        status = self.python(f"runtime.members.{nodeid}.status", ValueType.STRING)
        return status if isinstance(status, str) else None

    def set_member_config_version(self, nodeid: int, version: int) -> None:
        """What cmap's exec MCAST tells of a member's ``totem.config_version``."""
        self.set_value(f"runtime.members.{nodeid}.config_version", ValueType.UINT64, version)

    def apply_reload(self, cfg: "ClusterConfig") -> list[str]:
        """Bring the config keys to what a re-read corosync.conf says, as ``corosync-cfgtool
        -R`` does: keys under the reloadable prefixes that the file no longer has are
        deleted, the keys that cannot change at run time keep their value, everything
        else is set (trackers hear of each change). Returns corosync's notices for the
        changes it refused."""
        new = config_values(cfg)
        for prefix in RELOAD_PREFIXES:
            for key in self.keys(prefix):
                if key not in new:
                    self.delete(key)
        notices = []
        for key in RELOAD_FIXED_KEYS:
            current = self._values.get(key)
            if key in new and (current is None or new[key] != current):
                del new[key]
                notices.append(f"Modified entry '{key}' in corosync.conf cannot be changed at run-time")
        for key, value in sorted(new.items()):
            self.set(key, value)
        return notices


def interfaces_text(addresses: Sequence[str]) -> str:
    """A node's addresses as corosync prints them (``r(0) ip(10.0.0.1) ``)."""
    return "".join(f"r({link}) ip({addr}) " for link, addr in enumerate(addresses))


def config_values(cfg: "ClusterConfig") -> dict[str, Value]:
    """The keys a node's map takes from its configuration: corosync.conf's keys (with
    what corosync writes back) and the runtime.config.totem.* keys."""
    out = {key: Value.parse(cfg.cmap_types.get(key, "str"), text) for key, text in cfg.cmap.items()}
    for key, (vtype, text) in cfg.runtime_cmap().items():
        out[key] = Value.parse(vtype, text)
    return out


READ_ONLY: tuple[tuple[str, bool], ...] = (
    ("internal_configuration.", True), ("runtime.services.", True), ("runtime.config.", True),
    ("runtime.totem.", True), ("uidgid.config.", True), ("system.", True), ("nodelist.", True),
    ("totem.crypto_cipher", False), ("totem.crypto_hash", False), ("totem.crypto_model", False),
    ("totem.keyfile", False), ("totem.key", False), ("totem.secauth", False),
    ("totem.ip_version", False), ("totem.rrp_mode", False), ("totem.transport", False),
    ("totem.cluster_name", False), ("totem.netmtu", False), ("totem.threads", False),
    ("totem.version", False), ("totem.nodeid", False), ("totem.clear_node_high_bit", False),
    ("config.reload_in_progress", False), ("config.totemconfig_reload_in_progress", False),
    ("nodelist.local_node_pos", False),
)
"""(name, is prefix): the keys clients may not change, as corosync 3.1.7's main and
totemconfig mark them."""
VOTEQUORUM_READ_ONLY = (
    "quorum.allow_downscale", "quorum.wait_for_all", "quorum.last_man_standing",
    "quorum.last_man_standing_window", "quorum.expected_votes_tracking",
    "quorum.auto_tie_breaker", "quorum.auto_tie_breaker_node",
)
"""Marked read-only by votequorum when it is the quorum provider."""
RELOAD_PREFIXES = ("logging.", "totem.", "nodelist.", "quorum.", "uidgid.config.", "nozzle.")
"""Where a reload deletes the keys the file no longer has."""
RELOAD_FIXED_KEYS = (
    "totem.secauth", "totem.crypto_hash", "totem.crypto_cipher", "totem.keyfile", "totem.key",
    "totem.version", "totem.threads", "totem.ip_version", "totem.rrp_mode", "totem.netmtu",
    "totem.interface.ringnumber", "totem.interface.bindnetaddr", "totem.interface.mcastaddr",
    "totem.interface.broadcast", "totem.interface.mcastport", "totem.interface.ttl",
    "totem.transport", "totem.cluster_name", "quorum.provider", "system.move_to_root_cgroup",
    "system.allow_knet_handle_fallback", "system.sched_rr", "system.priority",
    "system.qb_ipc_type", "system.state_dir",
)
"""Keys a reload may not change (cfg.c's remove_ro_entries, without knet crypto reconfig)."""


# -- the stats map ---------------------------------------------------------------------------

_U8, _U32, _U64 = ValueType.UINT8, ValueType.UINT32, ValueType.UINT64
SRP_STATS: dict[str, ValueType] = {
    **dict.fromkeys((
        "orf_token_tx", "orf_token_rx", "memb_merge_detect_tx", "memb_merge_detect_rx",
        "memb_join_tx", "memb_join_rx", "mcast_tx", "mcast_retx", "mcast_rx",
        "memb_commit_token_tx", "memb_commit_token_rx", "token_hold_cancel_tx",
        "token_hold_cancel_rx", "operational_entered", "operational_token_lost",
        "gather_entered", "gather_token_lost", "commit_entered", "commit_token_lost",
        "recovery_entered", "recovery_token_lost", "consensus_timeouts", "rx_msg_dropped",
        "time_since_token_last_received"), _U64),
    "continuous_gather": _U32,
    "continuous_sendmsg_failures": _U32,
    "firewall_enabled_or_nic_failure": _U8,
    "mtt_rx_token": _U32,
    "avg_token_workload": _U32,
    "avg_backlog_calc": _U32,
}
"""``stats.srp.<name>`` and its type, as corosync 3.1.7's stats.c lists them."""
PG_STATS = {"msg_queue_avail": _U32, "msg_reserved": _U32}
IPCS_GLOBAL_STATS = {"active": _U64, "closed": _U64}
STATS_CLEAR = "stats.clear."
STATS_CLEAR_KINDS = ("knet", "ipc", "totem", "schedmiss", "all")
"""``stats.clear.<kind>``: what a client may set in the stats map to reset counters."""


class StatsMap(CmapDb):
    """The ``stats`` map (``corosync-cmapctl -m stats``): every key is read-only but the
    ``stats.clear.*`` ones, prefix trackers must track both ADD and DELETE and hear of
    nothing else, and a MODIFY carries the new value as the old one too (corosync
    polls its counters and keeps no copy)."""

    def __init__(self) -> None:
        super().__init__()
        for group, names in (("pg", PG_STATS), ("srp", SRP_STATS), ("ipcs.global", IPCS_GLOBAL_STATS)):
            for name, vtype in names.items():
                self.set_value(f"stats.{group}.{name}", vtype, 0)

    def is_read_only(self, key: str) -> bool:
        return not key.startswith(STATS_CLEAR)

    def track_add(self, key: str | None, track_type: int, notify: Notify) -> Track | CsError:
        if track_type & TrackType.PREFIX and (track_type & (TrackType.ADD | TrackType.DELETE)
                                              != TrackType.ADD | TrackType.DELETE):
            return CsError.NOT_SUPPORTED
        return super().track_add(key, track_type, notify)

    def _notify(self, event: TrackType, key: str, new: Value | None, old: Value | None) -> None:
        if event != TrackType.MODIFY:
            super()._notify(event, key, new, old)
            return
        n = Notification(event, key, new, new)
        for track in self._listeners(event, key):
            if not track.prefix and track in self._tracks:
                track.notify(track, n)

    def update(self, group: str, types: Mapping[str, ValueType], values: Mapping[str, int | float]) -> None:
        """Set ``stats.<group>.<name>`` for the names of ``types`` found in ``values``
        (integers wrap at their width, as the C counters do)."""
        for name, value in values.items():
            vtype = types.get(name)
            if vtype is None:
                continue
            if vtype in INTEGER_TYPES:
                value = int(value) % (1 << (8 * (value_width(vtype) or 8)))
            elif not math.isfinite(float(value)):
                continue
            self.set(f"stats.{group}.{name}", Value.of(vtype, value))

    def update_srp_stats(self, stats: Mapping[str, int]) -> None:
        """``stats.srp.*`` from the SRP core's counters (names as corosync's)."""
        self.update("srp", SRP_STATS, stats)

    def update_pg_stats(self, msg_queue_avail: int, msg_reserved: int) -> None:
        self.update("pg", PG_STATS, {"msg_queue_avail": msg_queue_avail, "msg_reserved": msg_reserved})

    def update_ipc_stats(self, active: int, closed: int) -> None:
        """``stats.ipcs.global.*``: client connections open now and closed so far."""
        self.update("ipcs.global", IPCS_GLOBAL_STATS, {"active": active, "closed": closed})


def stats_clear_kind(key: str) -> str | None:
    """Which counters a SET of ``key`` in the stats map clears (None: not a clear key)."""
    if not key.startswith(STATS_CLEAR):
        return None
    rest = key[len(STATS_CLEAR):]
    return next((kind for kind in STATS_CLEAR_KINDS if rest.startswith(kind)), None)

