"""What a corosync.conf says, once read and checked: plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..srp.config import SrpConfig

DEFAULT_PORT = 5405
DEFAULT_STATE_DIR = "/var/lib/corosync"


@dataclass(frozen=True)
class NodeEntry:
    """One ``node {}`` of the nodelist."""

    nodeid: int
    addr: str
    """ring0_addr resolved to an IP address (as corosync's totemip_parse picks it)."""
    name: str | None = None
    votes: int = 1
    """quorum_votes (default 1)."""
    ring0_addr: str = ""
    """ring0_addr as written (an address or a host name)."""
    pos: int = 0
    """Position in the nodelist, as in ``nodelist.node.<pos>.*`` cmap keys."""
    nodeid_generated: bool = False
    """True when the nodeid came from the IPv4 address (no nodeid in the node)."""
    line: int | None = None


@dataclass(frozen=True)
class QuorumConfig:
    """``quorum {}`` as votequorum(5) describes it; the arithmetic lives in quorum/."""

    provider: str | None = None
    """``corosync_votequorum`` or None (no quorum service)."""
    expected_votes: int | None = None
    votes: int | None = None
    """``quorum.votes`` (deprecated: nodelist quorum_votes wins)."""
    two_node: bool = False
    wait_for_all: bool | None = None
    """None when not set: votequorum then follows two_node (see wait_for_all_effective)."""
    last_man_standing: bool = False
    last_man_standing_window: int = 10000
    auto_tie_breaker: bool = False
    auto_tie_breaker_node: str | tuple[int, ...] = "lowest"
    """``lowest``, ``highest`` or the node ids in order of preference."""
    allow_downscale: bool = False
    expected_votes_tracking: bool = False
    leaving_timeout: int | None = None

    @property
    def enabled(self) -> bool:
        return self.provider == "corosync_votequorum"

    @property
    def wait_for_all_effective(self) -> bool:
        return self.two_node if self.wait_for_all is None else self.wait_for_all


@dataclass(frozen=True)
class LoggerSubsys:
    """One ``logger_subsys {}``: overrides of the top-level settings (None: inherited)."""

    subsys: str
    to_stderr: bool | None = None
    to_logfile: bool | None = None
    to_syslog: bool | None = None
    logfile: str | None = None
    logfile_priority: str | None = None
    syslog_facility: str | None = None
    syslog_priority: str | None = None
    debug_mode: str | None = None
    """``off``, ``on`` or ``trace``."""

    @property
    def debug(self) -> bool | None:
        return None if self.debug_mode is None else self.debug_mode != "off"


@dataclass(frozen=True)
class LoggingConfig:
    """``logging {}`` with corosync 3.1.7's defaults (logconfig.c, corosync.conf(5))."""

    to_stderr: bool = True
    to_logfile: bool = False
    to_syslog: bool = True
    logfile: str | None = None
    logfile_priority: str = "info"
    syslog_facility: str = "daemon"
    syslog_priority: str = "info"
    debug_mode: str = "off"
    """``off``, ``on`` or ``trace``."""
    timestamp: str = "hires"
    """``off``, ``on`` (seconds) or ``hires`` (milliseconds)."""
    fileline: bool = False
    function_name: bool = False
    blackbox: bool = True
    logger_subsys: tuple[LoggerSubsys, ...] = ()

    @property
    def debug(self) -> bool:
        return self.debug_mode != "off"


@dataclass(frozen=True)
class SystemConfig:
    """``system {}``."""

    state_dir: str = DEFAULT_STATE_DIR
    qb_ipc_type: str = "native"
    sched_rr: bool = True
    priority: str | None = None
    move_to_root_cgroup: str = "auto"


@dataclass(frozen=True)
class UidGid:
    """One ``uid:`` or ``gid:`` line of a ``uidgid {}`` section (or of a file in
    ``uidgid.d/``): a user or group whose processes may use the IPC."""

    kind: str
    """``uid`` or ``gid``."""
    id: int
    written: str
    file: str
    line: int


@dataclass(frozen=True)
class CryptoConfig:
    """``crypto_cipher``/``crypto_hash`` and where the key comes from. corosync 3 allows
    crypto only with knet; totemd puts corosync 2.x's envelope on udpu (docs/crypto.md)."""

    cipher: str = "none"
    hash: str = "none"
    keyfile: str | None = None
    """``totem.keyfile`` (None: ``totem.key``, else the default key file)."""
    key: str | None = None
    """``totem.key``: the key itself, written in the config."""
    keyfile_next: str | None = None
    """pytotem: a second key file being rotated in."""
    lines: tuple[tuple[str, int | None], ...] = ()
    """(cmap key, line) of each crypto key as written, for messages."""

    @property
    def enabled(self) -> bool:
        return self.cipher != "none" or self.hash != "none"

    def line(self, key: str) -> int | None:
        return dict(self.lines).get(key)


@dataclass
class ClusterConfig:
    """Everything totemd needs from corosync.conf."""

    cluster_name: str | None
    transport: str
    srp: SrpConfig
    mcastport: int
    nodes: list[NodeEntry]
    local: NodeEntry
    quorum: QuorumConfig
    logging: LoggingConfig
    system: SystemConfig
    uidgid: list[UidGid] = field(default_factory=list)
    ip_version: str = "ipv6-4"
    config_version: int = 0
    token_coefficient: int = 650
    block_unlisted_ips: bool = True
    clear_node_high_bit: bool = False
    crypto_cipher: str = "none"
    crypto_hash: str = "none"
    crypto: CryptoConfig = field(default_factory=CryptoConfig)
    warnings: list[str] = field(default_factory=list)
    cmap: dict[str, str] = field(default_factory=dict)
    """The config as corosync's cmap holds it: dotted key -> value as text
    (``totem.token`` -> ``3000``, ``nodelist.node.0.ring0_addr`` -> ``127.0.0.1``),
    including what corosync writes back (generated nodeids, ``nodelist.local_node_pos``,
    ``totem.interface.0.bindnetaddr``). Not the ``runtime.*`` keys: see runtime_cmap()."""
    cmap_types: dict[str, str] = field(default_factory=dict)
    """icmap type of each cmap key: u8, u16, u32, u64, i32 or str."""
    file: str = "corosync.conf"

    @property
    def state_dir(self) -> str:
        return self.system.state_dir

    @property
    def nodeid(self) -> int:
        return self.local.nodeid

    @property
    def allowed_uids(self) -> frozenset[int]:
        return frozenset(u.id for u in self.uidgid if u.kind == "uid")

    @property
    def allowed_gids(self) -> frozenset[int]:
        return frozenset(u.id for u in self.uidgid if u.kind == "gid")

    def node(self, nodeid: int) -> NodeEntry | None:
        return next((n for n in self.nodes if n.nodeid == nodeid), None)

    def runtime_cmap(self) -> dict[str, tuple[str, str]]:
        """``runtime.config.totem.*`` as corosync 3.1.7 sets them for udpu: key ->
        (icmap type, value text). The knet keys corosync sets even for udpu are included."""
        s = self.srp
        u32 = {
            "token": s.token, "token_retransmit": s.token_retransmit, "hold": s.hold,
            "token_warning": s.token_warning, "join": s.join, "send_join": s.send_join,
            "consensus": s.consensus, "merge": s.merge, "downcheck": s.downcheck,
            "fail_recv_const": s.fail_recv_const,
            "seqno_unchanged_const": s.seqno_unchanged_const,
            "miss_count_const": s.miss_count_const, "window_size": s.window_size,
            "max_messages": s.max_messages, "max_network_delay": s.max_network_delay,
            "heartbeat_failures_allowed": s.heartbeat_failures_allowed,
            "token_retransmits_before_loss_const": s.token_retransmits_before_loss_const,
            "block_unlisted_ips": int(self.block_unlisted_ips),
            "cancel_token_hold_on_retransmit": int(s.cancel_token_hold_on_retransmit),
            "knet_pmtud_interval": 30, "knet_mtu": 0, "knet_compression_threshold": 0,
        }
        out = {f"runtime.config.totem.{k}": ("u32", str(v)) for k, v in u32.items()}
        out["runtime.config.totem.knet_compression_level"] = ("i32", "0")
        out["runtime.config.totem.knet_compression_model"] = ("str", "none")
        # corosync computes knet ping timers for the configured link even on udpu
        out["runtime.config.totem.interface.0.knet_ping_timeout"] = ("u32", str(s.token // 2))
        out["runtime.config.totem.interface.0.knet_ping_interval"] = ("u32", str(s.token // 4))
        return dict(sorted(out.items()))
