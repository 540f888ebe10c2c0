"""CPG for Python: totally ordered group messaging with virtual synchrony, from
totemd or corosync (see :mod:`cpg.client`)."""

from .client import (
    Client,
    ConnectionClosed,
    CpgError,
    DaemonUnavailable,
    Event,
    Group,
    MembershipChange,
    Message,
    RingChange,
    connect,
)

__all__ = ["Client", "ConnectionClosed", "CpgError", "DaemonUnavailable", "Event", "Group",
           "MembershipChange", "Message", "RingChange", "connect"]
