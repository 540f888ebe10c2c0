"""Addresses, generated nodeids and the search for the local node, as corosync 3.1.7's
totemconfig.c and totemip.c do them."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable, Sequence

from .host import Resolver

IP_VERSIONS = ("ipv4", "ipv6", "ipv6-4", "ipv4-6")


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def resolve_address(value: str, ip_version: str, resolver: Resolver) -> str | None:
    """The address corosync's totemip_parse picks for ``value`` (an address or a host
    name), or None where it fails.

    ipv4/ipv6 take only that family; ipv6-4 prefers the first IPv6 address and
    falls back to the first IPv4 one, ipv4-6 the other way round.
    """
    literal = _ip(value)
    candidates = [value] if literal is not None else list(resolver(value))
    v4 = [a for a in candidates if (ip := _ip(a)) is not None and ip.version == 4]
    v6 = [a for a in candidates if (ip := _ip(a)) is not None and ip.version == 6]
    order = {"ipv4": (v4,), "ipv6": (v6,), "ipv6-4": (v6, v4), "ipv4-6": (v4, v6)}[ip_version]
    for family in order:
        if family:
            return family[0]
    return None


def generate_nodeid(value: str, resolver: Resolver, clear_node_high_bit: bool) -> int | None:
    """corosync's nodeid for a node without one: its IPv4 address as a big-endian
    number (bit 31 cleared with clear_node_high_bit); None without an IPv4 address."""
    addr = resolve_address(value, "ipv4", resolver)
    if addr is None:
        return None
    nodeid = int(ipaddress.IPv4Address(addr))
    return nodeid & 0x7FFF_FFFF if clear_node_high_bit else nodeid


def same_address(a: str, b: str) -> bool:
    """Equal addresses (the address bytes only, as corosync's ipaddr_equal)."""
    x, y = _ip(a), _ip(b)
    return x is not None and y is not None and x == y


@dataclass(frozen=True)
class Candidate:
    """What local-node detection looks at in one node: its position, name and ring0_addr."""

    pos: int
    name: str | None
    ring0_addr: str | None

    def strings(self) -> list[str]:
        """``name`` then ``ring0_addr``: the order of their cmap keys."""
        return [s for s in (self.name, self.ring0_addr) if s is not None]


def find_local_node(nodes: Sequence[Candidate], hostname: str,
                    addresses: Sequence[str] | Callable[[], Sequence[str]],
                    resolver: Resolver) -> int | None:
    """The position of this host's node, found as corosync 3.1.7's find_local_node
    finds it, or None.

    1. ``hostname`` equal to a node's name or ring0_addr;
    2. the host name shortened a domain label at a time (``a.b.c``, ``a.b``, ``a``);
    3. the short host name equal to a node's name (or ring0_addr) cut at its first dot;
    4. one of the host's IPv4 ``addresses`` written as a node's name or ring0_addr;
    5. a node's name or ring0_addr that resolves to one of the host's addresses.

    Nodes are tried in the order of their cmap keys (position 10 before 2), the name
    before the ring0_addr. ``addresses`` may be a callable, called only if steps 1-3
    fail. corosync also tries the reverse-DNS names of the interface addresses before
    step 4; that lookup is left out here.
    """
    ordered = sorted(nodes, key=lambda c: f"{c.pos}.")

    def by_name(find: str, strip_domain: bool) -> int | None:
        for c in ordered:
            for s in c.strings():
                if (s.split(".", 1)[0] if strip_domain else s) == find:
                    return c.pos
        return None

    found = by_name(hostname, False)
    if found is not None:
        return found
    short = hostname
    while "." in short:
        short = short.rsplit(".", 1)[0]
        found = by_name(short, False)
        if found is not None:
            return found
    found = by_name(short, True)
    if found is not None:
        return found

    local = list(addresses() if callable(addresses) else addresses)
    for addr in local:
        ip = _ip(addr)
        if ip is None or ip.version != 4:  # corosync's numeric lookup only works for IPv4
            continue
        found = by_name(str(ip), False)
        if found is not None:
            return found
    for c in ordered:
        for s in c.strings():
            for candidate in ([s] if _ip(s) is not None else resolver(s)):
                if any(same_address(candidate, a) for a in local):
                    return c.pos
    return None
