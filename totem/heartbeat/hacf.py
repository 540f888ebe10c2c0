"""ha.cf read as Heartbeat 3.0.6 reads it (heartbeat/config.c, cluster-glue's cl_get_msec).

The facts this reader follows, from Heartbeat's source:

- A ``#`` anywhere starts a comment; a ``\\r`` ends the line; leading blanks are skipped.
- The first blank-separated word is the directive, matched case-sensitively. An unknown
  directive is an error ("Illegal directive").
- Most directives take a list of values separated by blanks or commas, and each value is
  applied in turn (``node alice bob`` declares two nodes; ``keepalive 1 2`` leaves 2).
  A few take the rest of the line as one text: ``ucast``, ``ucast6``, ``mcast``,
  ``mcast6``, ``ping_group``, ``tipc``, ``rds``, ``stonith``, ``stonith_host``,
  ``apiauth``, ``respawn`` and ``failfast``; they split it on blanks only (a comma is
  part of a word there). ``udp`` is an old alias of ``bcast``.
- Times (``keepalive``, ``deadtime``, ``warntime``, ``initdead``, ``deadping``,
  ``conn_logd_time``) are seconds, or milliseconds with an ``ms`` suffix, or
  microseconds with ``us``; fractions are allowed (``1.5``, ``500ms``). Any other suffix
  (``2s``, ``1min``) is an error.
- Defaults: keepalive 1 s, deadtime 30 s, warntime deadtime/2, initdead deadtime when
  deadtime > 10 s (else 12 s below 6 s, else 2 x deadtime), deadping deadtime, port 694.
  deadtime must exceed 2 x keepalive and initdead must be at least deadtime.
- Node names are lowercased. ``ucast IFACE ADDR`` uses the ``udpport`` set *before* the
  first ucast line (the plugin reads it once, when that line is parsed); a later
  ``udpport`` does not change it.
- ``watchdog`` and ``baud`` may be set once, ``pacemaker``/``crm`` once.

:func:`parse_hacf` is pure: text in, :class:`HaCf` out, or :class:`HeartbeatError`
listing every problem with its file and line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable

from .problems import NOTE, Finding, HeartbeatError, Problem, expected

WHITESPACE = " \t\n\r\f"
DELIMS = ", \t\n\r\f"
NUMCHARS = "0123456789."
DEFAULT_PORT = 694
"""Heartbeat's port when udpport is not set: the ha-cluster service, 694/udp."""
DEFAULT_KEEPALIVE_MS = 1000
DEFAULT_DEADTIME_MS = 30000

OPTION = "option"
"""``directive value value ...``: each value applied in turn (config.c's Directives[])."""
LINE = "line"
"""``directive rest of line``: one parser takes the text (WLdirectives, whole-line media)."""
MEDIUM = "medium"
"""``directive value value ...``: one communication medium per value (bcast, serial, ping)."""

BOOLEANS_TRUE = ("true", "on", "yes", "y", "1")
BOOLEANS_FALSE = ("false", "off", "no", "n", "0")
FACILITIES = ("auth", "authpriv", "cron", "daemon", "ftp", "kern", "lpr", "mail", "mark",
              "news", "security", "syslog", "user", "uucp", "local0", "local1", "local2",
              "local3", "local4", "local5", "local6", "local7")
"""glibc's facilitynames, which cluster-glue's cl_syslogfac_str2int searches (case matters)."""
BAUD_RATES = ("9600", "19200", "38400", "57600", "115200", "230400", "460800")
PACEMAKER_MODES = ("minimal", "manual", "respawn", "ccm-only", "valgrind")


