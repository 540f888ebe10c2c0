"""Encrypted rings of totemd nodes (the trio shell) over real loopback sockets: what
the wire carries, what a node refuses and counts, who can join, and key rotation by
reload without a membership change."""

from __future__ import annotations

import json
import logging
import os
import socket
import struct

import pytest
import trio

from totem.cli import totemctl
from totem.crypto.envelope import HEADER, Envelope
from totem.crypto.keyfile import key_id
from totem.crypto.settings import CryptoSettings
from totem.node import Node, NodeSettings, query
from totem.srp import SrpConfig
from totem.stack import MessageReceived
from totem.wire import MembJoin

PORT = 15471
K1 = bytes(range(128))
K2 = bytes(range(3, 131))
KX = bytes(range(9, 137))
SECRET = b"PYTOTEM-SECRET-PAYLOAD-0123456789"


def members_of(base: int, n: int) -> dict[int, str]:
    return {i: f"127.0.{base}.{i}" for i in range(1, n + 1)}


def make_node(tmp_path, nodeid, members, key=K1, next_key=None, *, cipher="aes256",
              hash_="sha256", nodes=None) -> Node:
    crypto = None if key is None else CryptoSettings(cipher, hash_, key, next_key, "test", "test")
    srp = SrpConfig.derive(nodes or len(members), token=1000)
    return Node(NodeSettings(nodeid=nodeid, members=members, port=PORT, srp=srp,
                             state_dir=str(tmp_path / f"n{nodeid}"), crypto=crypto, sync=False))


async def wait_ring(nodes, members, timeout=10.0):
    with trio.fail_after(timeout):
        while not all(n.stack.srp.members == members and n.stack.srp.state.name == "OPERATIONAL"
                      for n in nodes):
            await trio.sleep(0.02)


def collect(nodes, group=b"t"):
    got = {n.settings.nodeid: [] for n in nodes}
    for n in nodes:
        n.on_event.append(lambda ev, i=n.settings.nodeid: got[i].append(ev.body)
                          if isinstance(ev, MessageReceived) and ev.groups == (group,) else None)
    return got


class LoopbackCapture:
    """What a sniffer on ``lo`` sees of UDP datagrams to PORT (AF_PACKET; needs root),
    the in-process check (interop/test_crypto_cluster.py runs tshark on a real link)."""

    def __init__(self, addresses) -> None:
        self.addresses = {socket.inet_aton(a) for a in addresses}
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self.sock.bind(("lo", 0))
        self.sock.setblocking(False)
        self.payloads: list[bytes] = []

    def drain(self) -> list[bytes]:
        while True:
            try:
                frame = self.sock.recv(65535)
            except BlockingIOError:
                break
            if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
                continue
            ip = frame[14:]
            ihl = (ip[0] & 0x0F) * 4
            if ip[9] != 17:
                continue
            dport = struct.unpack_from(">H", ip, ihl + 2)[0]
            if dport == PORT and ip[16:20] in self.addresses:  # this test's nodes only
                self.payloads.append(ip[ihl + 8:])
        return self.payloads

    def close(self) -> None:
        self.sock.close()


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="AF_PACKET capture needs root")


@needs_root
@pytest.mark.parametrize("crypto", [True, False], ids=["aes256-sha256", "plain-control"])
async def test_the_wire_carries_no_plaintext(tmp_path, crypto):
    base = 71 if crypto else 72
    members = members_of(base, 3)
    cap = LoopbackCapture(members.values())
    try:
        nodes = [make_node(tmp_path, i, members, K1 if crypto else None) for i in members]
        got = collect(nodes)
        async with trio.open_nursery() as nursery:
            for n in nodes:
                await nursery.start(n.run)
            await wait_ring(nodes, (1, 2, 3))
            for k in range(20):
                assert await nodes[k % 3].send([b"t"], SECRET + b"-%d" % k + SECRET * 40)
            with trio.fail_after(10):
                while not all(len(v) == 20 for v in got.values()):
                    await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
        payloads = [p for p in cap.drain()]
    finally:
        cap.close()
    ours = [p for p in payloads if len(p) > 4]
    assert len(ours) > 60
    leaked = [p for p in ours if SECRET in p or b"t\x00" + SECRET[:8] in p]
    if crypto:
        assert not leaked, "a payload crossed the wire in clear"
        assert all(p.startswith(HEADER) for p in ours), "every datagram is sealed"
        assert not any(b"pytotem" in p for p in ours)
        # fragments of the 1.3 KB messages: the crypto frame limit keeps each datagram
        # within the MTU, as corosync 2.x's arithmetic intends
        assert max(map(len, ours)) + 28 <= 1500
    else:
        assert leaked, "control: without crypto the capture does see the payload"


