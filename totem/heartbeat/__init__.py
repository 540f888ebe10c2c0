"""Coming from Heartbeat: ha.cf and authkeys to a corosync.conf for totemd.

    result = import_heartbeat(hacf_text, "/etc/ha.d/ha.cf", authkeys_text, "/etc/ha.d/authkeys")
    result.config              # the corosync.conf text, with the reasoning as comments
    result.nodes               # nodeid, name, ring0_addr and where each address came from
    render_report(result, next_steps(result, "/etc/corosync/corosync.conf", True))

Layers: :mod:`.hacf` (ha.cf as Heartbeat 3.0.6 reads it), :mod:`.authkeys`,
:mod:`.haresources` (listed, not translated) and :mod:`.translate` (the mapping and
the report). Every function is pure; ``totemctl import-heartbeat`` reads and writes
the files and generates the key. Problems raise :class:`HeartbeatError`, each naming
file, line and what was expected.
"""

from __future__ import annotations

from typing import Mapping

from .authkeys import AuthKeys, parse_authkeys
from .hacf import HaCf, parse_hacf, parse_msec
from .haresources import ResourceGroup, parse_haresources
from .problems import CARRIED, NOT_CARRIED, NOTE, REFUSED, Finding, HeartbeatError, Problem
from .translate import (
    ImportResult,
    NodePlan,
    Resolver,
    Timers,
    next_steps,
    plan_timers,
    render_report,
    translate,
)

__all__ = [
    "AuthKeys", "CARRIED", "Finding", "HaCf", "HeartbeatError", "ImportResult", "NOT_CARRIED",
    "NOTE", "NodePlan", "Problem", "REFUSED", "ResourceGroup", "Resolver", "Timers",
    "import_heartbeat", "next_steps", "parse_authkeys", "parse_haresources", "parse_hacf",
    "parse_msec", "plan_timers", "render_report", "translate",
]


def import_heartbeat(hacf_text: str, hacf_file: str = "ha.cf", authkeys_text: str | None = None,
                     authkeys_file: str = "authkeys", *, authkeys_mode: int | None = None,
                     haresources_text: str | None = None, haresources_file: str = "haresources",
                     addresses: Mapping[str, str] | None = None, resolver: Resolver | None = None,
                     keyfile: str | None = None, cluster_name: str | None = None) -> ImportResult:
    """Parse the files and translate them; every problem of every file in one
    :class:`HeartbeatError`. Without ``authkeys_text`` the config has no crypto."""
    problems: list[Problem] = []
    cf = authkeys = None
    try:
        cf = parse_hacf(hacf_text, hacf_file)
    except HeartbeatError as exc:
        problems += exc.problems
    if authkeys_text is not None:
        try:
            authkeys = parse_authkeys(authkeys_text, authkeys_file, authkeys_mode)
        except HeartbeatError as exc:
            problems += exc.problems
    if problems:
        raise HeartbeatError(problems)
    assert cf is not None
    groups = None if haresources_text is None else parse_haresources(haresources_text)
    kwargs = {} if keyfile is None else {"keyfile": keyfile}
    result = translate(cf, authkeys, groups, haresources_file=haresources_file,
                       addresses=addresses, resolver=resolver, cluster_name=cluster_name,
                       **kwargs)
    if groups is not None:
        _check_haresources(result, groups, haresources_file)
    return result


def _check_haresources(result: ImportResult, groups: list[ResourceGroup], file: str) -> None:
    """One finding per haresources entry (never translated), naming unknown nodes."""
    names = {p.name for p in result.nodes}
    pcmk = result.hacf.pacemaker_on
    for g in groups:
        text = (f"not translated: {len(g.resources)} resource(s) preferring {g.node}; "
                "re-create them in Pacemaker (see the next steps)")
        if pcmk:
            text = "Heartbeat did not use this file (Pacemaker was on); " + text
        if g.node.lower() not in names:
            text += f"; {g.node} is no node of ha.cf (Heartbeat: Bad nodename)"
        result.findings.append(Finding(file, g.line, " ".join((g.node,) + g.resources)[:70],
                                       NOT_CARRIED, text))