def parse_msec(text: str) -> int | None:
    """cl_get_msec: ``2`` -> 2000, ``1.5`` -> 1500, ``500ms`` -> 500, ``100us`` -> 0;
    None where Heartbeat gets -1 (no leading number, or a suffix other than ms/us)."""
    cp = text.lstrip(WHITESPACE)
    if not cp or cp[0] not in NUMCHARS:
        return None
    n = 0
    while n < len(cp) and cp[n] in NUMCHARS:
        n += 1
    units = cp[n:].lstrip(WHITESPACE)
    if units[:2].lower() == "ms":
        multiplier, divisor = 1, 1
    elif units[:2].lower() == "us":
        multiplier, divisor = 1, 1000
    elif units and units[0] not in "\r\n":
        return None
    else:
        multiplier, divisor = 1000, 1
    m = re.match(r"[0-9]*(?:\.[0-9]*)?", cp)
    number = float(m.group(0)) if m and m.group(0) not in ("", ".") else 0.0
    return int(number * multiplier / divisor + 0.5)


def atoi(text: str) -> int:
    """C's atoi: leading blanks, a sign and digits; 0 if there are none."""
    m = re.match(r"[ \t\n\v\f\r]*([+-]?[0-9]+)", text)
    return int(m.group(1)) if m else 0


def parse_bool(text: str) -> bool | None:
    """cl_str_to_boolean (any case); None if it is none of its words."""
    low = text.lower()
    return True if low in BOOLEANS_TRUE else False if low in BOOLEANS_FALSE else None


def format_ms(ms: int) -> str:
    """``30 s``, ``1.5 s`` or ``500 ms``."""
    if ms % 1000 == 0:
        return f"{ms // 1000} s"
    if ms >= 1000:
        return f"{ms / 1000:g} s"
    return f"{ms} ms"


# --- what each directive accepts ---------------------------------------------------

Check = Callable[[str], str | None]
"""A value check: None when Heartbeat accepts the value, else what it expects."""

_TIME_WORDS = "a time: seconds (2, 1.5) or milliseconds with ms (500ms)"
_BOOL_WORDS = "a boolean (on, off, yes, no, true, false, y, n, 1, 0)"


def _time(minimum: int) -> Check:
    def check(v: str) -> str | None:
        ms = parse_msec(v)
        if ms is None:
            return _TIME_WORDS
        if ms < minimum:
            return f"{_TIME_WORDS} greater than 0" if minimum == 1 else _TIME_WORDS
        return None
    return check


def _boolean(v: str) -> str | None:
    return None if parse_bool(v) is not None else _BOOL_WORDS


def _int(lo: int, hi: int | None = None) -> Check:
    def check(v: str) -> str | None:
        n = atoi(v)
        if n < lo or (hi is not None and n > hi):
            return f"an integer from {lo} to {hi}" if hi is not None else f"an integer >= {lo}"
        return None
    return check


def _one_of(*values: str, fold: bool = False) -> Check:
    def check(v: str) -> str | None:
        ok = v.lower() in values if fold else v in values
        return None if ok else "one of " + ", ".join(values)
    return check


def _pacemaker(v: str) -> str | None:
    if v.lower() in PACEMAKER_MODES or parse_bool(v) is not None:
        return None
    return "one of " + ", ".join(PACEMAKER_MODES) + " or a boolean"


def _failback(v: str) -> str | None:
    return None if v.lower() == "legacy" or parse_bool(v) is not None else "on, off or legacy"


def _env(v: str) -> str | None:
    return None if "=" in v and not v.startswith("=") else "NAME=VALUE"


def _anything(v: str) -> str | None:
    return None


def _words(minimum: int, what: str) -> Check:
    def check(rest: str) -> str | None:
        return None if len(rest.split()) >= minimum else what
    return check


def _apiauth(rest: str) -> str | None:
    words = rest.split()
    if len(words) < 2:
        return "a client name, then uid=LIST and/or gid=LIST"
    seen: set[str] = set()
    for w in words[1:]:
        kind = w[:4]
        if kind not in ("uid=", "gid=") or kind in seen:
            return "a client name, then uid=LIST and/or gid=LIST (each at most once)"
        seen.add(kind)
    return None


