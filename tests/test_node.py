"""Several totemd nodes (the trio shell around the pure stack) on loopback in one process."""

from __future__ import annotations

import socket

import pytest
import trio

from totem.node import Node, NodeSettings, query
from totem.srp import ConfigurationChanged, ConfigurationKind, SrpConfig
from totem.stack import MessageReceived

PORT = 15405


def settings(tmp_path, nodeid: int, members: dict[int, str], **kw) -> NodeSettings:
    return NodeSettings(nodeid=nodeid, members=members, port=PORT,
                        srp=SrpConfig.derive(len(members), **kw),
                        state_dir=str(tmp_path / f"n{nodeid}"))


def members_of(base: int, n: int) -> dict[int, str]:
    return {i: f"127.0.{base}.{i}" for i in range(1, n + 1)}


async def wait_ring(nodes, members, timeout=10.0):
    with trio.fail_after(timeout):
        while not all(n.stack.srp.members == members and n.stack.srp.state.name == "OPERATIONAL"
                      for n in nodes):
            await trio.sleep(0.02)


async def test_three_nodes_form_a_ring_and_survive_a_graceful_leave(tmp_path):
    members = members_of(31, 3)
    nodes = [Node(settings(tmp_path, i, members)) for i in members]
    regulars: dict[int, list] = {i: [] for i in members}
    for n in nodes:
        n.on_event.append(lambda ev, i=n.settings.nodeid: regulars[i].append(ev)
                          if isinstance(ev, ConfigurationChanged) and ev.kind is ConfigurationKind.REGULAR
                          else None)
    async with trio.open_nursery() as nursery:
        for n in nodes:
            await nursery.start(n.run)
        await wait_ring(nodes, (1, 2, 3))
        ring = nodes[0].stack.srp.ring_id
        assert all(n.stack.srp.ring_id == ring for n in nodes)

        status = await query(nodes[1].settings.control_path)
        assert status["members"] == [1, 2, 3] and status["state"] == "OPERATIONAL"
        assert status["ring_id"] == {"rep": ring.rep, "seq": ring.seq}

        # messages in agreed order over real sockets
        got: dict[int, list[bytes]] = {i: [] for i in members}
        for n in nodes:
            n.on_event.append(lambda ev, i=n.settings.nodeid: got[i].append(ev.body)
                              if isinstance(ev, MessageReceived) else None)
        for k in range(30):
            assert await nodes[k % 3].send([b"t"], b"m%d" % k)
        with trio.fail_after(10):
            while not all(len(v) == 30 for v in got.values()):
                await trio.sleep(0.02)
        assert got[1] == got[2] == got[3]

        t0 = trio.current_time()
        nodes[2].stop()
        await wait_ring(nodes[:2], (1, 2))
        assert trio.current_time() - t0 < 1.0, "a LEAVE is acted on at once"
        nursery.cancel_scope.cancel()
    assert (tmp_path / "n1" / "ringid_1").exists()


async def test_state_dir_lock_stops_a_second_daemon(tmp_path):
    members = members_of(32, 1)
    a = Node(settings(tmp_path, 1, members))
    a.open()
    try:
        b = Node(settings(tmp_path, 1, members))
        with pytest.raises(RuntimeError, match="in use"):
            b.open()
    finally:
        a.close()


async def test_malformed_and_unlisted_datagrams_are_counted_and_dropped(tmp_path):
    members = members_of(33, 2)
    nodes = [Node(settings(tmp_path, i, members)) for i in members]
    async with trio.open_nursery() as nursery:
        for n in nodes:
            await nursery.start(n.run)
        await wait_ring(nodes, (1, 2))
        ring = nodes[0].stack.srp.ring_id
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.33.2", 0))  # a listed address, but garbage
        for payload in (b"\x70\xc0\x03\x00garbage", b"junk", b"\x70\xc0\x03\x09" + bytes(20)):
            s.sendto(payload, ("127.0.33.1", PORT))
        s.close()
        stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        stranger.bind(("127.0.33.9", 0))
        stranger.sendto(b"\x70\xc0\x03\x03" + bytes(40), ("127.0.33.1", PORT))
        stranger.close()
        with trio.fail_after(5):
            while nodes[0].malformed.get("127.0.33.2", 0) < 3 or \
                    nodes[0].transport.stats.rejected_unlisted < 1:
                await trio.sleep(0.02)
        await trio.sleep(0.3)
        assert nodes[0].stack.srp.ring_id == ring, "garbage does not disturb the ring"
        assert nodes[0].stack.srp.state.name == "OPERATIONAL"
        nursery.cancel_scope.cancel()
