"""Operator-facing decoding of totem datagrams: a JSON-ready dict and a readable line.

Field names are those of the wire spec (seq, token_seq, aru, rtr_list, proc_list,
memb_list, ...), so a decode can be read against the spec and against corosync's
source. Everything here works on untrusted bytes and never raises for bad input:
what does not decode is reported in an ``error`` field.
"""

from __future__ import annotations

from typing import Any

from .wire import (
    GROUP_SYNC,
    Mcast,
    MembCommitToken,
    MembJoin,
    MembMergeDetect,
    OrfToken,
    RingId,
    TokenHoldCancel,
    WireError,
    parse_frame_untrusted,
    parse_groups_untrusted,
    parse_service_header_untrusted,
    parse_sync_untrusted,
    parse_untrusted,
)
from .wire.service import Barrier, SyncMessageId, service_name
from .wire.srp import MCAST_HEADER_SIZE


def _ring(r: RingId) -> dict[str, int]:
    return {"rep": r.rep, "seq": r.seq}


def dissect(data: bytes) -> dict[str, Any]:
    """Decode one totem datagram into plain data; ``error`` says what did not decode."""
    try:
        msg = parse_untrusted(data)
    except WireError as exc:
        return {"type": None, "length": len(data), "error": str(exc)}
    return _message(msg, len(data))


def _message(msg: Any, length: int) -> dict[str, Any]:
    out: dict[str, Any] = {"type": msg.type.name, "length": length, "nodeid": msg.nodeid}
    if msg.byteorder != "<":
        out["byteorder"] = "big-endian"
    if isinstance(msg, OrfToken):
        out.update(
            ring_id=_ring(msg.ring_id), seq=msg.seq, token_seq=msg.token_seq, aru=msg.aru,
            aru_addr=msg.aru_addr, backlog=msg.backlog, fcc=msg.fcc, retrans_flg=msg.retrans_flg,
            rtr_list=[{"ring_id": _ring(r.ring_id), "seq": r.seq} for r in msg.rtr_list],
        )
    elif isinstance(msg, Mcast):
        out.update(
            ring_id=_ring(msg.ring_id), seq=msg.seq, system_from=msg.system_from,
            this_seqno=msg.this_seqno, encapsulated=msg.encapsulated,
        )
        if msg.encapsulated == Mcast.ENCAPSULATED:
            try:
                inner = msg.inner()
            except WireError as exc:
                out["error"] = str(exc)
            else:
                out["inner"] = _message(inner, length - MCAST_HEADER_SIZE)
        else:
            out.update(_frame(msg.payload, msg.byteorder))
    elif isinstance(msg, MembMergeDetect):
        out.update(ring_id=_ring(msg.ring_id), system_from=msg.system_from)
    elif isinstance(msg, MembJoin):
        out.update(
            system_from=msg.system_from, ring_seq=msg.ring_seq, proc_list=list(msg.proc_list),
            failed_list=list(msg.failed_list), leave=msg.is_leave,
        )
    elif isinstance(msg, MembCommitToken):
        out.update(
            ring_id=_ring(msg.ring_id), token_seq=msg.token_seq, memb_index=msg.memb_index,
            addr=list(msg.addr),
            memb_list=[
                {"ring_id": _ring(e.ring_id), "aru": e.aru, "high_delivered": e.high_delivered,
                 "received_flg": e.received_flg}
                for e in msg.memb_list
            ],
        )
    elif isinstance(msg, TokenHoldCancel):
        out.update(ring_id=_ring(msg.ring_id))
    return out


def _frame(payload: bytes, order: str) -> dict[str, Any]:
    try:
        frame = parse_frame_untrusted(payload, order)
    except WireError as exc:
        return {"error": f"totempg: {exc}"}
    messages = []
    last = len(frame.items) - 1
    for i, item in enumerate(frame.items):
        if i == 0 and frame.continuation:
            messages.append({"piece": "continuation", "length": len(item)})
        elif i == last and frame.fragmented:
            messages.append({"piece": "first fragment", "length": len(item)})
        else:
            messages.append(_service_message(item, order))
    return {
        "totempg": {
            "msg_count": len(frame.items), "fragmented": frame.fragmented,
            "continuation": frame.continuation, "lengths": frame.lengths,
        },
        "messages": messages,
    }


