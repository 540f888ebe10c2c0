"""/etc/ha.d/haresources, read only to tell the user what to re-create in Pacemaker.

Heartbeat v1 (``crm`` off) started the resources of each line on the node it names
first: ``NODE RESOURCE...``, a resource being a script name with ``::``-separated
arguments (``IPaddr::10.0.0.10/24/eth0``, ``Filesystem::/dev/drbd0::/data::ext4``) or
a bare IP address (short for IPaddr). A line ending in a backslash continues on the
next. pytotem does not translate these into Pacemaker resources; this module only lists
them, with the Pacemaker resource agent that usually replaces each script.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

AGENTS = {
    "ipaddr": "ocf:heartbeat:IPaddr2",
    "ipaddr2": "ocf:heartbeat:IPaddr2",
    "ipsrcaddr": "ocf:heartbeat:IPsrcaddr",
    "filesystem": "ocf:heartbeat:Filesystem",
    "drbddisk": "ocf:linbit:drbd (a promotable clone)",
    "mailto": "ocf:heartbeat:MailTo",
    "sendarp": "ocf:heartbeat:SendArp",
    "lvm": "ocf:heartbeat:LVM-activate",
    "raid1": "ocf:heartbeat:mdraid",
    "apache": "ocf:heartbeat:apache (or systemd:apache2)",
}
"""Heartbeat resource scripts and the Pacemaker agent that usually takes their place."""


@dataclass(frozen=True)
class ResourceGroup:
    """One haresources entry: the preferred node and its resources, in start order."""

    node: str
    resources: tuple[str, ...]
    line: int


def parse_haresources(text: str) -> list[ResourceGroup]:
    """The entries of haresources ``text`` (comments and blank lines skipped)."""
    groups: list[ResourceGroup] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not pending:
            stripped = line.lstrip(" \t\f")
            if not stripped or stripped.startswith("#"):
                continue
            start = number
        cont = line.rstrip().endswith("\\")
        pending.append(line.rstrip().rstrip("\\") if cont else line)
        if cont:
            continue
        words = " ".join(pending).split()
        pending = []
        if words:
            groups.append(ResourceGroup(words[0], tuple(words[1:]), start))
    if pending:
        words = " ".join(pending).split()
        if words:
            groups.append(ResourceGroup(words[0], tuple(words[1:]), start))
    return groups


def agent_hint(resource: str) -> str:
    """The Pacemaker agent that usually replaces ``resource`` (a haresources word)."""
    script = resource.split("::", 1)[0]
    try:
        ipaddress.ip_address(script.split("/", 1)[0])
        return "ocf:heartbeat:IPaddr2"
    except ValueError:
        pass
    return AGENTS.get(script.lower(), f"the init script as lsb:{script} or systemd:{script}, "
                                      "or an OCF agent that manages the same service")
