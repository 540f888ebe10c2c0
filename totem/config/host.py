"""Facts about this host that local-node detection needs: its name, its addresses,
and name resolution. The only part of the config package that looks outside the
text; tests pass these in instead (``hostname=``, ``addresses=``, ``resolver=``).
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import socket
import struct
import subprocess
from typing import Callable, Sequence

Resolver = Callable[[str], Sequence[str]]
"""host name -> its addresses as text, in getaddrinfo order (empty if it does not resolve)."""


def local_hostname() -> str:
    """The name corosync matches against the nodelist: uname's nodename."""
    return os.uname().nodename


def resolve(host: str) -> list[str]:
    """Every address of ``host`` (IPv4 and IPv6) in getaddrinfo order, without repeats."""
    try:
        infos = socket.getaddrinfo(host, None, socket.AF_UNSPEC, socket.SOCK_DGRAM,
                                   socket.IPPROTO_UDP)
    except (socket.gaierror, UnicodeError, ValueError):
        return []
    out: list[str] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and sockaddr[0] not in out:
            out.append(sockaddr[0])
    return out


def local_addresses() -> list[str]:
    """This host's interface addresses (IPv4 and IPv6), in interface order.

    Reads ``ip -o addr show`` (iproute2); without it, the IPv4 address of each
    interface (SIOCGIFADDR) and /proc/net/if_inet6.
    """
    try:
        out = subprocess.run(["ip", "-o", "addr", "show"], capture_output=True, text=True,
                             timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return _addresses_without_ip()
    return parse_ip_addr(out)


def parse_ip_addr(text: str) -> list[str]:
    """The addresses in ``ip -o addr show`` output
    (``2: eth0    inet 10.0.0.5/24 brd ... scope global eth0\\ ...``)."""
    out: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] not in ("inet", "inet6"):
            continue
        addr = fields[3].split("/", 1)[0]
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            continue
        if addr not in out:
            out.append(addr)
    return out


def _addresses_without_ip() -> list[str]:
    out: list[str] = []
    SIOCGIFADDR = 0x8915
    try:
        names = [name for _, name in socket.if_nameindex()]
    except OSError:
        names = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for name in names:
            try:
                res = fcntl.ioctl(s.fileno(), SIOCGIFADDR,
                                  struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue
            out.append(socket.inet_ntoa(res[20:24]))
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                hexaddr = line.split()[0]
                out.append(str(ipaddress.IPv6Address(bytes.fromhex(hexaddr))))
    except (OSError, ValueError, IndexError):
        pass
    return list(dict.fromkeys(out))
