"""Byte layouts of the service ("exec") messages, defined once with construct.

The companion of :mod:`totem.wire.layout` for the messages on group ``a``: cmap,
cfg, CPG and votequorum (spec services-wire.md §3.2, §4.1, §5.1, §5.2). The codecs in the
service modules derive their ``struct`` formats from these definitions with
:func:`~totem.wire.layout.flat_format` and assert the field order, so the two
cannot drift apart.

The exec structs of cmap and CPG put almost every member on an 8-byte boundary
(spec §1.7): a 4-byte integer is followed by 4 bytes of padding. Where captures
show that senders leave garbage in such padding, the layout names it (``pad*``,
``Bytes``) instead of using ``Padding``, so that a parse keeps it and a test can
reproduce a captured message exactly. votequorum's structs are packed.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

from construct import (
    Array,
    Bytes,
    Construct,
    Int8ub,
    Int8ul,
    Int16ub,
    Int16ul,
    Int32sb,
    Int32sl,
    Int32ub,
    Int32ul,
    Int64ub,
    Int64ul,
    Padding,
    Struct,
)

from ..wire.layout import layouts as wire_layouts

CPG_NAME_MAX = 128
"""Bytes of a CPG group name buffer (``CPG_MAX_NAME_LENGTH``)."""
CMAP_KEY_MAX = 256
"""Bytes of a cmap key name buffer (``CS_MAX_NAME_LENGTH``)."""
PROCESSOR_COUNT_MAX = 384
"""Entries of the CPG downlist's nodeid array."""
QDEVICE_NAME_MAX = 255


@functools.cache
def layouts(byteorder: str = "<") -> SimpleNamespace:
    """Every service message structure for one byte order."""
    little = byteorder == "<"
    t = SimpleNamespace(
        u8=Int8ul if little else Int8ub,
        u16=Int16ul if little else Int16ub,
        u32=Int32ul if little else Int32ub,
        i32=Int32sl if little else Int32sb,
        u64=Int64ul if little else Int64ub,
    )

    service_header = wire_layouts(byteorder).service_header
    # libqb's response header: the request header plus an error code, 8-aligned
    response_header = Struct(
        "id" / t.i32,
        "pad0" / Bytes(4),
        "size" / t.i32,
        "pad1" / Bytes(4),
        "error" / t.i32,
        "pad2" / Bytes(4),
    )

    # -- cmap (service 0), spec §5.1 ------------------------------------------------
    cmap_mcast = Struct(
        "header" / service_header,
        "reason" / t.u8,
        Padding(7),
        "no_items" / t.u8,
        Padding(7),
        "reserved1" / t.u8,
        Padding(7),
        "reserved2" / t.u8,
        Padding(7),
    )
    cmap_mcast_item = Struct(
        "key_name_length" / t.u16,
        Padding(6),
        "key_name_value" / Bytes(CMAP_KEY_MAX),
        "value_type" / t.u8,
        Padding(7),
        "value_len" / t.u64,
    )
    """An item's fixed part; ``value_len`` bytes of value follow, then padding to 8."""

    # -- CPG (service 2), spec §3.2 -------------------------------------------------
    cpg_name = Struct(
        "length" / t.u32,
        "pad" / Bytes(4),
        "value" / Bytes(CPG_NAME_MAX),
    )
    cpg_procjoin = Struct(
        "header" / service_header,
        "group_name" / cpg_name,
        "pid" / t.u32,
        "pad0" / Bytes(4),
        "reason" / t.u32,
        "pad1" / Bytes(4),
    )
    """PROCJOIN and PROCLEAVE share this layout."""
    cpg_joinlist_entry = Struct(
        "pid" / t.u32,
        "pad" / Bytes(4),
        "group_name" / cpg_name,
    )
    cpg_joinlist_fixed = response_header
    """JOINLIST: the response header, then entries up to ``size``."""
    message_source = Struct(
        "nodeid" / t.u32,
        "pad" / Bytes(4),
        "conn" / t.u64,
    )
    cpg_mcast_fixed = Struct(
        "header" / service_header,
        "group_name" / cpg_name,
        "msglen" / t.u32,
        "pad0" / Bytes(4),
        "pid" / t.u32,
        "pad1" / Bytes(4),
        "source" / message_source,
    )
    cpg_partial_mcast_fixed = Struct(
        "header" / service_header,
        "group_name" / cpg_name,
        "msglen" / t.u32,
        "pad0" / Bytes(4),
        "fraglen" / t.u32,
        "pad1" / Bytes(4),
        "pid" / t.u32,
        "pad2" / Bytes(4),
        "type" / t.u32,
        "pad3" / Bytes(4),
        "source" / message_source,
    )
    cpg_downlist = Struct(
        "header" / service_header,
        "old_members" / t.u32,
        "pad0" / Bytes(4),
        "left_nodes" / t.u32,
        "pad1" / Bytes(4),
        "nodeids" / Array(PROCESSOR_COUNT_MAX, t.u32),
    )
    cpg_downlist_old = Struct(
        "header" / service_header,
        "left_nodes" / t.u32,
        "pad0" / Bytes(4),
        "nodeids" / Array(PROCESSOR_COUNT_MAX, t.u32),
    )

    # -- votequorum (service 5), spec §4.1: packed after the header -------------------
    votequorum_nodeinfo = Struct(
        "header" / service_header,
        "nodeid" / t.u32,
        "votes" / t.u32,
        "expected_votes" / t.u32,
        "flags" / t.u32,
    )
    votequorum_reconfigure = Struct(
        "header" / service_header,
        "nodeid" / t.u32,
        "value" / t.u32,
        "param" / t.u8,
        "pad0" / Bytes(3),
        "tail" / Bytes(4),
    )

    # -- votequorum quorum-device messages, spec §4.1 (packed; names are C strings) -----
    votequorum_qdevice_reg = Struct(
        "header" / service_header,
        "operation" / t.u32,
        "name" / Bytes(QDEVICE_NAME_MAX),
        "tail" / Bytes(5),
    )
    """QDEVICE_REG (280 bytes): operation 1 register, 0 unregister."""
    votequorum_qdevice_reconfigure = Struct(
        "header" / service_header,
        "oldname" / Bytes(QDEVICE_NAME_MAX),
        "newname" / Bytes(QDEVICE_NAME_MAX),
        "tail" / Bytes(2),
    )
    """QDEVICE_RECONFIGURE (528 bytes): a device renamed from ``oldname`` to ``newname``."""

    # -- cfg (service 1), spec §5.2: 8-aligned like cmap; pads kept (captures show garbage) --
    cfg_name = Struct(
        "length" / t.u16,
        "pad" / Bytes(6),
        "value" / Bytes(CMAP_KEY_MAX),
    )
    """``mar_name_t`` as cfg's KILLNODE carries the reason (264 bytes)."""
    cfg_ringreenable = Struct(
        "header" / service_header,
        "source" / message_source,
    )
    cfg_killnode = Struct(
        "header" / service_header,
        "nodeid" / t.u32,
        "pad0" / Bytes(4),
        "reason" / cfg_name,
    )
    cfg_shutdown = Struct(
        "header" / service_header,
    )
    cfg_reload_config = Struct(
        "header" / service_header,
        "source" / message_source,
    )
    """``source.conn`` is the sender's handle of the requesting client connection."""
    cfg_crypto_reconfig = Struct(
        "header" / service_header,
        "phase" / t.u32,
        "pad0" / Bytes(4),
    )

    return SimpleNamespace(**{k: v for k, v in locals().items() if isinstance(v, Construct)})
