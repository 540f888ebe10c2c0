"""Totem wire formats of corosync 3.x udpu: parse untrusted bytes, build exact bytes."""

from .errors import WireError
from .layout import Dialect, MessageType, layouts
from .pg import (
    ENVELOPE_A,
    ENVELOPE_SYNC,
    GROUP_A,
    GROUP_SYNC,
    Frame,
    group_envelope,
    parse_frame_untrusted,
    parse_groups_untrusted,
)
from .service import (
    Barrier,
    Service,
    ServiceBuild,
    ServiceHeader,
    parse_service_header_untrusted,
    parse_sync_untrusted,
)
from .srp import (
    MCAST_HEADER_SIZE,
    MembCommitToken,
    MembEntry,
    MembJoin,
    MembMergeDetect,
    Mcast,
    Message,
    OrfToken,
    RingId,
    RtrItem,
    TokenHoldCancel,
    parse_untrusted,
)

__all__ = [
    "Barrier", "Dialect", "ENVELOPE_A", "ENVELOPE_SYNC", "Frame", "GROUP_A", "GROUP_SYNC",
    "MCAST_HEADER_SIZE", "Mcast", "MembCommitToken", "MembEntry", "MembJoin", "MembMergeDetect",
    "Message", "MessageType", "OrfToken", "RingId", "RtrItem", "Service", "ServiceBuild",
    "ServiceHeader", "TokenHoldCancel", "WireError", "group_envelope", "layouts",
    "parse_frame_untrusted", "parse_groups_untrusted", "parse_service_header_untrusted",
    "parse_sync_untrusted", "parse_untrusted",
]
