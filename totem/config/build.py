"""From the key store to a ClusterConfig: what totemconfig.c, logconfig.c, votequorum.c
and main.c check and derive, with totemd's udpu-only policy on top."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Callable, Sequence

from ..crypto.envelope import mtu_overhead
from ..srp.config import SrpConfig
from .errors import ConfigError
from .host import Resolver
from .model import (
    DEFAULT_PORT,
    DEFAULT_STATE_DIR,
    ClusterConfig,
    CryptoConfig,
    LoggerSubsys,
    LoggingConfig,
    NodeEntry,
    QuorumConfig,
    SystemConfig,
    UidGid,
)
from .nodes import Candidate, find_local_node, generate_nodeid, resolve_address
from .schema import RING_ADDR, STR, U32, Entry, Store

MINIMUM_TIMEOUT = 30
"""corosync's (1000/HZ)*3: the least token, token_retransmit, join, consensus, merge,
downcheck and max_network_delay."""
MINIMUM_HOLD = 14
"""corosync's MINIMUM_TIMEOUT * 0.8 - 1000/HZ."""
NETMTU_MIN = 576
"""Not a corosync limit (it takes any netmtu): the IPv4 datagram every host accepts,
and room for the headers inside a frame."""
INTERFACE_MAX = 8

AddressSource = Sequence[str] | Callable[[], Sequence[str]]


def build(store: Store, *, hostname: str, addresses: AddressSource, resolver: Resolver,
          local_node: str | int | None = None) -> ClusterConfig:
    b = _Builder(store)
    b.check_transport()
    if store.refusals:
        raise store.refusals[0]
    crypto = b.check_crypto()
    b.check_version()
    b.check_links()
    ip_version = str(store.value("totem.ip_version", "ipv6-4"))
    clear_high = store.value("totem.clear_node_high_bit") == "yes"
    nodes = b.nodes(ip_version, clear_high, resolver)
    b.totem_warnings()
    local = b.local(nodes, hostname, addresses, resolver, local_node)
    members = len(nodes) + len(b.counted_twice)
    srp = b.srp(members)
    if crypto.enabled:
        # corosync 2.x's arithmetic: the frame shrinks by IP/UDP headers + the envelope
        srp = replace(srp, crypto_overhead=mtu_overhead(crypto.cipher, crypto.hash,
                                                        ipv6=":" in local.addr))
    if b.counted_twice and members > 2 and store.value("totem.token_coefficient", 650):
        b.warn_counted_twice(nodes, srp)
    quorum = b.quorum()
    logging = b.logging()
    system = b.system()
    cfg = ClusterConfig(
        cluster_name=store.value("totem.cluster_name"),
        transport="udpu",
        srp=srp,
        mcastport=int(store.value("totem.interface.0.mcastport", 0)) or DEFAULT_PORT,
        nodes=nodes,
        local=local,
        quorum=quorum,
        logging=logging,
        system=system,
        uidgid=b.uidgid(),
        ip_version=ip_version,
        config_version=int(store.value("totem.config_version", 0)),
        token_coefficient=int(store.value("totem.token_coefficient", 650)),
        block_unlisted_ips=_yes_no(store.value("totem.block_unlisted_ips"), True),
        clear_node_high_bit=clear_high,
        crypto_cipher=crypto.cipher,
        crypto_hash=crypto.hash,
        crypto=crypto,
        warnings=store.warnings,
        file=store.file,
    )
    b.write_back(cfg)
    cfg.cmap = {k: e.text for k, e in sorted(store.entries.items())}
    cfg.cmap_types = {k: e.type for k, e in sorted(store.entries.items())}
    return cfg


def _yes_no(value, default: bool) -> bool:
    """corosync's boolean keys of totem: yes or no; anything else leaves the default."""
    return True if value == "yes" else False if value == "no" else default


