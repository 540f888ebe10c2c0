"""From a parsed ha.cf (and authkeys, haresources) to a corosync.conf for totemd and a report.

Pure: :func:`translate` takes the parsed files and the user's options and returns an
:class:`ImportResult` (the config text, one finding per directive, the node plan and
the next steps), or raises :class:`HeartbeatError`. Writing files and generating the
key are the command's business (``totemctl import-heartbeat``).

The mapping, and why:

- ``node`` names, in ha.cf order, become the nodelist with nodeids 1, 2, 3...; the
  same ha.cf node order always gives the same nodeids. ``name`` keeps the name
  Heartbeat used (lowercased, its ``uname -n``), so Pacemaker knows the nodes by the
  same names. Each node's ``ring0_addr`` is its address on the ucast network, found
  (in this order) from ``--address NAME=ADDR``, a ucast line naming the node, an EC2
  host name ``ip-A-B-C-D`` confirmed by a ucast line, the name's resolved address
  confirmed by a ucast line, the name's resolved address or EC2 form alone (the ha.cf
  of a node usually lists only its peers), and last by elimination (one node and one
  ucast address left). Nothing else is guessed: otherwise the import stops and asks
  for ``--address``.
- ``deadtime`` (how long a silent node lived on) becomes ``token`` + ``consensus``:
  corosync declares the token lost after ``token`` and agrees on the new membership
  within ``consensus`` (1.2 x token, corosync's ratio), so failover takes as long as
  before. With more than two nodes corosync adds (nodes - 2) x token_coefficient
  (650 ms) to ``token``; the written token leaves room for it.
- ``warntime`` becomes ``token_warning`` (per cent of the token); ``keepalive`` and
  ``initdead`` have no totem equivalent and are explained (initdead's role belongs to
  Pacemaker's dc-deadtime and, for two nodes, votequorum's wait_for_all).
- ``udpport`` (or Heartbeat's 694) becomes ``mcastport``, so the firewall rule stays.
- Two nodes give ``two_node: 1``.
- ``logfile``/``debugfile``/``logfacility``/``debug`` become ``logging {}``.
- authkeys gives ``crypto_cipher: aes256``, ``crypto_hash: sha256`` and ``keyfile``:
  Heartbeat signed (md5, sha1) or merely checksummed (crc) plaintext packets; pytotem
  authenticates and encrypts. The Heartbeat secret cannot be reused (a short shared
  word for HMAC; corosync's key file is at least 128 random bytes): a fresh key is used.
"""

from __future__ import annotations

import ipaddress
import re
import textwrap
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from ..config import ConfigError
from ..config import parse as parse_corosync_conf
from ..crypto.keyfile import DEFAULT_KEYFILE
from .authkeys import AuthKeys
from .haresources import ResourceGroup, agent_hint
from .hacf import HaCf, Line, NodeName, Setting, atoi, format_ms, parse_bool
from .problems import CARRIED, NOT_CARRIED, NOTE, REFUSED, Finding, HeartbeatError, Problem

Resolver = Callable[[str], Sequence[str]]
"""A host name to its addresses (empty when it does not resolve)."""

TOKEN_COEFFICIENT = 650
"""corosync's default token_coefficient (ms per node beyond two)."""
CONSENSUS_RATIO = 1.2
MIN_TOKEN = 126
"""The least token whose token_retransmit (token / 4.2) reaches corosync's 30 ms minimum."""
CIPHER, HASH = "aes256", "sha256"
PACEMAKER_DOC = "docs/pacemaker.md"
COROSYNC_FACILITIES = ("auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news",
                       "syslog", "user", "uucp", "local0", "local1", "local2", "local3", "local4",
                       "local5", "local6", "local7")
WIDTH = 78


@dataclass(frozen=True)
class NodePlan:
    """One nodelist entry and how its address was found."""

    nodeid: int
    name: str
    addr: str
    source: str
    line: int


@dataclass(frozen=True)
class Timers:
    """The totem timers that stand for Heartbeat's deadtime."""

    deadtime: int
    effective_token: int
    """The token corosync runs with (after token_coefficient)."""
    token: int
    """The token to write."""
    consensus: int
    token_coefficient: int | None
    """Written only when corosync's default cannot be kept (None: default 650)."""


@dataclass
class ImportResult:
    """The corosync.conf text and everything the user should read about it."""

    config: str
    findings: list[Finding]
    nodes: list[NodePlan]
    timers: Timers
    crypto: tuple[str, str] | None
    keyfile: str | None
    hacf: HaCf
    authkeys: AuthKeys | None = None
    haresources: list[ResourceGroup] = field(default_factory=list)
    haresources_file: str | None = None
    sources: list[str] = field(default_factory=list)

    def findings_of(self, kind: str) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]


# --- timers ---------------------------------------------------------------------------