def _child(rest: str) -> str | None:
    words = rest.split()
    if len(words) < 2 or not words[1].startswith("/"):
        return "a user name, then the full path of the command"
    return None


@dataclass(frozen=True)
class Spec:
    """One directive Heartbeat knows: how its values are read and checked."""

    kind: str
    check: Check = _anything
    once: str | None = None
    """Heartbeat's complaint when the directive is given a second value."""


DIRECTIVES: dict[str, Spec] = {
    # config.c Directives[] (values applied one by one)
    "cluster": Spec(OPTION),
    "quorum_server": Spec(OPTION),
    "node": Spec(OPTION),
    "hopfudge": Spec(OPTION, _int(0, 255)),
    "keepalive": Spec(OPTION, _time(1)),
    "deadtime": Spec(OPTION, _time(0)),
    "deadping": Spec(OPTION, _time(0)),
    "initdead": Spec(OPTION, _time(0)),
    "warntime": Spec(OPTION, _time(1)),
    "watchdog": Spec(OPTION, once="Watchdog device multiply specified"),
    "baud": Spec(OPTION, _one_of(*BAUD_RATES), once="Baudrate multiply specified"),
    "udpport": Spec(OPTION, _int(1, 65535)),
    "logfacility": Spec(OPTION, _one_of(*FACILITIES)),
    "logfile": Spec(OPTION),
    "debugfile": Spec(OPTION),
    "nice_failback": Spec(OPTION, _boolean),
    "auto_failback": Spec(OPTION, _failback),
    "rtprio": Spec(OPTION, _int(1, 99)),
    "hbgenmethod": Spec(OPTION, _one_of("file", "time")),
    "realtime": Spec(OPTION, _boolean),
    "debug": Spec(OPTION, _int(0, 255)),
    "normalpoll": Spec(OPTION, _boolean),
    "msgfmt": Spec(OPTION, _one_of("classic", "netstring")),
    "use_logd": Spec(OPTION, _boolean),
    "conn_logd_time": Spec(OPTION, _time(1)),
    "use_apphbd": Spec(OPTION, _boolean),
    "log_badpack": Spec(OPTION, _boolean),
    "syslogmsgfmt": Spec(OPTION, _boolean),
    "coredumps": Spec(OPTION, _boolean),
    "coreroot": Spec(OPTION),
    "crm_daemon_dir": Spec(OPTION),
    "crmd_spawns_pengine": Spec(OPTION, _boolean),
    "crm": Spec(OPTION, _pacemaker, once="pacemaker/crm directive used multiple times"),
    "pacemaker": Spec(OPTION, _pacemaker, once="pacemaker/crm directive used multiple times"),
    "autojoin": Spec(OPTION, _one_of("none", "other", "any", fold=True)),
    "uuidfrom": Spec(OPTION, _one_of("file", "nodename")),
    "compression": Spec(OPTION),
    "compression_threshold": Spec(OPTION, _int(1)),
    "traditional_compression": Spec(OPTION, _boolean),
    "env": Spec(OPTION, _env),
    "max_rexmit_delay": Spec(OPTION, _int(1)),
    "record_config_changes": Spec(OPTION, _boolean),
    "record_pengine_inputs": Spec(OPTION, _boolean),
    "enable_config_writes": Spec(OPTION, _boolean),
    "memreserve": Spec(OPTION, _int(1)),
    # WLdirectives[] (the rest of the line)
    "stonith": Spec(LINE, _words(2, "a STONITH type, then its configuration file")),
    "stonith_host": Spec(LINE, _words(2, "a host name (or *), a STONITH type and its "
                                         "parameters")),
    "apiauth": Spec(LINE, _apiauth),
    "respawn": Spec(LINE, _child),
    "failfast": Spec(LINE, _child),
    # HBcomm media plugins
    "ucast": Spec(LINE),
    "ucast6": Spec(LINE),
    "mcast": Spec(LINE, _words(5, "an interface, a multicast group, a port, a TTL and a "
                                  "loop flag")),
    "mcast6": Spec(LINE, _words(5, "an interface, a multicast group, a port, a hop limit "
                                   "and a loop flag")),
    "ping_group": Spec(LINE, _words(2, "a group name, then addresses")),
    "tipc": Spec(LINE),
    "rds": Spec(LINE),
    "openais": Spec(LINE),
    "bcast": Spec(MEDIUM),
    "udp": Spec(MEDIUM),
    "serial": Spec(MEDIUM),
    "ping": Spec(MEDIUM),
    "ping6": Spec(MEDIUM),
    "hbaping": Spec(MEDIUM),
}

