"""The service message header and the sync engine's two messages.

Every message on group ``a`` starts with libqb's 16-byte request header whose
``id`` is ``service << 16 | function``; group ``sync`` carries BARRIER (id 0) and
SERVICE_BUILD (id 1), whose ids are not service-encoded
(spec services-wire.md §1.4, §2.1).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from .errors import WireError
from .layout import flat_format, layouts
from .srp import RingId

SERVICE_HEADER_SIZE = 16
SERVICE_LIST_MAX = 128


class Service(enum.IntEnum):
    """Service ids of corosync 3.x (corodefs.h)."""

    cmap = 0
    cfg = 1
    cpg = 2
    quorum = 3
    pload = 4
    votequorum = 5
    mon = 6
    wd = 7


class SyncMessageId(enum.IntEnum):
    BARRIER = 0
    SERVICE_BUILD = 1


def service_name(service: int) -> str:
    try:
        return Service(service).name
    except ValueError:
        return f"service{service}"


@dataclass(frozen=True, slots=True)
class ServiceHeader:
    """libqb's request header; the padding is kept because senders leave garbage in it."""

    id: int
    size: int
    pad0: bytes = bytes(4)
    pad1: bytes = bytes(4)

    @property
    def service(self) -> int:
        return self.id >> 16

    @property
    def function(self) -> int:
        return self.id & 0xFFFF

    @classmethod
    def for_function(cls, service: int, function: int, size: int) -> "ServiceHeader":
        return cls(service << 16 | function, size)

    def pack(self, byteorder: str = "<") -> bytes:
        return _S[byteorder].header.pack(self.id, self.pad0, self.size, self.pad1)


@dataclass(frozen=True, slots=True)
class Barrier:
    """Sync BARRIER: the sender finished its part of the current service for ``ring_id``."""

    ring_id: RingId
    header: ServiceHeader = ServiceHeader(SyncMessageId.BARRIER, 32)

    def pack(self, byteorder: str = "<") -> bytes:
        h = self.header
        return _S[byteorder].barrier.pack(h.id, h.pad0, h.size, h.pad1, *self.ring_id)


@dataclass(frozen=True, slots=True)
class ServiceBuild:
    """Sync SERVICE_BUILD: the sender's sync-capable services for ``ring_id``."""

    ring_id: RingId
    services: tuple[int, ...]
    header: ServiceHeader = ServiceHeader(SyncMessageId.SERVICE_BUILD, 552)
    unused: tuple[int, ...] = ()
    """Values in the unused slots of the 128-entry list (zero from corosync)."""

    def pack(self, byteorder: str = "<") -> bytes:
        if len(self.services) > SERVICE_LIST_MAX:
            raise ValueError("at most 128 services")
        h = self.header
        slots = list(self.services) + list(self.unused)
        slots += [0] * (SERVICE_LIST_MAX - len(slots))
        return _S[byteorder].service_build.pack(
            h.id, h.pad0, h.size, h.pad1, *self.ring_id, len(self.services), *slots
        )


class _Structs:
    def __init__(self, order: str) -> None:
        lay = layouts(order)
        header = flat_format(lay.service_header)
        assert header.names == ("id", "pad0", "size", "pad1"), header.names
        barrier = flat_format(lay.sync_barrier)
        assert barrier.names == tuple(f"header.{n}" for n in header.names) + ("ring_id.rep", "ring_id.seq")
        build = flat_format(lay.sync_service_build)
        assert build.names[:7] == barrier.names + ("service_list_entries",), build.names[:7]
        assert len(build.names) == 7 + SERVICE_LIST_MAX
        self.header = struct.Struct(header.fmt)
        self.barrier = struct.Struct(barrier.fmt)
        self.service_build = struct.Struct(build.fmt)


_S = {"<": _Structs("<"), ">": _Structs(">")}


def parse_service_header_untrusted(body: bytes, byteorder: str = "<") -> ServiceHeader:
    """Decode the 16-byte header at the start of a service message."""
    if len(body) < SERVICE_HEADER_SIZE:
        raise WireError(f"service message of {len(body)} bytes is shorter than its 16-byte header", 0)
    id_, pad0, size, pad1 = _S[byteorder].header.unpack_from(body)
    return ServiceHeader(id_, size, pad0, pad1)


def parse_sync_untrusted(body: bytes, byteorder: str = "<") -> Barrier | ServiceBuild:
    """Decode a message of group ``sync``."""
    header = parse_service_header_untrusted(body, byteorder)
    s = _S[byteorder]
    if header.id == SyncMessageId.BARRIER:
        if len(body) < s.barrier.size:
            raise WireError(f"sync BARRIER needs {s.barrier.size} bytes, has {len(body)}", len(body))
        _, _, _, _, rep, seq = s.barrier.unpack_from(body)
        return Barrier(RingId(rep, seq), header)
    if header.id == SyncMessageId.SERVICE_BUILD:
        if len(body) < s.service_build.size:
            raise WireError(f"sync SERVICE_BUILD needs {s.service_build.size} bytes, has {len(body)}", len(body))
        vals = s.service_build.unpack_from(body)
        n = vals[6]
        if not 0 <= n <= SERVICE_LIST_MAX:
            raise WireError(f"SERVICE_BUILD lists {n} services (0..128 allowed)", 32)
        slots = vals[7:]
        unused = slots[n:]
        while unused and unused[-1] == 0:
            unused = unused[:-1]
        return ServiceBuild(RingId(vals[4], vals[5]), tuple(slots[:n]), header, tuple(unused))
    raise WireError(f"unknown sync message id {header.id}", 0)
