"""The Totem SRP: ordering and membership as pure code."""

from .config import SrpConfig
from .core import LogMessage, SrpCore
from .events import (
    Broadcast,
    ConfigurationChanged,
    ConfigurationKind,
    Datagram,
    Event,
    MessageDelivered,
    RingSeqStore,
    SendTo,
    State,
    StateChanged,
)

__all__ = [
    "Broadcast", "ConfigurationChanged", "ConfigurationKind", "Datagram", "Event", "LogMessage",
    "MessageDelivered", "RingSeqStore", "SendTo", "SrpConfig", "SrpCore", "State", "StateChanged",
]
