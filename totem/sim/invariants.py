"""The promises of the ring, checked on what a simulation recorded.

Extended virtual synchrony as Totem gives it: unique rings that all their members
agree on, at-most-once and agreed-order delivery, the same messages for nodes that
move together from one configuration to the next, a transitional configuration
before each regular one, self-delivery, integrity, and liveness once faults stop.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from ..srp import ConfigurationKind, State
from .cluster import SimResult

MsgId = tuple[int, int, int]


@dataclass(frozen=True)
class Violation:
    kind: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.detail}"


def check(result: SimResult) -> list[Violation]:
    """Every invariant; an empty list means the run kept all promises."""
    out: list[Violation] = []
    out += _integrity(result)
    out += _rings(result)
    out += _at_most_once(result)
    out += _agreed_order(result)
    out += _transitional_first(result)
    out += _same_set(result)
    out += _self_delivery(result)
    out += _liveness(result)
    return out


def _integrity(r: SimResult) -> list[Violation]:
    out = [Violation("integrity", c) for c in r.corrupt[:10]]
    for key, rec in r.records.items():
        for entry in rec.history:
            if entry[0] == "msg" and entry[1] not in r.sent:
                out.append(Violation("integrity", f"node {key} delivered {entry[1]}, which was never sent"))
                break
    return out


def _rings(r: SimResult) -> list[Violation]:
    out = []
    members_of: dict = {}
    for key, rec in r.records.items():
        last = None
        for entry in rec.history:
            if entry[0] != "conf" or entry[1] is not ConfigurationKind.REGULAR:
                continue
            ring, members = entry[2], frozenset(entry[3])
            if ring in members_of and members_of[ring] != members:
                out.append(Violation("ring agreement",
                                     f"ring {ring} installed with members {sorted(members_of[ring])} "
                                     f"and {sorted(members)} (node {key})"))
            members_of.setdefault(ring, members)
            if key[0] not in members:
                out.append(Violation("ring agreement", f"node {key} installed ring {ring} without itself"))
            if last is not None and ring.seq <= last.seq:
                out.append(Violation("ring order", f"node {key} installed ring {ring} after {last}"))
            last = ring
    return out


def _deliveries(rec) -> list[MsgId]:
    return [e[1] for e in rec.history if e[0] == "msg"]


def _at_most_once(r: SimResult) -> list[Violation]:
    out = []
    for key, rec in r.records.items():
        seen: set = set()
        for m in _deliveries(rec):
            if m in seen:
                out.append(Violation("at most once", f"node {key} delivered {m} twice"))
                break
            seen.add(m)
    return out


def _agreed_order(r: SimResult) -> list[Violation]:
    """Any two incarnations deliver the messages they have in common in the same order."""
    out = []
    lists = {k: _deliveries(rec) for k, rec in r.records.items()}
    pos = {k: {m: i for i, m in enumerate(v)} for k, v in lists.items()}
    keys = sorted(lists)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            pb = pos[b]
            common = [m for m in lists[a] if m in pb]
            order_b = [pb[m] for m in common]
            if any(x >= y for x, y in zip(order_b, order_b[1:])):
                for x, y, m1, m2 in zip(order_b, order_b[1:], common, common[1:]):
                    if x >= y:
                        out.append(Violation("agreed order",
                                             f"node {a} delivered {m1} before {m2}, node {b} the other way"))
                        break
    return out


def _straddling(r: SimResult) -> set[MsgId]:
    """Messages whose fragments were ordered in different rings somewhere."""
    return {e[1] for rec in r.records.values() for e in rec.history if e[0] == "msg" and e[2]}


def _segments(rec, exclude: set[MsgId]) -> list[tuple]:
    """(regular ring, messages delivered in it and its transitional, next regular ring)."""
    segs = []
    current = None
    msgs: list[MsgId] = []
    for e in rec.history:
        if e[0] == "msg":
            if e[1] not in exclude:
                msgs.append(e[1])
        elif e[1] is ConfigurationKind.REGULAR:
            ring = e[2]
            if current is not None:
                segs.append((current, frozenset(msgs), ring))
            current = ring
            msgs = []
    return segs


def _same_set(r: SimResult) -> list[Violation]:
    """Nodes that install the same two consecutive regular rings delivered the same messages in the first.

    Checked for whole messages ordered within one ring. A message fragmented across
    a configuration change cannot be reassembled by nodes that joined after its first
    fragment (corosync's totempg behaves the same); ordering and at-most-once still
    apply to it.
    """
    out = []
    groups: dict = defaultdict(list)
    exclude = _straddling(r)
    for key, rec in r.records.items():
        for ring, msgs, nxt in _segments(rec, exclude):
            groups[(ring, nxt)].append((key, msgs))
    for (ring, nxt), members in groups.items():
        first_key, first = members[0]
        for key, msgs in members[1:]:
            if msgs != first:
                diff = sorted(first ^ msgs)[:5]
                out.append(Violation("same set", f"nodes {first_key} and {key} moved from ring {ring} to "
                                                 f"{nxt} but delivered different messages in {ring}, "
                                                 f"e.g. {diff}"))
    return out


def _transitional_first(r: SimResult) -> list[Violation]:
    out = []
    for key, rec in r.records.items():
        confs = [e for e in rec.history if e[0] == "conf"]
        prev_regular = None
        for i, e in enumerate(confs):
            if e[1] is ConfigurationKind.REGULAR:
                before = confs[i - 1] if i else None
                if before is None or before[1] is not ConfigurationKind.TRANSITIONAL or before[2] != e[2]:
                    out.append(Violation("transitional first",
                                         f"node {key} installed regular ring {e[2]} without a transitional one"))
                    break
                trans = set(before[3])
                if not trans <= set(e[3]) or (prev_regular is not None and not trans <= set(prev_regular[3])):
                    out.append(Violation("transitional first",
                                         f"node {key}: transitional members {sorted(trans)} not in both "
                                         f"the old and the new ring"))
                    break
                prev_regular = e
    return out


def _self_delivery(r: SimResult) -> list[Violation]:
    """What a node sent, it delivered itself, unless it went down before the end."""
    out = []
    for key, rec in r.records.items():
        if not rec.alive:
            continue
        own = {m for m in _deliveries(rec) if m[:2] == key}
        missing = [m for m in rec.sent if m not in own]
        if missing:
            out.append(Violation("self delivery", f"node {key} never delivered {len(missing)} of its own "
                                                   f"messages, first {missing[0]}"))
    return out


def _liveness(r: SimResult) -> list[Violation]:
    up = r.up_at_end
    if not up:
        return []
    states = {n: s for n, s in r.final.items()}
    rings = {s[1] for s in states.values()}
    bad = [n for n, s in states.items() if s[0] is not State.OPERATIONAL or set(s[2]) != up]
    if len(rings) != 1 or bad:
        desc = "; ".join(f"n{n} {s[0].name} ring {s[1]} members {list(s[2])}" for n, s in sorted(states.items()))
        return [Violation("liveness", f"{r.end_at - r.heal_at:.2f}s after healing the nodes are not one ring: "
                                      f"{desc}")]
    return []