def _service_message(item: bytes, order: str) -> dict[str, Any]:
    out: dict[str, Any] = {"length": len(item)}
    try:
        groups, at = parse_groups_untrusted(item, order)
        out["groups"] = [g.decode("ascii", "backslashreplace") for g in groups]
        body = item[at:]
        if groups == (GROUP_SYNC,):
            sync = parse_sync_untrusted(body, order)
            out["sync"] = SyncMessageId(sync.header.id).name
            out["ring_id"] = _ring(sync.ring_id)
            if not isinstance(sync, Barrier):
                out["services"] = list(sync.services)
        else:
            header = parse_service_header_untrusted(body, order)
            out.update(service=header.service, service_name=service_name(header.service),
                       function=header.function, size=header.size)
    except WireError as exc:
        out["error"] = str(exc)
    return out


def summary(d: dict[str, Any]) -> str:
    """One readable line for a dissected datagram."""
    t = d.get("type")
    if t is None:
        return f"undecodable ({d['length']} bytes): {d['error']}"

    def ring(r: dict[str, int]) -> str:
        return f"{r['rep']:x}.{r['seq']:x}"

    if t == "orf_token":
        s = (f"token    ring {ring(d['ring_id'])} token_seq {d['token_seq']} seq {d['seq']} "
             f"aru {_seqno(d['aru'])}/{d['aru_addr']}")
        if d["backlog"] or d["fcc"]:
            s += f" backlog {d['backlog']} fcc {d['fcc']}"
        if d["retrans_flg"]:
            s += " retrans"
        if d["rtr_list"]:
            s += " rtr " + ",".join(str(r["seq"]) for r in d["rtr_list"])
        return s
    if t == "mcast":
        s = f"mcast    ring {ring(d['ring_id'])} seq {d['seq']} from {d['system_from']}"
        if "inner" in d:
            inner = d["inner"]
            return s + f" recovery of [{summary(inner).strip()}]"
        f = d.get("totempg")
        if f:
            marks = []
            if f["continuation"]:
                marks.append(f"cont {f['continuation']}")
            if f["fragmented"]:
                marks.append(f"frag {f['fragmented']}")
            s += f" {f['msg_count']} msg" + ("" if f["msg_count"] == 1 else "s")
            if marks:
                s += " (" + ", ".join(marks) + ")"
            parts = [_message_summary(m) for m in d["messages"]]
            s += ": " + "; ".join(parts)
        if "error" in d:
            s += f" ERROR {d['error']}"
        return s
    if t == "memb_join":
        kind = "LEAVE   " if d["leave"] else "join    "
        return (f"{kind} from {d['system_from']} ring_seq {d['ring_seq']} "
                f"proc {_ids(d['proc_list'])} failed {_ids(d['failed_list'])}")
    if t == "memb_commit_token":
        entries = " ".join(
            f"{ring(e['ring_id'])}:{e['aru']}/{e['high_delivered']}{'' if e['received_flg'] else '!'}"
            for e in d["memb_list"][: d["memb_index"]]
        )
        return (f"commit   ring {ring(d['ring_id'])} token_seq {d['token_seq']} "
                f"index {d['memb_index']}/{len(d['addr'])} members {_ids(d['addr'])}"
                + (f" [{entries}]" if entries else ""))
    if t == "memb_merge_detect":
        return f"merge    ring {ring(d['ring_id'])} from {d['system_from']}"
    if t == "token_hold_cancel":
        return f"holdcxl  ring {ring(d['ring_id'])}"
    return t


def _message_summary(m: dict[str, Any]) -> str:
    if "piece" in m:
        return f"[{m['piece']} {m['length']}B]"
    if "error" in m:
        return f"[error: {m['error']}]"
    if "sync" in m:
        extra = f" {m['services']}" if "services" in m else ""
        return f"sync {m['sync']}{extra}"
    return f"{m['service_name']}.{m['function']} {m['size']}B"


def _ids(ids: list[int]) -> str:
    return "{" + ",".join(map(str, ids)) + "}"


def _seqno(v: int) -> str:
    return "-1" if v == 0xFFFFFFFF else str(v)