async def test_refused_datagrams_are_counted_logged_once_and_never_disturb_the_ring(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    members = members_of(73, 4)  # node 4 never runs: a listed address with no node
    nodes = [make_node(tmp_path, i, members) for i in (1, 2)]
    recorded: list[bytes] = []
    async with trio.open_nursery() as nursery:
        for n in nodes:
            await nursery.start(n.run)
        await wait_ring(nodes, (1, 2))
        # record what node 2 puts on the wire in this ring (an eavesdropper's capture)
        orig_broadcast, orig_send_to = nodes[1].transport.broadcast, nodes[1].transport.send_to

        async def rec_broadcast(data):
            recorded.append(data)
            await orig_broadcast(data)

        async def rec_send_to(nodeid, data):
            recorded.append(data)
            await orig_send_to(nodeid, data)
        nodes[1].transport.broadcast, nodes[1].transport.send_to = rec_broadcast, rec_send_to
        for k in range(5):
            assert await nodes[1].send([b"t"], b"recorded %d" % k)
        await trio.sleep(0.3)
        nodes[1].transport.broadcast, nodes[1].transport.send_to = orig_broadcast, orig_send_to
        old_ring = nodes[0].stack.srp.ring_id
        assert recorded

        # a new ring: node 3 joins
        n3 = make_node(tmp_path, 3, members)
        await nursery.start(n3.run)
        nodes.append(n3)
        await wait_ring(nodes, (1, 2, 3))
        ring = nodes[0].stack.srp.ring_id
        assert ring != old_ring
        await trio.sleep(0.5)
        c1 = nodes[0].crypto
        before = dict(c1.dropped)
        gather_before = nodes[0].stack.srp.stats["gather_entered"]

        genuine = nodes[1].crypto.seal(MembJoin(2, (1, 2, 3), (), ring.seq, nodeid=2).pack())
        flipped = bytearray(genuine)
        flipped[len(flipped) // 2] ^= 0x10
        attacks = {
            "wrong_key": [Envelope("aes256", "sha256", KX).seal(
                MembJoin(2, (2,), (), ring.seq + 400, nodeid=2).pack())] * 3,
            "wrong_hash": [Envelope("aes256", "sha1", K1).seal(
                MembJoin(2, (2,), (), ring.seq + 400, nodeid=2).pack())] * 2,
            "corrupt": [genuine[:-20], genuine[:40], bytes(flipped)],
            "replay": recorded,
            "plaintext": [MembJoin(2, (2,), (), ring.seq + 400, nodeid=2).pack()] * 4,
        }
        # from node 2's address what a spoofer or the network does to node 2's traffic;
        # from node 4's (listed, silent) what a misconfigured or foreign node sends
        sources = {"corrupt": 2, "replay": 2, "wrong_key": 4, "wrong_hash": 4, "plaintext": 4}
        socks = {}
        for n in (2, 4):
            socks[n] = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks[n].bind((members[n], 0))
        for reason, datagrams in attacks.items():
            for d in datagrams:
                socks[sources[reason]].sendto(d, (members[1], PORT))
                await trio.sleep(0.002)
        for sock in socks.values():
            sock.close()
        with trio.move_on_after(5):
            while any(c1.dropped[r] - before[r] < len(d) for r, d in attacks.items()):
                await trio.sleep(0.02)
        await trio.sleep(1.0)
        delta = {r: c1.dropped[r] - before[r] for r in c1.dropped}
        assert delta == {r: len(attacks.get(r, ())) for r in c1.dropped}, (str(delta), len(recorded))
        for reason, datagrams in attacks.items():
            assert c1.dropped[reason] - before[reason] == len(datagrams), reason
        assert all(n.stack.srp.ring_id == ring and n.stack.srp.members == (1, 2, 3)
                   and n.stack.srp.state.name == "OPERATIONAL" for n in nodes), \
            "no attack disturbed the ring"
        assert nodes[0].stack.srp.stats["gather_entered"] == gather_before
        st = await query(nodes[0].settings.control_path)
        assert st["crypto"]["dropped"]["replay"] == c1.dropped["replay"]
        assert st["crypto"]["dropped_by_source"][members[4]]["plaintext"] == 4
        assert st["crypto"]["dropped_by_source"][members[2]]["replay"] == len(recorded)
        nursery.cancel_scope.cancel()
    for n in (2, 4):
        lines = [r.getMessage() for r in caplog.records
                 if r.getMessage().startswith(f"Dropped a datagram from {members[n]}:")]
        assert len(lines) == 1, lines  # many drops, one line per source per minute


async def test_a_node_with_another_key_or_no_crypto_cannot_join(tmp_path):
    members = members_of(74, 4)
    good = [make_node(tmp_path, i, members) for i in (1, 2)]
    wrong = make_node(tmp_path, 3, members, KX)
    plain = make_node(tmp_path, 4, members, None)
    async with trio.open_nursery() as nursery:
        for n in good:
            await nursery.start(n.run)
        await wait_ring(good, (1, 2))
        ring = good[0].stack.srp.ring_id
        await nursery.start(wrong.run)
        await nursery.start(plain.run)
        await trio.sleep(4.0)  # several token and consensus periods (token 1000)
        assert all(n.stack.srp.ring_id == ring and n.stack.srp.members == (1, 2) for n in good)
        assert wrong.stack.srp.members == (3,) and plain.stack.srp.members == (4,)
        c = good[0].crypto
        assert c.dropped_by_source[members[3]]["wrong_key"] > 0
        assert c.dropped_by_source[members[4]]["plaintext"] > 0
        assert wrong.crypto.dropped_by_source[members[1]]["wrong_key"] > 0
        assert plain.malformed.get(members[1], 0) > 0, "the plain node cannot read sealed data"
        nursery.cancel_scope.cancel()


async def test_key_rotation_by_reload_keeps_the_ring_and_every_message(tmp_path):
    members = members_of(75, 3)
    nodes = [make_node(tmp_path, i, members) for i in members]
    got = collect(nodes)
    sent = 0
    stop = trio.Event()

    async def traffic():
        nonlocal sent
        while not stop.is_set():
            if await nodes[sent % 3].send([b"t"], b"m%d" % sent):
                sent += 1
            await trio.sleep(0.003)

    async def wait_for(cond, timeout=10.0):
        with trio.fail_after(timeout):
            while not cond():
                await trio.sleep(0.01)

    def everyone_seals(kid):
        return lambda: all(n.crypto.keys.send_id == kid and all(
            p.send == kid for p in n.crypto.keys.peers.values()) for n in nodes)

    async with trio.open_nursery() as nursery:
        for n in nodes:
            await nursery.start(n.run)
        await wait_ring(nodes, (1, 2, 3))
        ring = nodes[0].stack.srp.ring_id
        await wait_for(lambda: all(len(n.crypto.keys.peers) == 2 for n in nodes))
        nursery.start_soon(traffic)
        marks = []
        # step 1, node by node: add the new key (keyfile_next) and reload
        for n in nodes:
            await wait_for(lambda: sent >= len(marks) * 20 + 20)
            marks.append(sent)
            n.reload_crypto(CryptoSettings("aes256", "sha256", K1, K2, "a", "b"))
            assert n is nodes[-1] or n.crypto.keys.send_id == key_id(K1), \
                "nobody switches before every member holds the new key"
        await wait_for(everyone_seals(key_id(K2)))
        assert all(n.crypto.keys.holds(key_id(K1)) for n in nodes)
        # step 2, node by node: the new key becomes the only one
        for n in nodes:
            await wait_for(lambda: sent >= len(marks) * 20 + 20)
            marks.append(sent)
            n.reload_crypto(CryptoSettings("aes256", "sha256", K2, None, "a"))
        await wait_for(lambda: all(not n.crypto.keys.holds(key_id(K1)) for n in nodes))
        await wait_for(lambda: sent >= len(marks) * 20 + 20)
        stop.set()
        await wait_for(lambda: all(len(v) == sent for v in got.values()))
        assert got[1] == got[2] == got[3] == [b"m%d" % i for i in range(sent)]
        assert all(n.stack.srp.ring_id == ring for n in nodes), "no membership change"
        assert all(n.crypto.keys.rotation() == "none" for n in nodes)
        assert sum(n.crypto.dropped[r] for n in nodes for r in n.crypto.dropped) == 0
        # an old-key datagram is now a wrong key (or corrupt, from a live node's address)
        before = nodes[0].crypto.dropped["wrong_key"] + nodes[0].crypto.dropped["corrupt"]
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((members[2], 0))
        s.sendto(Envelope("aes256", "sha256", K1).seal(MembJoin(2, (2,), (), ring.seq + 9).pack()),
                 (members[1], PORT))
        s.close()
        await wait_for(lambda: nodes[0].crypto.dropped["wrong_key"]
                       + nodes[0].crypto.dropped["corrupt"] > before, 5)
        nursery.cancel_scope.cancel()
    assert sent >= 140


async def test_reload_and_status_over_the_control_socket(tmp_path, capsys):
    members = members_of(76, 1)
    node = make_node(tmp_path, 1, members)
    reloads = [CryptoSettings("aes256", "sha256", K1, K2, "keyfile k1", "keyfile_next k2"),
               CryptoSettings("aes128", "sha256", K1, None, "keyfile k1")]
    node.reloader = lambda: reloads.pop(0)
    async with trio.open_nursery() as nursery:
        await nursery.start(node.run)
        await wait_ring([node], (1,))
        reply = await query(node.settings.control_path, "reload")
        assert reply["ok"] and key_id(K2) in reply["crypto"]
        with trio.fail_after(5):
            while node.crypto.keys.send_id != key_id(K2):
                await trio.sleep(0.02)
        reply = await query(node.settings.control_path, "reload")
        assert "cannot change by reload" in reply["error"]
        path = str(node.settings.control_path)
        rc = await trio.to_thread.run_sync(totemctl.main, ["status", "--socket", path])
        assert rc == 0
        out = capsys.readouterr().out
        assert f"crypto: aes256/sha256, sealing with key {key_id(K2)}" in out
        assert f"key {key_id(K1)} (primary): held by 1; sealing -" in out
        assert "dropped: plaintext 0, foreign 0, truncated 0, wrong_key 0" in out
        rc = await trio.to_thread.run_sync(totemctl.main, ["status", "--socket", path, "--json"])
        st = json.loads(capsys.readouterr().out)
        assert st["crypto"]["send_key"] == key_id(K2) and rc == 0
        nursery.cancel_scope.cancel()
