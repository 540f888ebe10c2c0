"""cmap for Python: read and change the configuration and runtime database of
totemd or corosync (see :mod:`cmap.client`)."""

from totem.cmapdb import Value, ValueType
from totem.ipc.errors import DaemonUnavailable, ServiceError

from .client import Client, connect

__all__ = ["Client", "DaemonUnavailable", "ServiceError", "Value", "ValueType", "connect"]