class _Builder:
    def __init__(self, store: Store) -> None:
        self.s = store
        self.file = store.file
        self.counted_twice: list[int] = []
        """Positions of nodes with ring0_addr alone: corosync 3.1.7 counts them twice."""

    # --- locating messages ------------------------------------------------------------

    def section_line(self, path: str) -> int | None:
        secs = self.s.sections.get(path)
        return secs[0].line if secs else None

    def error(self, key: str, expected: str, note: str | None = None) -> ConfigError:
        """expected/got about the stored key ``key`` (its line and text as written)."""
        e = self.s.get(key)
        if e is None:
            line = e.line if e is not None else self.section_line(key.rsplit(".", 1)[0])
            return ConfigError.expecting(expected, None, file=self.file, line=line,
                                         key=key, note=note)
        return ConfigError.expecting(expected, e.raw, file=e.file or self.file, line=e.line,
                                     key=e.written or key, note=note)

    # --- totem ------------------------------------------------------------------------

    def check_transport(self) -> None:
        e = self.s.get("totem.transport")
        if e is None:
            raise ConfigError.expecting(
                "'transport: udpu' in totem", None, file=self.file,
                line=self.section_line("totem"), key="totem.transport",
                note="without it corosync 3 uses knet, and totemd speaks udpu only")
        if e.value == "udpu":
            return
        notes = {
            "knet": "totemd speaks udpu only; knet is corosync 3's default transport",
            "udp": "udp is multicast; totemd speaks udpu (UDP unicast) only",
        }
        raise self.error("totem.transport", "udpu", notes.get(
            str(e.value), "corosync: Invalid transport type. Should be udpu, udp or knet"))

    def check_crypto(self) -> CryptoConfig:
        """totem_get_crypto's reading (secauth: on means aes256 + sha256 unless set) and
        its refusal of a cipher without a hash. corosync 3 refuses any crypto on udpu
        ("only valid for the Knet transport"); totemd accepts it and puts corosync 2.x's
        envelope around every datagram (docs/crypto.md). The key is read later
        (totem.crypto.settings), so that ``parse_text`` stays free of file access."""
        cipher = hash_ = "none"
        cipher_key = None
        if self.s.value("totem.secauth") == "on":
            cipher, hash_ = "aes256", "sha256"
            cipher_key = "totem.secauth"
        if "totem.crypto_cipher" in self.s.entries:
            cipher, cipher_key = str(self.s.value("totem.crypto_cipher")), "totem.crypto_cipher"
        if "totem.crypto_hash" in self.s.entries:
            hash_ = str(self.s.value("totem.crypto_hash"))
        if cipher != "none" and hash_ == "none":
            raise self.error(cipher_key, "crypto_hash other than none with a crypto_cipher",
                             "corosync: crypto_cipher requires crypto_hash with value other "
                             "than none")
        names = ("totem.crypto_cipher", "totem.crypto_hash", "totem.secauth", "totem.keyfile",
                 "totem.key", "totem.keyfile_next")
        lines = tuple((k, e.line) for k in names if (e := self.s.get(k)) is not None)

        def text(key: str) -> str | None:
            v = self.s.value(key)
            return None if v is None else str(v)

        crypto = CryptoConfig(cipher=cipher, hash=hash_, keyfile=text("totem.keyfile"),
                              key=text("totem.key"), keyfile_next=text("totem.keyfile_next"),
                              lines=lines)
        if crypto.enabled:
            if crypto.keyfile is not None and crypto.key is not None:
                self.s.warn(crypto.line("totem.key"), "totem.key", "ignored: totem.keyfile "
                            "is set (corosync 2.x reads the key file first)")
            if cipher == "none":
                self.s.warn(crypto.line("totem.crypto_cipher") or crypto.line("totem.crypto_hash"),
                            "totem.crypto_cipher", "none: datagrams are authenticated but not "
                            "encrypted, anyone on the network can read them")
        elif crypto.keyfile_next is not None:
            self.s.warn(crypto.line("totem.keyfile_next"), "totem.keyfile_next",
                        "ignored: crypto_cipher and crypto_hash are none")
        return crypto

    def check_version(self) -> None:
        e = self.s.get("totem.version")
        if e is None or e.value != 2:
            raise self.error("totem.version", "2", "corosync: This totem parser can only "
                             "parse version 2 configurations.")

    def check_links(self) -> None:
        """udpu has one link: no interface {} settings for linknumber 1..7 (8 and more
        are refused by corosync for every transport)."""
        link = re.compile(r"totem\.interface\.(\d+)\.")
        for key, e in self.s.entries.items():
            m = link.match(key)
            if m is None or int(m.group(1)) == 0:
                continue
            n = int(m.group(1))
            note = (f"corosync: interface ring number {n} is bigger than allowed maximum "
                    f"{INTERFACE_MAX - 1}" if n >= INTERFACE_MAX else
                    "udpu has one link; corosync: 2 is too many configured interfaces for "
                    "non-Knet transport.")
            raise ConfigError.expecting("interface settings for linknumber 0 only", str(n),
                                        file=e.file or self.file, line=e.line,
                                        key="totem.interface.linknumber", note=note)

    def totem_warnings(self) -> None:
        """The warnings corosync's main() prints after totem_config_read."""
        s, any_ = self.s, False
        if "totem.nodeid" in s.entries:
            any_ = True  # its own warning came with the key
        members = [e for k, e in s.entries.items() if re.match(r"totem\.interface\.\d+\.member\.", k)]
        if members:
            s.warn(min(e.line for e in members), "totem.interface.member",
                   "member section is used together with nodelist. Members ignored.")
            any_ = True
        e = s.get("totem.interface.0.bindnetaddr")
        if e is not None:
            s.warn(e.line, e.written or "totem.interface.bindnetaddr",
                   "interface section bindnetaddr is used together with nodelist. "
                   "Nodelist one is going to be used.")
            any_ = True
        if any_:
            s.warnings.append(f"{self.file}: Please migrate config file to nodelist.")

    # --- nodelist ---------------------------------------------------------------------

    def nodes(self, ip_version: str, clear_high: bool, resolver: Resolver) -> list[NodeEntry]:
        s = self.s
        if not s.node_sections:
            raise ConfigError.expecting(
                "a nodelist section with a node { ring0_addr: ... } for every node", None,
                file=self.file, line=self.section_line("nodelist"), key="nodelist",
                note="corosync: No interfaces defined")
        per_pos: dict[int, dict[str, Entry]] = {pos: {} for pos in s.node_sections}
        for key, e in s.entries.items():
            m = re.match(r"nodelist\.node\.(\d+)\.(.+)\Z", key)
            if m:
                per_pos.setdefault(int(m.group(1)), {})[m.group(2)] = e
        nodes: list[NodeEntry] = []
        for pos in sorted(per_pos):
            keys = per_pos[pos]
            line = s.node_sections[pos][0].line if pos in s.node_sections else None
            base = f"nodelist.node.{pos}"
            for k, e in keys.items():
                m = RING_ADDR.fullmatch(k)
                if m and int(m.group(1)) > 0:
                    n = int(m.group(1))
                    note = (f"corosync: interface ring number {n} is bigger than allowed maximum "
                            f"{INTERFACE_MAX - 1}" if n >= INTERFACE_MAX else
                            "udpu has one link; corosync: 2 is too many configured interfaces "
                            "for non-Knet transport.")
                    raise self.error(f"{base}.{k}", "only ring0_addr in a node", note)
            ring0 = keys.get("ring0_addr")
            if ring0 is None:
                raise ConfigError.expecting(
                    "a ring0_addr in every node", None, file=self.file, line=line,
                    key=f"{base}.ring0_addr", note="corosync leaves such a node out of the ring")
            written = str(ring0.value)
            addr = resolve_address(written, ip_version, resolver)
            if addr is None:
                raise self.error(f"{base}.ring0_addr", f"an IP address or a host name with an "
                                 f"address for ip_version {ip_version}",
                                 f"corosync: failed to parse node address '{written}'")
            nodeid = int(keys["nodeid"].value) if "nodeid" in keys else 0
            generated = False
            if nodeid == 0 and set(keys) == {"ring0_addr"}:
                self.counted_twice.append(pos)
            if nodeid == 0:
                gen = generate_nodeid(written, resolver, clear_high)
                if gen is None:
                    raise ConfigError.expecting(
                        "a nodeid (only an IPv4 ring0_addr gives one)", None, file=self.file,
                        line=ring0.line, key=f"{base}.nodeid",
                        note=f"corosync: An IPV6 network requires that a node ID be "
                        f"specified for address '{written}'.")
                nodeid, generated = gen, True
            name = keys.get("name")
            votes = keys.get("quorum_votes")
            nodes.append(NodeEntry(
                nodeid=nodeid, addr=addr, name=None if name is None else str(name.value),
                votes=1 if votes is None else int(votes.value), ring0_addr=written, pos=pos,
                nodeid_generated=generated, line=line))
        self.check_nodes(nodes)
        return nodes

    def check_nodes(self, nodes: list[NodeEntry]) -> None:
        first = nodes[0]
        for n in nodes[1:]:
            if (":" in n.addr) != (":" in first.addr):
                raise self.error(f"nodelist.node.{n.pos}.ring0_addr",
                                 f"an address of the same IP family as {first.addr} (node "
                                 f"on line {first.line})",
                                 f"corosync: Nodes for link 0 have different IP families "
                                 f"(compared {n.addr} with {first.addr})")
        seen_id: dict[int, NodeEntry] = {}
        seen_addr: dict[str, NodeEntry] = {}
        seen_name: dict[str, NodeEntry] = {}
        for n in nodes:
            key = f"nodelist.node.{n.pos}"
            if n.nodeid in seen_id:
                other = seen_id[n.nodeid]
                how = f"(autogenerated from {n.ring0_addr})" if n.nodeid_generated else ""
                raise ConfigError.expecting(
                    "a nodeid no other node has", str(n.nodeid), file=self.file,
                    line=self._line(f"{key}.nodeid", n), key=f"{key}.nodeid",
                    note=f"the node on line {other.line} has it too; corosync: Nodeid "
                    f"{n.nodeid}{how} appears twice in corosync.conf")
            seen_id[n.nodeid] = n
            if n.addr in seen_addr:
                other = seen_addr[n.addr]
                raise self.error(f"{key}.ring0_addr", "an address no other node has",
                                 f"{other.addr} is the ring0_addr of the node on line "
                                 f"{other.line} too")
            seen_addr[n.addr] = n
            if n.name is not None:
                if n.name in seen_name:
                    raise self.error(f"{key}.name", "a name no other node has",
                                     f"the node on line {seen_name[n.name].line} has it too")
                seen_name[n.name] = n

    def _line(self, key: str, node: NodeEntry) -> int | None:
        e = self.s.get(key)
        if e is not None:
            return e.line
        e = self.s.get(f"nodelist.node.{node.pos}.ring0_addr")
        return e.line if e is not None else node.line

    def local(self, nodes: list[NodeEntry], hostname: str, addresses: AddressSource,
              resolver: Resolver, local_node: str | int | None) -> NodeEntry:
        if local_node is not None:
            want = str(local_node)
            for n in nodes:
                if want.isdigit() and n.nodeid == int(want):
                    return n
            for n in nodes:
                if want in (n.name, n.ring0_addr):
                    return n
            raise ConfigError.expecting(
                "a node with the nodeid, name or ring0_addr given as the local node", want,
                file=self.file, line=self.section_line("nodelist"), key="nodelist")
        cache: list[Sequence[str]] = []

        def local_addrs() -> Sequence[str]:
            if not cache:
                cache.append(list(addresses() if callable(addresses) else addresses))
            return cache[0]

        candidates = [Candidate(n.pos, n.name, n.ring0_addr) for n in nodes]
        pos = find_local_node(candidates, hostname, local_addrs, resolver)
        if pos is None:
            addrs = ", ".join(local_addrs()) or "none"
            raise ConfigError.expecting(
                f"a node whose name or ring0_addr is this host ('{hostname}', addresses "
                f"{addrs})", None, file=self.file, line=self.section_line("nodelist"),
                key="nodelist", note="corosync: No valid name found for local host")
        return next(n for n in nodes if n.pos == pos)

    # --- timers -----------------------------------------------------------------------

    def warn_counted_twice(self, nodes: list[NodeEntry], srp: SrpConfig) -> None:
        """corosync 3.1.7 adds a node whose only key is ring0_addr to its member list twice
        when it writes the generated nodeid back (seen with corosync-cmapctl: two such
        nodes give runtime.config.totem.token 4300, not 3000), so token_coefficient
        scales the token for more nodes than there are. totemd does the same, so that its
        timers match corosync's for the same file, and says so."""
        lines = [str(n.line) for n in nodes if n.pos in self.counted_twice]
        self.s.warnings.append(
            f"{self.file}: nodelist: corosync 3.1.7 counts a node that has only a ring0_addr "
            f"twice when it scales the token by token_coefficient (line {', '.join(lines)}): "
            f"token is {srp.token} ms, as in corosync; give such nodes a nodeid to get the "
            f"documented value")

    def srp(self, nodes: int) -> SrpConfig:
        """totem_volatile_config_read and _validate: zero means the default for every
        timer and constant but token_warning, send_join and heartbeat_failures_allowed."""
        s = self.s

        def get(key: str) -> int | None:
            v = s.value(f"totem.{key}")
            return None if v is None else int(v)

        def nonzero(key: str) -> int | None:
            v = get(key)
            return v or None

        explicit: dict[str, int | bool] = {}
        for key in ("token_warning", "send_join", "heartbeat_failures_allowed"):
            if get(key) is not None:
                explicit[key] = get(key)
        for key in ("join", "merge", "downcheck", "fail_recv_const", "seqno_unchanged_const",
                    "miss_count_const", "window_size", "max_messages", "max_network_delay",
                    "netmtu"):
            if nonzero(key) is not None:
                explicit[key] = nonzero(key)
        explicit["cancel_token_hold_on_retransmit"] = _yes_no(
            s.value("totem.cancel_token_hold_on_retransmit"), False)
        coefficient = get("token_coefficient")
        srp = SrpConfig.derive(
            nodes, token=nonzero("token"),
            token_coefficient=650 if coefficient is None else coefficient,
            token_retransmits_before_loss_const=nonzero("token_retransmits_before_loss_const") or 4,
            token_retransmit=nonzero("token_retransmit"), hold=nonzero("hold"),
            consensus=nonzero("consensus"), **explicit)
        self.check_srp(srp, nodes)
        return srp

    def check_srp(self, srp: SrpConfig, nodes: int) -> None:
        at_least = f"an integer >= {MINIMUM_TIMEOUT}"

        def check(key: str, value: int, minimum: int = MINIMUM_TIMEOUT, corosync: str = "") -> None:
            if value < minimum:
                raise self.error(f"totem.{key}", f"an integer >= {minimum}",
                                 f"corosync: The {corosync} parameter ({value} ms) may not be "
                                 f"less than ({minimum} ms)." if corosync else None)

        check("max_network_delay", srp.max_network_delay, corosync="max_network_delay")
        if srp.token < MINIMUM_TIMEOUT:
            written = self.s.value("totem.token")
            note = (None if written == srp.token else
                    f"with {nodes} nodes and token_coefficient the token is {srp.token} ms")
            raise self.error("totem.token", at_least, note)
        if srp.token_warning > 100:
            raise self.error("totem.token_warning", "an integer in 0..100 (per cent of token)",
                             f"corosync: The token warning parameter ({srp.token_warning}%) "
                             "must be between 0 (disabled) and 100.")
        if srp.token_retransmit < MINIMUM_TIMEOUT:
            if self.s.get("totem.token_retransmit") is not None:
                check("token_retransmit", srp.token_retransmit,
                      corosync="token retransmit timeout")
            key = ("totem.token_retransmits_before_loss_const"
                   if self.s.get("totem.token_retransmits_before_loss_const") else "totem.token")
            raise self.error(
                key, f"a token and token_retransmits_before_loss_const that give a "
                f"token_retransmit >= {MINIMUM_TIMEOUT} ms",
                f"they give token_retransmit {srp.token_retransmit} ms = token {srp.token} / "
                f"({srp.token_retransmits_before_loss_const} + 0.2); corosync: Not appropriate "
                "token or token_retransmits_before_loss_const value set")
        check("hold", srp.hold, MINIMUM_HOLD, corosync="token hold timeout")
        check("join", srp.join, corosync="join timeout")
        check("consensus", srp.consensus, corosync="consensus timeout")
        if srp.consensus < srp.join:
            key = "totem.consensus" if self.s.get("totem.consensus") else "totem.join"
            raise self.error(key, f"consensus >= join (join {srp.join} ms, consensus "
                             f"{srp.consensus} ms)", "corosync: The consensus timeout parameter "
                             "may not be less than join timeout")
        check("merge", srp.merge, corosync="merge timeout")
        check("downcheck", srp.downcheck, corosync="downcheck timeout")
        if srp.netmtu < NETMTU_MIN:
            raise self.error("totem.netmtu", f"an integer >= {NETMTU_MIN}",
                             "totemd's limit: corosync takes any netmtu")
        e = self.s.get("totem.consensus")
        if e is not None and e.value and srp.consensus < int(1.2 * srp.token):
            self.s.warn(e.line, e.written or "totem.consensus",
                        f"consensus ({srp.consensus} ms) is less than 1.2 x token "
                        f"({int(1.2 * srp.token)} ms), the least corosync.conf(5) advises; "
                        "corosync accepts it")

    # --- quorum, logging, system, uidgid ---------------------------------------------

    def quorum(self) -> QuorumConfig:
        s = self.s

        def u(key: str) -> int | None:
            v = s.value(f"quorum.{key}")
            return None if v is None else int(v)

        def flag(key: str) -> bool:
            return bool(u(key))

        provider = s.value("quorum.provider")
        if provider not in (None, "corosync_votequorum"):
            note = ("corosync_ykd is not supported by totemd" if provider == "corosync_ykd"
                    else "corosync: Invalid quorum provider")
            raise self.error("quorum.provider", "corosync_votequorum", note)
        atb = flag("auto_tie_breaker")
        atb_node: str | tuple[int, ...] = "lowest"
        e = s.get("quorum.auto_tie_breaker_node")
        if e is not None:
            if not atb:
                s.warn(e.line, "quorum.auto_tie_breaker_node",
                       "auto_tie_breaker_node: is meaningless if auto_tie_breaker is set to 0")
            else:
                parsed = _parse_atb(str(e.value))
                if parsed is None:
                    s.warn(e.line, "quorum.auto_tie_breaker_node",
                           "auto_tie_breaker_nodes is not valid. It must be 'lowest', 'highest' "
                           "or a space-separated list of node IDs. auto_tie_breaker is disabled")
                    atb = False
                else:
                    atb_node = parsed
        wfa = u("wait_for_all")
        lms_window = u("last_man_standing_window")
        return QuorumConfig(
            provider=provider, expected_votes=u("expected_votes"), votes=u("votes"),
            two_node=flag("two_node"), wait_for_all=None if wfa is None else bool(wfa),
            last_man_standing=flag("last_man_standing"),
            last_man_standing_window=10000 if lms_window is None else lms_window,
            auto_tie_breaker=atb, auto_tie_breaker_node=atb_node,
            allow_downscale=flag("allow_downscale"),
            expected_votes_tracking=flag("expected_votes_tracking"),
            leaving_timeout=u("leaving_timeout"))

    def logging(self) -> LoggingConfig:
        s = self.s
        top = self._log_fields("logging", top=True)
        subs: list[LoggerSubsys] = []
        heads = sorted((e.line or 0, k) for k, e in s.entries.items()
                       if re.fullmatch(r"logging\.logger_subsys\.[^.]+\.subsys", k))
        for _, key in heads:
            name = key.split(".")[2]
            f = self._log_fields(f"logging.logger_subsys.{name}", top=False)
            subs.append(LoggerSubsys(subsys=name, **f))
        return LoggingConfig(**{k: v for k, v in top.items() if v is not None},
                             logger_subsys=tuple(subs))

    def _log_fields(self, prefix: str, *, top: bool) -> dict:
        """logconfig.c's checks of one logging level (top or a subsys)."""
        s = self.s
        out: dict = {}

        def val(key: str) -> str | None:
            v = s.value(f"{prefix}.{key}")
            return None if v is None else str(v)

        def choose(key: str, values: dict, expected: str):
            v = val(key)
            if v is None:
                return None
            if v not in values:
                raise self.error(f"{prefix}.{key}", expected, f"corosync: unknown value for {key}")
            return values[v]

        yes_no = {"yes": True, "on": True, "no": False, "off": False}
        for key in ("to_stderr", "to_syslog"):
            out[key] = choose(key, yes_no, "yes, no, on or off")
        to_file = choose("to_file", yes_no, "yes, no, on or off")
        to_logfile = choose("to_logfile", yes_no, "yes, no, on or off")
        out["to_logfile"] = to_logfile if to_logfile is not None else to_file
        facility = val("syslog_facility")
        if facility is not None and facility not in SYSLOG_FACILITIES:
            raise self.error(f"{prefix}.syslog_facility", "one of " + ", ".join(SYSLOG_FACILITIES),
                             "corosync: unknown syslog facility specified")
        out["syslog_facility"] = facility
        level = self._priority(prefix, "syslog_level", "unknown syslog level specified")
        prio = self._priority(prefix, "syslog_priority", "unknown syslog priority specified")
        out["syslog_priority"] = prio if prio is not None else level
        out["logfile"] = val("logfile")
        out["logfile_priority"] = self._priority(prefix, "logfile_priority",
                                                 "unknown logfile priority specified")
        out["debug_mode"] = choose("debug", {"on": "on", "off": "off", "trace": "trace"},
                                   "on, off or trace")
        if top:
            out["timestamp"] = choose("timestamp", {"on": "on", "off": "off", "hires": "hires"},
                                      "on, off or hires")
            on_off = {"on": True, "off": False}
            for key in ("fileline", "function_name", "blackbox"):
                out[key] = choose(key, on_off, "on or off")
        return out

    def _priority(self, prefix: str, key: str, corosync: str) -> str | None:
        v = self.s.value(f"{prefix}.{key}")
        if v is None:
            return None
        if str(v).lower() not in SYSLOG_PRIORITIES:
            raise self.error(f"{prefix}.{key}", "one of " + ", ".join(SYSLOG_PRIORITIES),
                             f"corosync: {corosync}")
        return str(v).lower()

    def system(self) -> SystemConfig:
        s = self.s
        prio = s.value("system.priority")
        if prio is not None and prio not in ("max", "min") and \
                re.fullmatch(r"[ \t\n\v\f\r]*[+-]?[0-9]+", str(prio)) is None:
            raise self.error("system.priority", "max, min or an integer (a nice value)",
                             f"corosync: Priority value {prio} is invalid")
        if prio is not None and prio not in ("max", "min") and not -2**31 <= int(prio) < 2**31:
            raise self.error("system.priority", "max, min or an integer (a nice value)",
                             f"corosync: Priority value {prio} is invalid")
        return SystemConfig(
            state_dir=str(s.value("system.state_dir", DEFAULT_STATE_DIR)),
            qb_ipc_type=str(s.value("system.qb_ipc_type", "native")),
            sched_rr=s.value("system.sched_rr", "yes") == "yes",
            priority=None if prio is None else str(prio),
            move_to_root_cgroup=str(s.value("system.move_to_root_cgroup", "auto")))

    def uidgid(self) -> list[UidGid]:
        out = []
        for key, e in self.s.entries.items():
            m = re.fullmatch(r"uidgid\.config\.(uid|gid)\.(\d+)", key)
            if m:
                out.append(UidGid(m.group(1), int(m.group(2)), e.raw or "", e.file or self.file,
                                  e.line or 0))
        return sorted(out, key=lambda u: (u.file, u.line))

    # --- what corosync writes back into cmap ----------------------------------------

    def write_back(self, cfg: ClusterConfig) -> None:
        s = self.s
        for n in cfg.nodes:
            if n.nodeid_generated:
                s.entries[f"nodelist.node.{n.pos}.nodeid"] = Entry(n.nodeid, U32)
        s.entries["nodelist.local_node_pos"] = Entry(cfg.local.pos, U32)
        s.entries["totem.interface.0.bindnetaddr"] = Entry(cfg.local.ring0_addr, STR)


SYSLOG_FACILITIES = ("auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "news",
                     "syslog", "user", "uucp", "local0", "local1", "local2", "local3", "local4",
                     "local5", "local6", "local7")
"""libqb's qb_log_facility2int names (case matters)."""
SYSLOG_PRIORITIES = ("alert", "crit", "debug", "emerg", "err", "error", "info", "notice",
                     "warning")
"""logsys's priority names (any case)."""


def _parse_atb(text: str) -> str | tuple[int, ...] | None:
    """votequorum's parse_atb_string: lowest, highest, or node ids read with strtol
    until one is 0 or unreadable; None where it gives nothing."""
    if text in ("lowest", "highest"):
        return text
    ids: list[int] = []
    rest = text
    while True:
        m = re.match(r"[ \t\n\v\f\r]*([+-]?[0-9]+)", rest)
        if m is None or int(m.group(1)) == 0:
            break
        ids.append(int(m.group(1)))
        rest = rest[m.end():]
    return tuple(ids) or None
