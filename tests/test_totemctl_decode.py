"""``totemctl decode``: readable and JSON output, exit codes (via totem.cli.totemctl.main)."""

from __future__ import annotations

import json

import pytest

from _vectors import (
    CAPTURES,
    LINK_RAW,
    ipv4_udp,
    path,
    pcap_file,
    short,
    totem_datagrams,
)
from totem.cli.totemctl import main
from totem.wire import (
    Mcast,
    MembCommitToken,
    MembJoin,
    MembMergeDetect,
    OrfToken,
    RingId,
    TokenHoldCancel,
    parse_untrusted,
)

by_capture = pytest.mark.parametrize("capture", CAPTURES, ids=[short(c) for c in CAPTURES])


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(["decode", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def ring(r: RingId) -> dict:
    return {"rep": r.rep, "seq": r.seq}


@by_capture
def test_readable_output_has_one_line_per_datagram_and_a_footer(capsys, capture):
    rc, out, err = run(capsys, path(capture))
    assert rc == 0
    lines = out.splitlines()
    expected = totem_datagrams(capture)
    assert len(lines) == len(expected)
    for line, d in zip(lines, expected):
        assert int(line.split()[0]) == d.frame
        assert f"{d.src} -> {d.dst}" in " ".join(line.split())
    errors = 2 if "recovery" in capture else 0
    assert err == f"-- {len(expected)} datagrams on port 5405, {errors} with decode errors\n"


def test_readable_lines_of_the_spec_examples(capsys):
    rc, out, _ = run(capsys, path("corosync-3.1.7-udpu-2node-join.pcap"))
    assert rc == 0
    lines = {int(line.split()[0]): line for line in out.splitlines()}
    assert "join     from 1 ring_seq 1 proc {1} failed {}" in lines[1]
    assert "commit   ring 1.9 token_seq 1 index 1/2 members {1,2} [1.5:8/8]" in lines[90]
    assert lines[94].endswith("token    ring 1.9 token_seq 0 seq 0 aru -1/1")
    assert lines[62].endswith("merge    ring 1.5 from 1")
    assert lines[123].endswith("mcast    ring 1.9 seq 10 from 1 1 msg: sync BARRIER")
    rc, out, _ = run(capsys, path("corosync-3.1.7-udpu-node-leave-graceful.pcap"))
    leave = [line for line in out.splitlines() if int(line.split()[0]) == 19]
    assert leave and "LEAVE    from 3 ring_seq 22 proc {1,2} failed {3}" in leave[0]
    rc, out, _ = run(capsys, path("corosync-3.1.7-udpu-retransmit.pcap"))
    token = [line for line in out.splitlines() if int(line.split()[0]) == 136]
    assert token[0].endswith("token    ring 1.1f token_seq 1766 seq 40 aru 38/3 rtr 39")
    rc, out, _ = run(capsys, path("corosync-3.1.7-udpu-recovery.pcap"))
    lines = {int(line.split()[0]): line for line in out.splitlines()}
    assert "recovery of [mcast    ring 1.1f seq 44 from 1" in lines[521]
    assert "undecodable (1472 bytes)" in lines[524]


def check_json_record(rec: dict, msg) -> None:
    assert rec["type"] == msg.type.name
    assert rec["nodeid"] == msg.nodeid
    if isinstance(msg, OrfToken):
        assert rec["ring_id"] == ring(msg.ring_id)
        for key in ("seq", "token_seq", "aru", "aru_addr", "backlog", "fcc", "retrans_flg"):
            assert rec[key] == getattr(msg, key), key
        assert rec["rtr_list"] == [{"ring_id": ring(r.ring_id), "seq": r.seq} for r in msg.rtr_list]
    elif isinstance(msg, Mcast):
        assert rec["ring_id"] == ring(msg.ring_id)
        assert (rec["seq"], rec["system_from"], rec["encapsulated"]) == (
            msg.seq, msg.system_from, msg.encapsulated)
        if msg.encapsulated == 1:
            check_json_record(rec["inner"], msg.inner())
            return
        frame = rec["totempg"]
        assert set(frame) == {"msg_count", "fragmented", "continuation", "lengths"}
        assert frame["msg_count"] == len(frame["lengths"]) == len(rec["messages"])
        assert sum(frame["lengths"]) + 8 + 2 * frame["msg_count"] == len(msg.payload)
        last = frame["msg_count"] - 1
        for i, m in enumerate(rec["messages"]):
            assert m["length"] == frame["lengths"][i]
            if i == 0 and frame["continuation"]:
                assert m["piece"] == "continuation"
            elif i == last and frame["fragmented"]:
                assert m["piece"] == "first fragment"
            else:
                assert "error" not in m
                assert len(m["groups"]) == 1
                if m["groups"] == ["sync"]:
                    assert m["sync"] in ("BARRIER", "SERVICE_BUILD")
                    assert m["ring_id"] == ring(msg.ring_id)
                else:
                    assert {"service", "function", "size", "service_name"} <= set(m)
    elif isinstance(msg, MembJoin):
        assert rec["proc_list"] == list(msg.proc_list)
        assert rec["failed_list"] == list(msg.failed_list)
        assert rec["ring_seq"] == msg.ring_seq
        assert rec["system_from"] == msg.system_from
        assert rec["leave"] is msg.is_leave
    elif isinstance(msg, MembCommitToken):
        assert rec["ring_id"] == ring(msg.ring_id)
        assert (rec["token_seq"], rec["memb_index"], rec["addr"]) == (
            msg.token_seq, msg.memb_index, msg.addr)
        assert rec["memb_list"] == [
            {"ring_id": ring(e.ring_id), "aru": e.aru, "high_delivered": e.high_delivered,
             "received_flg": e.received_flg} for e in msg.memb_list]
    elif isinstance(msg, MembMergeDetect):
        assert rec["ring_id"] == ring(msg.ring_id) and rec["system_from"] == msg.system_from
    elif isinstance(msg, TokenHoldCancel):
        assert rec["ring_id"] == ring(msg.ring_id)
    else:  # pragma: no cover
        raise AssertionError(msg)


@by_capture
def test_json_output_is_one_object_per_datagram(capsys, capture):
    rc, out, _ = run(capsys, "--json", path(capture))
    assert rc == 0
    lines = out.splitlines()
    expected = totem_datagrams(capture)
    assert len(lines) == len(expected)
    types = set()
    for line, d in zip(lines, expected):
        rec = json.loads(line)
        assert isinstance(rec, dict)
        assert {"frame", "src", "dst", "type"} <= set(rec)
        assert rec["frame"] == d.frame
        assert rec["src"] == f"{d.src}:{d.sport}" and rec["dst"] == f"{d.dst}:{d.dport}"
        if d.truncated:
            assert rec["type"] is None and "fragmented or truncated" in rec["error"]
            continue
        assert "error" not in rec and "nodeid" in rec
        check_json_record(rec, parse_untrusted(d.payload))
        types.add(rec["type"])
    assert "mcast" in types


def test_json_fields_of_the_spec_examples(capsys):
    def records(name: str) -> dict[int, dict]:
        rc, out, _ = run(capsys, "--json", path(f"corosync-3.1.7-udpu-{name}.pcap"))
        assert rc == 0
        recs = [json.loads(line) for line in out.splitlines()]
        assert len(recs) == len(totem_datagrams(f"corosync-3.1.7-udpu-{name}.pcap"))
        return {r["frame"]: r for r in recs}

    join = records("2node-join")
    token = join[94]
    assert (token["type"], token["seq"], token["token_seq"], token["aru"], token["aru_addr"]) == (
        "orf_token", 0, 0, 0xFFFFFFFF, 1)
    assert token["ring_id"] == {"rep": 1, "seq": 9} and token["rtr_list"] == []
    commit = join[90]
    assert commit["type"] == "memb_commit_token"
    assert (commit["token_seq"], commit["memb_index"], commit["addr"]) == (1, 1, [1, 2])
    assert commit["memb_list"][0] == {"ring_id": {"rep": 1, "seq": 5}, "aru": 8,
                                      "high_delivered": 8, "received_flg": 1}
    barrier = join[123]
    assert barrier["totempg"] == {"msg_count": 1, "fragmented": 0, "continuation": 0, "lengths": [40]}
    assert barrier["messages"] == [{"length": 40, "groups": ["sync"], "sync": "BARRIER",
                                    "ring_id": {"rep": 1, "seq": 9}}]
    cpg = records("cpg-traffic")[119]
    assert cpg["messages"][0]["groups"] == ["a"]
    assert (cpg["messages"][0]["service"], cpg["messages"][0]["function"]) == (2, 3)
    leave = records("node-leave-graceful")[19]
    assert (leave["nodeid"], leave["proc_list"], leave["failed_list"], leave["ring_seq"]) == (
        0, [1, 2], [3], 22)
    assert leave["leave"] is True
    rtr = records("retransmit")[136]
    assert rtr["rtr_list"] == [{"ring_id": {"rep": 1, "seq": 31}, "seq": 39}]
    enc = records("recovery")[521]
    assert enc["encapsulated"] == 1 and enc["inner"]["seq"] == 44
    assert enc["inner"]["ring_id"] == {"rep": 1, "seq": 31}


def test_json_records_keep_their_frame_number(capsys):
    rc, out, _ = run(capsys, "--json", path("corosync-3.1.7-udpu-2node-join.pcap"))
    assert rc == 0
    frames = [json.loads(line)["frame"] for line in out.splitlines()]
    assert frames == [d.frame for d in totem_datagrams("corosync-3.1.7-udpu-2node-join.pcap")]


def test_missing_file_exits_2_with_a_message(capsys, tmp_path):
    missing = tmp_path / "nope.pcap"
    rc, out, err = run(capsys, str(missing))
    assert rc == 2
    assert out == ""
    assert "totemctl decode:" in err and "nope.pcap" in err


def test_not_a_capture_exits_2(capsys, tmp_path):
    bogus = tmp_path / "bogus.pcap"
    bogus.write_bytes(b"hello world, not a capture")
    rc, out, err = run(capsys, str(bogus))
    assert rc == 2 and out == ""
    assert "not a pcap or pcapng file" in err


def test_other_port_selects_nothing_here(capsys):
    rc, out, err = run(capsys, "--port", "5404", path("corosync-3.1.7-udpu-2node-join.pcap"))
    assert rc == 0 and out == ""
    assert err == "-- 0 datagrams on port 5404, 0 with decode errors\n"


def test_undecodable_and_big_endian_datagrams(capsys, tmp_path):
    be_token = OrfToken(5, 6, 5, 0, RingId(1, 9), nodeid=2, byteorder=">").pack()
    records = [
        (0.0, ipv4_udp("10.0.0.1", "10.0.0.2", 5405, 5405, be_token)),
        (0.1, ipv4_udp("10.0.0.1", "10.0.0.2", 5405, 5405, b"\xfe\xfe" + bytes(30))),
        (0.2, ipv4_udp("10.0.0.1", "10.0.0.2", 5405, 9999, b"elsewhere")),
    ]
    f = tmp_path / "mixed.pcap"
    f.write_bytes(pcap_file(records, LINK_RAW))
    rc, out, err = run(capsys, str(f))
    assert rc == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert "token    ring 1.9 token_seq 6 seq 5 aru 5/0" in lines[0]
    assert "undecodable (32 bytes)" in lines[1] and "corosync 2.3/2.4" in lines[1]
    assert err == "-- 2 datagrams on port 5405, 1 with decode errors\n"
    rc, out, _ = run(capsys, "--json", str(f))
    first, second = map(json.loads, out.splitlines())
    assert first["byteorder"] == "big-endian" and first["nodeid"] == 2 and first["seq"] == 5
    assert second["type"] is None and second["error"]