MEDIA = ("ucast", "ucast6", "mcast", "mcast6", "bcast", "udp", "serial", "ping", "ping6",
         "hbaping", "ping_group", "tipc", "rds", "openais")
HEARTBEAT_MEDIA = ("ucast", "ucast6", "mcast", "mcast6", "bcast", "udp", "serial", "tipc",
                   "rds", "openais")
"""Media that carry heartbeats between cluster nodes (ping media only watch routers)."""


# --- the model ---------------------------------------------------------------------

@dataclass(frozen=True)
class Line:
    """One directive line of ha.cf."""

    file: str
    number: int
    directive: str
    values: tuple[str, ...]
    """OPTION and MEDIUM directives: the values; LINE directives: the blank-separated words."""
    rest: str
    """The text after the directive (what a LINE directive's parser gets)."""
    text: str
    """The line as written, without comment and surrounding blanks."""


@dataclass(frozen=True)
class Setting:
    """One value applied to an OPTION directive."""

    value: str
    line: Line


@dataclass(frozen=True)
class NodeName:
    """A ``node`` value: ``name`` lowercased as Heartbeat does, ``written`` as in the file."""

    name: str
    written: str
    line: Line


@dataclass(frozen=True)
class Medium:
    """One communication medium: ``kind`` (ucast, bcast, ...) and its arguments."""

    kind: str
    args: tuple[str, ...]
    line: Line
    port: int | None = None
    """ucast/ucast6/bcast: the UDP port Heartbeat used for it (udpport as it was when the
    plugin first read it, else 694)."""


@dataclass
class HaCf:
    """ha.cf as Heartbeat understood it."""

    file: str
    lines: list[Line] = field(default_factory=list)
    settings: dict[str, list[Setting]] = field(default_factory=dict)
    nodes: list[NodeName] = field(default_factory=list)
    media: list[Medium] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)
    """What Heartbeat silently ignored or warned about, per line."""
    plugin_port: dict[str, int] = field(default_factory=dict)
    """The port each UDP media plugin (ucast, ucast6, bcast) fixed when first used."""

    def last(self, name: str) -> Setting | None:
        """The value that counts for ``name`` (the last one applied), or None."""
        got = self.settings.get(name)
        return got[-1] if got else None

    def ms(self, name: str) -> int | None:
        s = self.last(name)
        return None if s is None else parse_msec(s.value)

    @property
    def keepalive_ms(self) -> int:
        v = self.ms("keepalive")
        return DEFAULT_KEEPALIVE_MS if v is None else v

    @property
    def deadtime_ms(self) -> int:
        v = self.ms("deadtime")
        return DEFAULT_DEADTIME_MS if v is None else v

    @property
    def warntime_ms(self) -> int:
        v = self.ms("warntime")
        return self.deadtime_ms // 2 if not v else v

    @property
    def initdead_ms(self) -> int:
        v = self.ms("initdead")
        if v is not None:
            return v
        dead = self.deadtime_ms
        return dead if dead > 10000 else 12000 if dead < 6000 else 2 * dead

    @property
    def udpport(self) -> int:
        """The port ucast (or ucast6) used; without them, the last udpport (or 694)."""
        for kind in ("ucast", "ucast6"):
            if kind in self.plugin_port:
                return self.plugin_port[kind]
        s = self.last("udpport")
        return DEFAULT_PORT if s is None else atoi(s.value)

    @property
    def pacemaker(self) -> Setting | None:
        """The ``crm``/``pacemaker`` setting, if any."""
        return self.last("pacemaker") or self.last("crm")

    @property
    def pacemaker_on(self) -> bool:
        s = self.pacemaker
        return s is not None and parse_bool(s.value) is not False