def plan_timers(deadtime: int, nodes: int) -> Timers:
    """token + consensus = deadtime, consensus = 1.2 x the token corosync runs with."""
    eff = deadtime * 10 // 22
    consensus = deadtime - eff
    coefficient: int | None = None
    token = eff
    if nodes > 2:
        base = eff - (nodes - 2) * TOKEN_COEFFICIENT
        if base >= max(eff // 2, MIN_TOKEN):
            token = base
        else:
            coefficient = 0
    return Timers(deadtime, eff, token, consensus, coefficient)


# --- addresses ------------------------------------------------------------------------

def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None


def _usable(addrs: Sequence[str]) -> list[str]:
    """Resolved addresses a cluster can use: no loopback (Debian maps its own host name
    to 127.0.1.1), IPv4 first, no duplicates."""
    out: list[str] = []
    for a in addrs:
        ip = _ip(a)
        if ip is None or ip.is_loopback or ip.is_unspecified or str(ip) in out:
            continue
        out.append(str(ip))
    return sorted(out, key=lambda a: ":" in a)


EC2_NAME = re.compile(r"ip-(\d{1,3})-(\d{1,3})-(\d{1,3})-(\d{1,3})(?:\..*)?\Z")


def ec2_address(name: str) -> str | None:
    """The address in an EC2 private host name (``ip-10-0-1-11[.ec2.internal]``)."""
    m = EC2_NAME.match(name)
    if m is None or any(int(g) > 255 for g in m.groups()):
        return None
    return ".".join(str(int(g)) for g in m.groups())


@dataclass
class _Target:
    """One ucast destination."""

    written: str
    line: Line
    addr: str | None = None
    resolved: bool = False
    used_by: str | None = None


class _Addresses:
    def __init__(self, cf: HaCf, nodes: list[NodeName], explicit: Mapping[str, str],
                 resolver: Resolver | None, problems: list[Problem]) -> None:
        self.cf, self.nodes, self.resolver, self.problems = cf, nodes, resolver, problems
        self.explicit = {k.lower(): v for k, v in explicit.items()}
        self.targets = [_Target(m.args[1], m.line) for m in cf.media if m.kind in ("ucast", "ucast6")]
        self.assigned: dict[str, tuple[str, str]] = {}
        self._resolved: dict[str, list[str]] = {}

    def resolve(self, name: str) -> list[str]:
        if self.resolver is None:
            return []
        if name not in self._resolved:
            try:
                self._resolved[name] = _usable(list(self.resolver(name)))
            except (OSError, UnicodeError, ValueError):
                self._resolved[name] = []
        return self._resolved[name]

    def target_addr(self, t: _Target) -> str | None:
        if not t.resolved:
            ip = _ip(t.written)
            t.addr = str(ip) if ip is not None else next(iter(self.resolve(t.written)), None)
            t.resolved = True
        return t.addr

    def take(self, node: NodeName, addr: str, source: str) -> None:
        self.assigned[node.name] = (addr, source)
        for t in self.targets:
            if t.used_by is None and self.target_addr(t) == addr:
                t.used_by = node.name

    def run(self) -> None:
        names = {n.name for n in self.nodes}
        for name, addr in self.explicit.items():
            if name not in names:
                self.problems.append(Problem(self.cf.file, None, f"--address {name}={addr}: "
                                             f"expected the name of a node of ha.cf ("
                                             f"{', '.join(n.name for n in self.nodes)})"))
            elif _ip(addr) is None:
                self.problems.append(Problem(self.cf.file, None, f"--address {name}={addr}: "
                                             "expected an IP address"))
        todo = [n for n in self.nodes if n.name not in self.assigned]
        for n in todo:
            addr = self.explicit.get(n.name)
            if addr is not None and _ip(addr) is not None:
                self.take(n, str(_ip(addr)), "given with --address")
        self._pass(self._by_ucast_name)
        self._pass(self._by_ec2_confirmed)
        self._pass(self._by_resolution_confirmed)
        self._pass(self._by_name_alone)
        self._by_elimination()
        missing = [n for n in self.nodes if n.name not in self.assigned]
        if missing:
            seen_lines: set[int] = set()
            for m in self.cf.media:
                if m.kind in REFUSED_REASONS and m.line.number not in seen_lines:
                    seen_lines.add(m.line.number)
                    self.problems.append(Problem(self.cf.file, m.line.number, (
                        f"{m.line.text}: refused: {REFUSED_REASONS[m.kind]}")))
            left = [t.written for t in self.targets if t.used_by is None]
            have = (f"ucast addresses not matched to a node: {', '.join(left)}" if left else
                    "no ucast address is left to match")
            for n in missing:
                self.problems.append(Problem(self.cf.file, n.line.number, (
                    f"node {n.name}: cannot tell its address ({have}; the name does not "
                    f"resolve to one); give it with --address {n.name}=ADDR")))
        self._check_unique()

    def _pass(self, step: Callable[[NodeName], tuple[str, str] | None]) -> None:
        for n in self.nodes:
            if n.name not in self.assigned:
                got = step(n)
                if got is not None:
                    self.take(n, *got)

    def _free(self) -> list[_Target]:
        return [t for t in self.targets if t.used_by is None]

    def _by_ucast_name(self, n: NodeName) -> tuple[str, str] | None:
        for t in self._free():
            addr = self.target_addr(t) if t.written.lower() == n.name else None
            if addr is not None:  # a name this host cannot resolve would not work for totemd
                return addr, f"ucast line {t.line.number} sends to the node by name"
        return None

    def _by_ec2_confirmed(self, n: NodeName) -> tuple[str, str] | None:
        addr = ec2_address(n.name)
        if addr is None:
            return None
        for t in self._free():
            if self.target_addr(t) == addr:
                return addr, f"its EC2 host name, and ucast line {t.line.number} sends to it"
        return None

    def _by_resolution_confirmed(self, n: NodeName) -> tuple[str, str] | None:
        addrs = self.resolve(n.name)
        for t in self._free():
            if self.target_addr(t) in addrs:
                return self.target_addr(t), (f"the name resolves to it, and ucast line "
                                             f"{t.line.number} sends to it")
        return None

    def _by_name_alone(self, n: NodeName) -> tuple[str, str] | None:
        taken = {a for a, _ in self.assigned.values()}
        for addr in self.resolve(n.name):
            if addr not in taken:
                return addr, ("the name resolves to it (no ucast line sends to it: the ha.cf "
                              "of a node lists its peers)")
        addr = ec2_address(n.name)
        if addr is not None and addr not in taken:
            return addr, ("its EC2 host name (no ucast line sends to it: the ha.cf of a node "
                          "lists its peers)")
        return None

    def _by_elimination(self) -> None:
        missing = [n for n in self.nodes if n.name not in self.assigned]
        free = [t for t in self._free() if self.target_addr(t)]
        distinct = {self.target_addr(t) for t in free}
        if len(missing) == 1 and len(distinct) == 1:
            t = free[0]
            self.take(missing[0], self.target_addr(t),
                      f"by elimination: the only ucast address (line {t.line.number}) "
                      "not matched to another node")

    def _check_unique(self) -> None:
        seen: dict[str, str] = {}
        families: set[int] = set()
        for n in self.nodes:
            if n.name not in self.assigned:
                continue
            addr = self.assigned[n.name][0]
            if addr in seen:
                self.problems.append(Problem(self.cf.file, n.line.number, (
                    f"node {n.name}: its address {addr} is also node {seen[addr]}'s; expected "
                    f"one address per node (use --address {n.name}=ADDR)")))
            seen[addr] = n.name
            ip = _ip(addr)
            if ip is not None:
                families.add(ip.version)
        if len(families) > 1:
            self.problems.append(Problem(self.cf.file, None, "the nodes' addresses mix IPv4 and "
                                         "IPv6; corosync needs one family on a link"))


# --- the corosync.conf text -------------------------------------------------------------

class _Conf:
    """corosync.conf lines: tabs for depth, comments wrapped, no trailing comments."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.depth = 0

    def comment(self, text: str) -> None:
        indent = "\t" * self.depth
        for para in text.split("\n"):
            wrapped = wrap(para, WIDTH - 8 * self.depth - 2) or [""]
            self.lines.extend(f"{indent}# {w}".rstrip() for w in wrapped)

    def open(self, name: str) -> None:
        self.lines.append("\t" * self.depth + name + " {")
        self.depth += 1

    def close(self) -> None:
        self.depth -= 1
        self.lines.append("\t" * self.depth + "}")

    def kv(self, key: str, value: object) -> None:
        self.lines.append("\t" * self.depth + f"{key}: {value}")

    def blank(self) -> None:
        self.lines.append("")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


_UNIT = re.compile(r"(\d) (s|ms|%)(?![\w])")
NBSP = "\u00a0"


def wrap(text: str, width: int, **kwargs: str) -> list[str]:
    """textwrap.wrap that keeps a number with its unit (``30 s``, ``73 %``) on one line."""
    lines = textwrap.wrap(_UNIT.sub(lambda m: m.group(1) + NBSP + m.group(2), text), width,
                          break_long_words=False, break_on_hyphens=False, **kwargs)
    return [w.replace(NBSP, " ") for w in lines]


def _unwritable(value: str) -> bool:
    """corosync.conf has no quoting: a brace would open or close a section."""
    return any(c in value for c in "{}\n\r")


# --- the translation ------------------------------------------------------------------

NOT_CARRIED_REASONS: dict[str, str] = {
    "hopfudge": "Heartbeat's limit on forwarded heartbeats; the token ring forwards nothing",
    "watchdog": "totemd drives no watchdog device; with Pacemaker, sbd gives watchdog-based "
                "self-fencing",
    "baud": "the speed of serial heartbeat links; totemd speaks UDP only",
    "deadping": "the dead time of ping nodes, which are not carried (Pacemaker's "
                "ocf:pacemaker:ping agent has its own timeouts)",
    "rtprio": "Heartbeat's realtime priority; totemd's scheduling is system { sched_rr, "
              "priority } in corosync.conf, left at its defaults",
    "realtime": "Heartbeat's realtime scheduling; totemd's scheduling is system { sched_rr, "
                "priority } in corosync.conf, left at its defaults",
    "hbgenmethod": "Heartbeat's generation numbers; corosync tracks rings by ring id (kept in "
                   "system.state_dir)",
    "uuidfrom": "Heartbeat's node UUIDs; corosync knows nodes by nodeid",
    "normalpoll": "Heartbeat's event loop; nothing to carry",
    "msgfmt": "Heartbeat's wire format; totemd speaks corosync's",
    "compression": "Heartbeat compressed large messages; totem fragments them instead",
    "compression_threshold": "Heartbeat compressed large messages; totem fragments them instead",
    "traditional_compression": "Heartbeat compressed large messages; totem fragments them "
                               "instead",
    "use_logd": "ha_logd is not used: totemd logs where logging {} says",
    "conn_logd_time": "ha_logd is not used: totemd logs where logging {} says",
    "use_apphbd": "apphbd is not used",
    "log_badpack": "totemd counts malformed packets (totemctl status) and logs them",
    "syslogmsgfmt": "corosync's log file format is fixed",
    "coredumps": "core dumps are the system's concern (ulimit, systemd-coredump)",
    "coreroot": "core dumps are the system's concern (ulimit, systemd-coredump)",
    "crm_daemon_dir": "where Heartbeat found Pacemaker's daemons; pacemakerd starts them itself",
    "crmd_spawns_pengine": "how Heartbeat started Pacemaker's daemons; pacemakerd starts them "
                           "itself",
    "env": "environment for processes Heartbeat respawned; respawn is not carried",
    "max_rexmit_delay": "Heartbeat's retransmission pacing; totem retransmits by its own rules",
    "record_config_changes": "a Pacemaker setting Heartbeat passed on; set Pacemaker's own "
                             "options if you relied on it",
    "record_pengine_inputs": "a Pacemaker setting Heartbeat passed on; Pacemaker's "
                             "pe-input-series-max options keep scheduler inputs now",
    "enable_config_writes": "a Pacemaker setting Heartbeat passed on; Pacemaker always "
                            "writes its CIB now",
    "memreserve": "memory Heartbeat preallocated; nothing to carry",
    "quorum_server": "Heartbeat's quorumd; corosync's counterpart is corosync-qdevice with a "
                     "corosync-qnetd server, which this import does not set up",
    "stonith": "fencing is configured in Pacemaker as stonith resources (cluster-glue's "
               "plugins as stonith:external/..., or a fence-agents agent)",
    "stonith_host": "fencing is configured in Pacemaker as stonith resources (cluster-glue's "
                    "plugins as stonith:external/..., or a fence-agents agent)",
    "apiauth": "Heartbeat's API permissions; Pacemaker's daemons get IPC access from "
               "pacemakerd (it grants the haclient group), other clients need a uidgid { uid: "
               "... gid: ... } entry",
    "ping": "ping nodes let ipfail/pingd follow connectivity; in Pacemaker use a cloned "
            "ocf:pacemaker:ping resource and a location rule on its attribute",
    "ping6": "ping nodes let ipfail/pingd follow connectivity; in Pacemaker use a cloned "
             "ocf:pacemaker:ping resource and a location rule on its attribute",
    "hbaping": "ping nodes let ipfail/pingd follow connectivity; in Pacemaker use a cloned "
               "ocf:pacemaker:ping resource and a location rule on its attribute",
    "ping_group": "ping nodes let ipfail/pingd follow connectivity; in Pacemaker use a cloned "
                  "ocf:pacemaker:ping resource and a location rule on its attribute",
}

HANDLED_ELSEWHERE = ("node", "ucast", "ucast6", "bcast", "udp", "mcast", "mcast6", "serial", "tipc",
                     "rds", "openais", "deadtime", "warntime", "keepalive", "initdead", "udpport",
                     "logfile", "debugfile", "logfacility", "debug", "cluster")
"""Directives whose lines get their finding where the config text is built."""

REFUSED_REASONS: dict[str, str] = {
    "bcast": "totemd speaks UDP unicast (udpu) only: no broadcast. Each node's address goes "
             "into the nodelist instead (from ucast lines, host names or --address)",
    "mcast": "totemd speaks UDP unicast (udpu) only: no multicast (the cloud networks it is "
             "made for have none). Each node's address goes into the nodelist instead",
    "mcast6": "totemd speaks UDP unicast (udpu) only: no multicast. Each node's address goes "
              "into the nodelist instead",
    "serial": "serial links are no totem transport; totemd speaks UDP unicast only",
    "tipc": "TIPC is no transport totemd speaks (UDP unicast only)",
    "rds": "RDS is no transport totemd speaks (UDP unicast only)",
    "openais": "the openais medium is no transport totemd speaks (UDP unicast only)",
}


def translate(cf: HaCf, authkeys: AuthKeys | None = None,
              haresources: list[ResourceGroup] | None = None, *,
              haresources_file: str = "haresources",
              addresses: Mapping[str, str] | None = None, resolver: Resolver | None = None,
              keyfile: str = DEFAULT_KEYFILE, cluster_name: str | None = None) -> ImportResult:
    """The corosync.conf for ``cf`` (crypto settings only with ``authkeys``) and the report.

    ``addresses`` maps node names to addresses (``--address``); ``resolver`` looks host
    names up (None: no lookups); ``keyfile`` is the key file the config names."""
    problems: list[Problem] = []
    findings: list[Finding] = list(cf.notes)
    nodes = _dedup_nodes(cf, findings)
    finder = _Addresses(cf, nodes, addresses or {}, resolver, problems)
    if nodes:
        finder.run()
    else:
        problems.append(Problem(cf.file, None, "no node directives; expected a 'node NAME' line "
                                "for every cluster node (corosync lists every node: autojoin "
                                "any cannot be carried)"))
    timers = plan_timers(cf.deadtime_ms, len(nodes))
    if timers.effective_token < MIN_TOKEN:
        problems.append(Problem(cf.file, _line(cf, "deadtime"), (
            f"deadtime: expected at least {format_ms(_min_deadtime())}, got "
            f"{format_ms(cf.deadtime_ms)} (it gives a token of {timers.effective_token} ms; "
            f"corosync needs token >= {MIN_TOKEN} ms so that token_retransmit reaches 30 ms)")))
    name = cluster_name or (cf.last("cluster").value if cf.last("cluster") else None) or "linux-ha"
    for label, value in (("cluster name", name),) + tuple(
            (f"node name {n.name}", n.name) for n in nodes):
        if _unwritable(value):
            problems.append(Problem(cf.file, None, f"{label} '{value}': expected no braces (a "
                                    "corosync.conf value cannot hold them)"))
    if problems:
        raise HeartbeatError(problems)
    plans = [NodePlan(i, n.name, finder.assigned[n.name][0], finder.assigned[n.name][1],
                      n.line.number) for i, n in enumerate(nodes, start=1)]
    t = _Translation(cf, authkeys, haresources or [], haresources_file, plans, timers, name,
                     keyfile, finder, findings)
    text = t.render()
    try:
        parse_corosync_conf(text, "corosync.conf")
    except ConfigError as exc:  # a path or name too long for coroparse's 510-byte lines
        raise HeartbeatError([Problem(cf.file, None, f"the corosync.conf cannot be written: "
                                      f"{exc}")]) from None
    return ImportResult(
        config=text, findings=t.findings, nodes=plans, timers=timers,
        crypto=(CIPHER, HASH) if authkeys is not None else None,
        keyfile=keyfile if authkeys is not None else None, hacf=cf, authkeys=authkeys,
        haresources=haresources or [], haresources_file=haresources_file if haresources is not None
        else None, sources=[cf.file] + ([authkeys.file] if authkeys else []))


def _min_deadtime() -> int:
    d = MIN_TOKEN * 22 // 10
    while d * 10 // 22 < MIN_TOKEN:
        d += 1
    return d


def _line(cf: HaCf, name: str) -> int | None:
    s = cf.last(name)
    return None if s is None else s.line.number


def _dedup_nodes(cf: HaCf, findings: list[Finding]) -> list[NodeName]:
    out: list[NodeName] = []
    seen: dict[str, NodeName] = {}
    for n in cf.nodes:
        if n.name in seen:
            findings.append(Finding(cf.file, n.line.number, n.line.text, NOTE,
                                    f"node {n.name} is already declared on line "
                                    f"{seen[n.name].line.number}; listed once"))
            continue
        seen[n.name] = n
        out.append(n)
    return out


class _Translation:
    """Builds the text and the findings together, so that every comment has its finding."""

    def __init__(self, cf: HaCf, authkeys: AuthKeys | None, haresources: list[ResourceGroup],
                 haresources_file: str, plans: list[NodePlan], timers: Timers, cluster_name: str,
                 keyfile: str, finder: _Addresses, findings: list[Finding]) -> None:
        self.cf, self.authkeys, self.haresources = cf, authkeys, haresources
        self.haresources_file = haresources_file
        self.plans, self.timers, self.cluster_name, self.keyfile = plans, timers, cluster_name, keyfile
        self.finder = finder
        self.findings = findings
        self.c = _Conf()

    # -- findings

    def add(self, line: Line | None, kind: str, text: str, directive: str | None = None) -> None:
        self.findings.append(Finding(self.cf.file if line is None else line.file,
                                     None if line is None else line.number,
                                     directive if directive is not None else
                                     (line.text if line else ""), kind, text))

    def at(self, name: str) -> str:
        """``(ha.cf:N)`` for the line that set ``name``, or ``(default)``."""
        s = self.cf.last(name)
        return f"({_base(self.cf.file)}:{s.line.number})" if s else "(Heartbeat's default)"

    # -- the whole file

    def render(self) -> str:
        c = self.c
        srcs = " and ".join([self.cf.file] + ([self.authkeys.file] if self.authkeys else []))
        c.comment(f"corosync.conf for totemd (pytotem), imported from Heartbeat's {srcs} by "
                  "`totemctl import-heartbeat`. The same file goes to every node: each finds "
                  "its own entry in the nodelist by host name or address.")
        c.blank()
        c.open("totem")
        c.kv("version", 2)
        self.cluster()
        c.comment("Heartbeat sent its heartbeats by unicast (ucast); totemd speaks UDP "
                  "unicast (udpu) to every node of the nodelist.")
        c.kv("transport", "udpu")
        c.blank()
        self.timer_section()
        self.crypto()
        c.open("interface")
        c.kv("linknumber", 0)
        self.port()
        c.close()
        c.close()
        c.blank()
        self.nodelist()
        c.blank()
        self.quorum()
        c.blank()
        self.logging()
        self.other_lines()
        self.not_carried_summary()
        return c.text()

    def cluster(self) -> None:
        s = self.cf.last("cluster")
        if s is not None and s.value == self.cluster_name:
            self.c.comment(f"cluster {s.value} {self.at('cluster')}")
            self.add(s.line, CARRIED, f"totem.cluster_name: {s.value}")
        elif s is not None:
            self.c.comment(f"ha.cf says cluster {s.value}; --cluster-name overrides it.")
            self.add(s.line, NOTE, f"--cluster-name {self.cluster_name} used instead")
        else:
            self.c.comment("ha.cf has no cluster directive: Heartbeat's default name.")
        self.c.kv("cluster_name", self.cluster_name)

    def timer_section(self) -> None:
        c, cf, t = self.c, self.cf, self.timers
        n = len(self.plans)
        dead = cf.deadtime_ms
        c.comment(
            f"Failure detection. Heartbeat declared a node dead after deadtime "
            f"{format_ms(dead)} {self.at('deadtime')} without a heartbeat from it. corosync "
            f"declares the token lost after token ms, then agrees on the new membership "
            f"within consensus ms (corosync's ratio: 1.2 x token). token + consensus = "
            f"deadtime keeps the failover time: {t.effective_token} + {t.consensus} = {dead} ms.")
        if n > 2 and t.token_coefficient is None:
            c.comment(f"With {n} nodes corosync adds (nodes - 2) x token_coefficient "
                      f"({TOKEN_COEFFICIENT} ms) to token: {t.token} + {(n - 2) * TOKEN_COEFFICIENT}"
                      f" = {t.effective_token} ms.")
        elif t.token_coefficient is not None:
            c.comment(f"With {n} nodes corosync would add (nodes - 2) x {TOKEN_COEFFICIENT} ms "
                      f"to token, more than half of it: token_coefficient 0 keeps token as "
                      "written.")
        c.comment("corosync's own default is token 3000; lower both values for faster "
                  "failover if your network allows it.")
        c.kv("token", t.token)
        if t.token_coefficient is not None:
            c.kv("token_coefficient", t.token_coefficient)
        c.kv("consensus", t.consensus)
        s = cf.last("deadtime")
        text = (f"totem.token {t.token}, totem.consensus {t.consensus}: token + consensus = "
                f"{format_ms(dead)}")
        if s is not None:
            self.add(s.line, CARRIED, text)
        self.warntime()
        self.keepalive()
        self.initdead()
        c.blank()

    def warntime(self) -> None:
        """Absolute when it can be (a late token after the same time as a late heartbeat),
        else the same share of the way to failure (warntime / deadtime of the token)."""
        c, cf, t = self.c, self.cf, self.timers
        s = cf.last("warntime")
        if s is None:
            return
        warn, dead = cf.warntime_ms, cf.deadtime_ms
        pct = round(100 * warn / t.effective_token)
        if 1 <= pct < 100:
            c.comment(f"warntime {format_ms(warn)} {self.at('warntime')}: Heartbeat warned of a "
                      f"late heartbeat; corosync warns of a late token after token_warning per "
                      f"cent of token: {warn} / {t.effective_token} ms = {pct} %.")
            c.kv("token_warning", pct)
            self.add(s.line, CARRIED, f"totem.token_warning {pct} (% of token "
                     f"{t.effective_token} ms: a warning after {format_ms(warn)}, as before)")
            return
        share = round(100 * warn / dead)
        if 1 <= share < 100:
            c.comment(f"warntime {format_ms(warn)} {self.at('warntime')} is {share} % of "
                      f"deadtime. The token is declared lost sooner ({t.effective_token} ms), "
                      f"so corosync warns at the same share of the way: token_warning {share}.")
            c.kv("token_warning", share)
            self.add(s.line, CARRIED, f"totem.token_warning {share}: warntime is {share} % of "
                     f"deadtime; the token is lost after {t.effective_token} ms, so the "
                     f"warning comes at the same share of it "
                     f"({t.effective_token * share // 100} ms)")
            return
        c.comment(f"warntime {format_ms(warn)} {self.at('warntime')} is not below deadtime: "
                  "Heartbeat never warned before declaring a node dead; token_warning 0 "
                  "does the same.")
        c.kv("token_warning", 0)
        self.add(s.line, CARRIED, "totem.token_warning 0: warntime is not below deadtime, so "
                 "Heartbeat declared nodes dead without a warning first")

    def keepalive(self) -> None:
        c, cf, t = self.c, self.cf, self.timers
        keep = cf.keepalive_ms
        retransmit = int(t.effective_token / 4.2)
        text = (f"keepalive {format_ms(keep)}: Heartbeat sent a heartbeat every "
                f"{format_ms(keep)} and tolerated {cf.deadtime_ms // keep} missing ones; the totem "
                f"token circulates all the time and is retransmitted every token / 4.2 = "
                f"{retransmit} ms before it is declared lost: nothing to set")
        c.comment(f"keepalive {format_ms(keep)} {self.at('keepalive')} is not carried: the token "
                  f"circulates all the time and is retransmitted every token / 4.2 = "
                  f"{retransmit} ms before it is declared lost.")
        s = cf.last("keepalive")
        if s is not None:
            self.add(s.line, NOT_CARRIED, text)

    def initdead(self) -> None:
        c, cf = self.c, self.cf
        init = cf.initdead_ms
        s = cf.last("initdead")
        two = len(self.plans) == 2
        text = (f"initdead {format_ms(init)}: Heartbeat waited that long at start-up before "
                "declaring absent nodes dead. totem forms a ring with whoever answers; the "
                "wait belongs to Pacemaker now: its dc-deadtime cluster option ("
                f"crm_attribute --type crm_config --name dc-deadtime --update {init // 1000}s)"
                + ("; two_node also implies wait_for_all (quorum waits until both nodes were "
                   "seen once)" if two else ""))
        c.comment(f"initdead {format_ms(init)} {self.at('initdead')} is not carried: the start-up "
                  "wait is Pacemaker's dc-deadtime option now (see the import report).")
        if s is not None:
            self.add(s.line, NOT_CARRIED, text)

    def crypto(self) -> None:
        c, ak = self.c, self.authkeys
        if ak is None:
            c.comment("Imported without authkeys: no crypto. Anyone who can reach the port can "
                      "read and forge cluster traffic.")
            c.blank()
            return
        method = ak.method
        if method == "crc":
            before = ("authkeys used crc: a checksum anyone can compute, so Heartbeat's packets "
                      "had no authentication at all (and travelled in clear text).")
        else:
            before = (f"authkeys used {method}: Heartbeat signed each packet (HMAC-"
                      f"{method.upper()}) but sent it in clear text.")
        c.comment(f"{before} pytotem authenticates (HMAC-SHA256) and encrypts (AES-256) every "
                  "packet. Heartbeat's secret cannot be reused: it is a short shared word, "
                  "corosync's key file holds at least 128 random bytes; a fresh key file is "
                  "used, the same file on every node.")
        c.kv("crypto_cipher", CIPHER)
        c.kv("crypto_hash", HASH)
        c.kv("keyfile", self.keyfile)
        c.blank()
        key_words = (f"totem.crypto_cipher {CIPHER}, totem.crypto_hash {HASH}, keyfile "
                     f"{self.keyfile} (a fresh key)")
        self.findings.append(Finding(ak.file, ak.auth_line, f"auth {ak.active.num}", CARRIED,
                                     f"{before} Now: {key_words}."))
        for k in sorted(ak.keys.values(), key=lambda k: k.line):
            if k is ak.active and k.method == "crc":
                self.findings.append(Finding(ak.file, k.line, k.text, NOT_CARRIED,
                                             "crc takes no secret: nothing more to carry"))
            elif k is ak.active:
                self.findings.append(Finding(ak.file, k.line, k.text, NOT_CARRIED,
                                             "the secret itself: it is a short shared word for "
                                             "HMAC, while corosync's key file needs at least 128 "
                                             "random bytes; a fresh key replaces it"))
            else:
                self.findings.append(Finding(ak.file, k.line, k.text, NOT_CARRIED,
                                             f"key {k.num} is not the active one (auth "
                                             f"{ak.active.num}): a spare for Heartbeat's key "
                                             "rotation"))
        self.findings.extend(ak.notes)

    def port(self) -> None:
        c, cf = self.c, self.cf
        port = cf.udpport
        udp = cf.last("udpport")
        first_ucast = next((m for m in cf.media if m.kind in ("ucast", "ucast6")), None)
        if udp is not None and first_ucast is not None and atoi_eq(udp.value, port) is False:
            c.comment(f"udpport {udp.value} ({_base(cf.file)}:{udp.line.number}) came after the first "
                      f"ucast line ({first_ucast.line.number}), so Heartbeat's ucast used "
                      f"port {port}: the port that worked is kept.")
            self.add(udp.line, NOTE, f"Heartbeat read udpport when it parsed the first ucast "
                     f"line ({first_ucast.line.number}), before this line: its ucast used port "
                     f"{port}, which is kept as totem.interface.mcastport")
        elif udp is not None:
            c.comment(f"udpport {port} {self.at('udpport')}: the port your firewall already "
                      f"opens between the nodes (corosync's default would be 5405).")
        else:
            c.comment(f"Heartbeat's default port {port} (ha-cluster): the port your firewall "
                      "already opens between the nodes (corosync's default would be 5405).")
        c.kv("mcastport", port)
        for s in cf.settings.get("udpport", []):
            if s is udp and atoi_eq(udp.value, port) is not False:
                self.add(s.line, CARRIED, f"totem.interface.mcastport {port}")
            elif s is not udp:
                self.add(s.line, NOTE, f"udpport {s.value} was replaced by a later udpport line")

    def nodelist(self) -> None:
        c = self.c
        c.comment("Heartbeat's node directives, in ha.cf order, give the nodeids; name is the "
                  "node name Heartbeat (and Pacemaker) used, its uname -n.")
        c.open("nodelist")
        for p in self.plans:
            c.open("node")
            c.comment(f"{_base(self.cf.file)}:{p.line} node {p.name}; address: {p.source}")
            c.kv("nodeid", p.nodeid)
            c.kv("name", p.name)
            c.kv("ring0_addr", p.addr)
            c.close()
        c.close()
        by_line: dict[int, list[NodePlan]] = {}
        for p in self.plans:
            by_line.setdefault(p.line, []).append(p)
        written = {n.name: n.written for n in self.cf.nodes}
        for line in self.cf.lines:
            if line.directive == "node" and line.number in by_line:
                parts = []
                for p in by_line[line.number]:
                    low = "" if written.get(p.name) == p.name else " (lowercased, as Heartbeat does)"
                    parts.append(f"nodeid {p.nodeid} name {p.name}{low} ring0_addr {p.addr}")
                self.add(line, CARRIED, "nodelist: " + "; ".join(parts))
        self.media_findings()

    def media_findings(self) -> None:
        used: dict[int, list[_Target]] = {}
        for t in self.finder.targets:
            used.setdefault(t.line.number, []).append(t)
        for line in self.cf.lines:
            d = "bcast" if line.directive == "udp" else line.directive
            if d in ("ucast", "ucast6"):
                for t in used.get(line.number, []):
                    iface = line.values[0]
                    if t.used_by is not None:
                        self.add(line, CARRIED, f"{t.written} is node {t.used_by}'s ring0_addr "
                                 f"(the interface {iface} is not needed: totemd binds the local "
                                 "node's ring0_addr)")
                    else:
                        self.add(line, NOT_CARRIED, f"{t.written} is no node's address "
                                 "(matched to no node of ha.cf)")
            elif d in REFUSED_REASONS:
                self.add(line, REFUSED, REFUSED_REASONS[d])

    def quorum(self) -> None:
        c = self.c
        n = len(self.plans)
        c.open("quorum")
        c.kv("provider", "corosync_votequorum")
        if n == 2:
            c.comment("Two nodes: one keeps quorum when the other fails, as in a two-node "
                      "Heartbeat cluster. two_node implies wait_for_all: after the whole "
                      "cluster was down, both nodes must have been seen once before it is "
                      "quorate.")
            c.kv("two_node", 1)
        elif n > 2:
            c.comment(f"{n} nodes with a vote each: quorum is a majority, {n // 2 + 1} nodes.")
        c.close()

    def logging(self) -> None:
        c, cf = self.c, self.cf
        logfile, debugfile = cf.last("logfile"), cf.last("debugfile")
        facility, debug = cf.last("logfacility"), cf.last("debug")
        use_logd = cf.last("use_logd")
        logd = (use_logd is not None and parse_bool(use_logd.value)) or (
            logfile is None and debugfile is None and facility is None)
        c.open("logging")
        if logd:
            c.comment("Heartbeat logged through ha_logd (its destinations are in /etc/logd.cf); "
                      "totemd logs to syslog, corosync's default.")
            c.kv("to_syslog", "yes")
            if facility is not None:
                self.facility(facility)
        elif facility is not None:
            c.comment(f"logfacility {facility.value} {self.at('logfacility')}")
            c.kv("to_syslog", "yes")
            self.facility(facility)
        else:
            c.comment("ha.cf has no logfacility: Heartbeat did not log to syslog.")
            c.kv("to_syslog", "no")
        target = logfile or debugfile
        if target is not None:
            if logfile is not None:
                c.comment(f"logfile {logfile.value} {self.at('logfile')}")
            else:
                c.comment(f"debugfile {debugfile.value} {self.at('debugfile')}: corosync has one "
                          "log file (with debug messages when debug: on).")
            if _unwritable(target.value):
                raise HeartbeatError([Problem(cf.file, target.line.number, "log file path: "
                                              "expected no braces (corosync.conf cannot hold "
                                              "them)")])
            c.kv("to_logfile", "yes")
            c.kv("logfile", target.value)
            self.add(target.line, CARRIED, f"logging.to_logfile yes, logging.logfile {target.value}"
                     + ("" if logfile else " (corosync writes one log file)"))
        if logfile is not None and debugfile is not None:
            self.add(debugfile.line, NOT_CARRIED, f"corosync writes one log file ({logfile.value}); "
                     "debug messages go to it when logging.debug is on")
        if debug is not None:
            if atoi(debug.value) > 0:
                c.comment(f"debug {debug.value} {self.at('debug')}")
                c.kv("debug", "on")
                self.add(debug.line, CARRIED, "logging.debug on")
            else:
                self.add(debug.line, CARRIED, "logging.debug off (the default)")
        c.kv("timestamp", "on")
        c.close()

    def facility(self, s: Setting) -> None:
        value = {"security": "auth"}.get(s.value, s.value)
        if value in COROSYNC_FACILITIES:
            self.c.kv("syslog_facility", value)
            self.add(s.line, CARRIED, f"logging.to_syslog yes, logging.syslog_facility {value}")
        else:
            self.add(s.line, NOT_CARRIED, f"corosync knows no syslog facility '{s.value}': its "
                     "default, daemon, is used (logging.to_syslog yes)")

    def other_lines(self) -> None:
        """A finding for every line not reported yet; nothing is silently dropped."""
        cf = self.cf
        reported = {(f.file, f.line) for f in self.findings}
        pcmk = cf.pacemaker
        for line in cf.lines:
            d = line.directive
            if d in HANDLED_ELSEWHERE:
                if (line.file, line.number) not in reported:
                    self.add(line, NOTE, f"{d} is set again later in ha.cf; the last value counts"
                             if self._overridden(line) else "nothing to carry from this line")
                continue
            if d in ("crm", "pacemaker"):
                if pcmk is not None and pcmk.line is line and cf.pacemaker_on:
                    self.add(line, NOT_CARRIED, "Pacemaker ran on Heartbeat: after the switch, "
                             "start Pacemaker on totemd, which starts its own daemons "
                             f"({PACEMAKER_DOC})")
                else:
                    self.add(line, NOT_CARRIED, "Pacemaker was off: Heartbeat managed the "
                             "resources of haresources itself; re-create them as Pacemaker "
                             f"resources ({PACEMAKER_DOC})")
            elif d in ("auto_failback", "nice_failback"):
                if cf.pacemaker_on:
                    self.add(line, NOT_CARRIED, "Heartbeat ignores it with Pacemaker on: "
                             "placement and stickiness live in the CIB")
                else:
                    self.add(line, NOT_CARRIED, "resource placement is Pacemaker's job: "
                             "auto_failback on is a location preference with "
                             "resource-stickiness 0; off is a positive resource-stickiness "
                             "(crm_attribute --type rsc_defaults --name resource-stickiness "
                             "--update 100)" + ("; nice_failback is its obsolete alias"
                                                if d == "nice_failback" else ""))
            elif d == "autojoin":
                value = line.values[-1].lower() if line.values else "none"
                if value == "none":
                    self.add(line, CARRIED, "corosync's nodelist is fixed, as with autojoin "
                             "none")
                else:
                    self.add(line, NOT_CARRIED, f"autojoin {value}: corosync accepts only the "
                             "nodes of its nodelist; to add one, add it to corosync.conf on "
                             "every node and reload (corosync-cfgtool -R)")
            elif d in ("respawn", "failfast"):
                self.add(line, NOT_CARRIED, _respawn_reason(line))
            elif d in NOT_CARRIED_REASONS:
                self.add(line, NOT_CARRIED, NOT_CARRIED_REASONS[d])
            else:  # pragma: no cover - every directive of hacf.DIRECTIVES is handled above
                self.add(line, NOT_CARRIED, "no corosync equivalent")

    def _overridden(self, line: Line) -> bool:
        s = self.cf.last(line.directive)
        return s is not None and s.line is not line

    def not_carried_summary(self) -> None:
        lines = [f for f in self.findings if f.kind in (NOT_CARRIED, REFUSED)
                 and f.file == self.cf.file]
        if not lines:
            return
        c = self.c
        c.blank()
        c.comment("Not carried over from ha.cf (the import report gives each reason):")
        for f in sorted(lines, key=lambda f: f.line or 0):
            shown = f.directive if len(f.directive) <= 60 else f.directive[:57] + "..."
            c.lines.append(f"#   line {f.line}: {shown}")


def atoi_eq(text: str, port: int) -> bool | None:
    """Whether ``udpport TEXT`` is ``port`` (None if the text has no number)."""
    m = re.match(r"\s*([+-]?\d+)", text)
    return None if m is None else int(m.group(1)) == port


def _respawn_reason(line: Line) -> str:
    cmd = line.values[1] if len(line.values) > 1 else ""
    prog = cmd.rsplit("/", 1)[-1]
    special = {
        "ipfail": "ipfail's job (moving resources away from a node that lost connectivity) is "
                  "done in Pacemaker by a cloned ocf:pacemaker:ping resource and a location "
                  "rule",
        "pingd": "pingd's job is done in Pacemaker by a cloned ocf:pacemaker:ping resource",
        "dopd": "dopd (DRBD's outdate-peer daemon) is replaced, with Pacemaker, by DRBD's "
                "crm-fence-peer handler",
    }
    return special.get(prog, "a process Heartbeat started and restarted: run it as a systemd "
                             "service or a Pacemaker resource")


def _base(path: str) -> str:
    return path.rsplit("/", 1)[-1]


# --- the report ----------------------------------------------------------------------

def next_steps(result: ImportResult, output: str | None, key_written: bool | None) -> list[str]:
    """What the user does next, in order. ``output`` is where the config was written (None:
    standard output); ``key_written`` whether the key file was created (None: it existed)."""
    steps: list[str] = []
    conf = output or "the printed corosync.conf"
    n = len(result.nodes)
    if result.crypto is not None:
        if key_written is False:
            steps.append(f"Create the key file on one node: `totemctl keygen -k {result.keyfile}` "
                         "(or corosync-keygen).")
        steps.append(f"Copy the key file {result.keyfile} to the same path on every node (owner "
                     "root, mode 0400, e.g. scp -p): all nodes need the same key.")
    steps.append(f"Copy {conf} to /etc/corosync/corosync.conf on every node: the nodelist is the "
                 "same everywhere, each node finds its own entry.")
    pcmk = result.hacf.pacemaker_on
    if pcmk:
        steps.append("While Heartbeat still runs, save Pacemaker's configuration: `cibadmin "
                     "--query > /root/cib-heartbeat.xml`. Pacemaker on totemd knows nodes by "
                     "nodeid, not Heartbeat's UUIDs: re-create the resources and constraints "
                     "from that file rather than loading it whole.")
    steps.append("Stop Heartbeat on every node and keep it from starting at boot (`systemctl "
                 "disable --now heartbeat`, or `/etc/init.d/heartbeat stop` and `update-rc.d "
                 "heartbeat disable`).")
    steps.append("Check the configuration on every node: `totemd -t -c "
                 "/etc/corosync/corosync.conf`.")
    steps.append(f"Start totemd on every node; `totemctl status` lists all {n} nodes in one "
                 "ring.")
    steps.append(f"Start Pacemaker on every node (`systemctl start pacemaker`): see \"Pacemaker "
                 f"on pytotem\" ({PACEMAKER_DOC}).")
    if not pcmk:
        groups = result.haresources
        if groups:
            steps.append(f"Heartbeat managed the resources of {result.haresources_file} itself "
                         "(crm off); they are not translated. Re-create them as Pacemaker "
                         f"resources ({PACEMAKER_DOC}), one group per line, with a location "
                         "preference for the node it names:")
            for g in groups:
                hints = "; ".join(f"{r} -> {agent_hint(r)}" for r in g.resources) or "no resources"
                steps.append(f"  line {g.line}, prefers {g.node}: {hints}")
        else:
            steps.append("Heartbeat ran without Pacemaker (crm off): the resources it managed "
                         "(haresources) must be re-created as Pacemaker resources "
                         f"({PACEMAKER_DOC}).")
    init = result.hacf.initdead_ms
    steps.append(f"Heartbeat's initdead ({format_ms(init)}) is Pacemaker's dc-deadtime now: "
                 f"`crm_attribute --type crm_config --name dc-deadtime --update {init // 1000}s`.")
    if n == 2 and pcmk:
        steps.append("no-quorum-policy=ignore, common in two-node Heartbeat clusters, is not "
                     "needed: two_node keeps the surviving node quorate.")
    cf = result.hacf
    if "stonith" in cf.settings or "stonith_host" in cf.settings:
        steps.append("Configure fencing in Pacemaker (stonith resources) for the stonith lines "
                     "of ha.cf.")
    return steps


def render_report(result: ImportResult, steps: Sequence[str] = (),
                  preamble: Sequence[str] = ()) -> str:
    """The import report: a summary (and ``preamble`` lines: what was written), the nodes,
    every directive by outcome, then the next steps."""
    out: list[str] = []
    out.append(f"Imported {' and '.join(result.sources)}: {len(result.nodes)} nodes, token "
               f"{result.timers.token} ms, consensus {result.timers.consensus} ms, "
               + (f"crypto {result.crypto[0]}/{result.crypto[1]}." if result.crypto else
                  "no crypto."))
    out.extend(preamble)
    out.append("")
    out.append("Nodes (nodeid, name, ring0_addr: where the address came from):")
    width = max((len(p.name) for p in result.nodes), default=4)
    awidth = max((len(p.addr) for p in result.nodes), default=4)
    for p in result.nodes:
        out.append(f"  {p.nodeid:>3}  {p.name:<{width}}  {p.addr:<{awidth}}  {p.source}")
    titles = ((CARRIED, "Carried over"), (NOT_CARRIED, "Not carried over"),
              (REFUSED, "Refused"), (NOTE, "Notes"))
    for kind, title in titles:
        items = sorted(result.findings_of(kind), key=lambda f: (f.file, f.line or 0))
        if not items:
            continue
        out.append("")
        out.append(f"{title}:")
        for f in items:
            head = f"  {_base(f.file)}:{f.line}" if f.line else f"  {_base(f.file)}"
            out.append(f"{head}  {f.directive}".rstrip())
            out.extend(wrap(f.text, WIDTH + 12, initial_indent="      ",
                            subsequent_indent="      "))
    if steps:
        out.append("")
        out.append("Next steps:")
        k = 0
        for s in steps:
            if s.startswith("  "):
                out.extend(wrap(s.strip(), WIDTH + 12, initial_indent="       - ",
                                subsequent_indent="         "))
                continue
            k += 1
            out.extend(wrap(s, WIDTH + 12, initial_indent=f"  {k:>2}. ",
                            subsequent_indent="      "))
    return "\n".join(out) + "\n"