# --- reading -------------------------------------------------------------------------

def _strip_line(raw: str) -> str:
    """Heartbeat's order: skip blanks, cut at '#', cut at the first CR or LF."""
    bp = raw.lstrip(WHITESPACE)
    bp = bp.split("#", 1)[0]
    for ch in "\r\n":
        bp = bp.split(ch, 1)[0]
    return bp


def _split(text: str, delims: str) -> list[str]:
    return [w for w in re.split("[" + re.escape(delims) + "]+", text) if w]


def parse_hacf(text: str, filename: str = "ha.cf") -> HaCf:
    """Read ha.cf ``text`` (``filename`` names it in messages) as Heartbeat does.

    Raises :class:`HeartbeatError` with every problem Heartbeat would refuse the file
    for (each naming file, line and what was expected)."""
    cf = HaCf(file=filename)
    problems: list[Problem] = []
    once_seen: dict[str, Line] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        bp = _strip_line(raw)
        if not bp:
            continue
        word = re.match(r"[^ \t\n\r\f]*", bp).group(0)
        directive = "bcast" if word == "udp" else word
        spec = DIRECTIVES.get(word)
        rest_raw = bp[len(word):]
        rest = rest_raw.lstrip(DELIMS)
        if spec is None:
            problems.append(Problem(filename, number, _unknown(word)))
            continue
        values = tuple(rest.split()) if spec.kind == LINE else tuple(_split(rest, DELIMS))
        line = Line(filename, number, word, values, rest.rstrip(WHITESPACE), bp.strip(WHITESPACE))
        cf.lines.append(line)
        if word == "udp":
            cf.notes.append(Finding(filename, number, line.text, NOTE,
                                    "Heartbeat reads the old 'udp' directive as 'bcast'"))
        if not values:
            if directive not in ("ucast", "ucast6"):
                cf.notes.append(Finding(filename, number, line.text, NOTE,
                                        f"'{word}' without a value: Heartbeat ignores the line"))
        if spec.kind == LINE:
            _line_directive(cf, directive, spec, line, problems)
            continue
        for value in values:
            bad = spec.check(value)
            if bad is not None:
                problems.append(Problem(filename, number, expected(word, bad, value)))
                continue
            if spec.once is not None:
                key = "pacemaker" if word in ("crm", "pacemaker") else word
                if key in once_seen:
                    first = once_seen[key]
                    problems.append(Problem(filename, number, f"{word}: may be given once "
                                            f"(first on line {first.number}); Heartbeat: "
                                            f"{spec.once}"))
                    continue
                once_seen[key] = line
            if word in ("crm_daemon_dir", "crmd_spawns_pengine") and "pacemaker" in once_seen:
                problems.append(Problem(filename, number, f"{word}: must come before the "
                                        f"pacemaker/crm line ({once_seen['pacemaker'].number})"))
                continue
            if spec.kind == MEDIUM:
                port = None
                if directive == "bcast":
                    port = cf.plugin_port.setdefault("bcast", _current_port(cf))
                cf.media.append(Medium(directive, (value,), line, port))
                continue
            cf.settings.setdefault(word, []).append(Setting(value, line))
            if word == "node":
                cf.nodes.append(NodeName(value.lower(), value, line))
    _check_whole(cf, problems)
    if problems:
        raise HeartbeatError(problems)
    return cf


def _unknown(word: str) -> str:
    near = [d for d in DIRECTIVES if d.lower() == word.lower()]
    hint = f"; directives are case-sensitive: did you mean '{near[0]}'?" if near else ""
    return (f"unknown directive '{word}' (Heartbeat refuses the file: Illegal directive "
            f"[{word}]){hint}")


def _current_port(cf: HaCf) -> int:
    s = cf.last("udpport")
    return DEFAULT_PORT if s is None else atoi(s.value)


def _line_directive(cf: HaCf, directive: str, spec: Spec, line: Line,
                    problems: list[Problem]) -> None:
    words = line.values
    if directive in ("ucast", "ucast6"):
        if not words:
            cf.notes.append(Finding(line.file, line.number, line.text, NOTE,
                                    f"'{directive}' without an interface: Heartbeat ignores "
                                    "the line"))
            return
        if len(words) < 2:
            problems.append(Problem(line.file, line.number, expected(
                directive, "an interface, then the peer's IP address or host name",
                line.rest, f"Heartbeat: {directive}: [{words[0]}] missing target IP "
                           "address/hostname")))
            return
        if len(words) > 2:
            cf.notes.append(Finding(line.file, line.number, line.text, NOTE,
                                    f"Heartbeat reads one address per {directive} line and "
                                    f"ignored {' '.join(words[2:])}"))
        port = cf.plugin_port.setdefault(directive, _current_port(cf))
        cf.media.append(Medium(directive, words[:2], line, port))
        return
    bad = spec.check(line.rest)
    if bad is not None:
        problems.append(Problem(line.file, line.number, expected(directive, bad,
                                                                  line.rest or None)))
        return
    if directive in MEDIA:
        cf.media.append(Medium(directive, words, line))
    else:
        cf.settings.setdefault(directive, []).append(Setting(line.rest, line))


def _check_whole(cf: HaCf, problems: list[Problem]) -> None:
    """init_config's checks once the whole file is read."""
    f = cf.file
    keep, dead, init = cf.keepalive_ms, cf.deadtime_ms, cf.initdead_ms
    dead_line = _line_of(cf, "deadtime")
    if dead <= 2 * keep:
        problems.append(Problem(f, dead_line, expected(
            "deadtime", f"more than twice keepalive ({format_ms(keep)})", format_ms(dead),
            f"Heartbeat: Dead time [{dead}] is too small compared to keeplive [{keep}]")))
    if init < dead:
        problems.append(Problem(f, _line_of(cf, "initdead") or dead_line, expected(
            "initdead", f"at least deadtime ({format_ms(dead)})", format_ms(init),
            f"Heartbeat: Initial dead time [{init}] is smaller than deadtime [{dead}]")))
    elif init < 10000:
        ln = _line_of(cf, "initdead")
        cf.notes.append(Finding(f, ln, _text_of(cf, "initdead"), NOTE,
                                f"initdead {format_ms(init)}: Heartbeat warns that an initial "
                                "dead time under 10 s may be too small"))
    ping = cf.ms("deadping")
    if ping is not None and ping <= 2 * keep:
        problems.append(Problem(f, _line_of(cf, "deadping"), expected(
            "deadping", f"more than twice keepalive ({format_ms(keep)})", format_ms(ping))))
    autojoin = cf.last("autojoin")
    if not cf.nodes and (autojoin is None or autojoin.value.lower() != "any"):
        problems.append(Problem(f, None, "no node directives (Heartbeat: no nodes defined); "
                                "expected a 'node NAME ...' line for every cluster node"))
    if not any(m.kind in HEARTBEAT_MEDIA for m in cf.media):
        problems.append(Problem(f, None, "no heartbeat media (Heartbeat: No heartbeat media "
                                "defined); expected ucast lines (or bcast, mcast, serial)"))


def _line_of(cf: HaCf, name: str) -> int | None:
    s = cf.last(name)
    return None if s is None else s.line.number


def _text_of(cf: HaCf, name: str) -> str:
    s = cf.last(name)
    return "" if s is None else s.line.text
