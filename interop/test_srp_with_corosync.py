"""The pure SRP core in one ring with real corosync 3.1.7 processes.

A real corosync runs as node 1 on 127.0.0.1; pytotem stacks run as nodes 2 (and 3)
on 127.0.0.2 (and .3), on real UDP sockets, through the test-only shell in
udpu_driver.py. Service synchronisation is not played here (that is totemd's job), so
corosync logs the membership but not "Completed service synchronization".
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from interop.realcorosync import NodeSpec, RealCorosync, udpu_config
from interop.udpu_driver import UdpuDriver
from totem.srp import ConfigurationChanged, ConfigurationKind

NODES = {1: "127.0.0.1", 2: "127.0.0.2", 3: "127.0.0.3"}


def regular_configs(node) -> list[ConfigurationChanged]:
    return [e for _, e in node.events
            if isinstance(e, ConfigurationChanged) and e.kind is ConfigurationKind.REGULAR]


def ring_of(match: re.Match) -> tuple[int, int]:
    rep, seq = match.group(1).split(".")
    return int(rep, 16), int(seq, 16)


def test_example_config_is_accepted_by_corosync(corosync_available, tmp_path):
    """conf/corosync.conf.example passes `corosync -t` once node1 is this host."""
    text = open("conf/corosync.conf.example").read().replace("10.0.0.11", "127.0.0.1")
    conf = tmp_path / "corosync.conf"
    conf.write_text(text)
    res = subprocess.run([corosync_available, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("ours", [[2], [2, 3]], ids=["corosync+1", "corosync+2"])
def test_core_forms_one_ring_with_corosync_and_leaves_gracefully(corosync_available, tmp_path, ours):
    nodelist = {n: NODES[n] for n in [1, *ours]}
    specs = [NodeSpec(n, a) for n, a in nodelist.items()]
    with RealCorosync(tmp_path / "node1", specs) as real, UdpuDriver(nodelist, ours) as drv:
        joined = " ".join(map(str, ours))
        m = real.wait_log(rf"A new membership \(([0-9a-f]+\.[0-9a-f]+)\) was formed\. Members joined: {joined}\b",
                          timeout=20)
        ring = ring_of(m)
        members = tuple(sorted(nodelist))

        def all_in_ring():
            return all(any(c.ring_id == ring and c.members == members for c in regular_configs(n))
                       for n in drv.nodes.values())

        drv.wait_for(all_in_ring, 10, f"pytotem nodes to install ring {ring} with members {members}")
        assert ring[0] == 1, "the lowest nodeid (the real corosync) represents the ring"
        assert not drv.errors

        # graceful leave of our highest node: corosync re-forms at once and logs "left"
        leaving = ours[-1]
        after = len(real.log())
        drv.leave(leaving)
        m2 = real.wait_log(rf"A new membership \(([0-9a-f]+\.[0-9a-f]+)\) was formed\. Members left: {leaving}\b",
                           timeout=3, after=after)
        new_ring = ring_of(m2)
        assert new_ring[1] > ring[1]
        assert "Failed to receive the leave message" not in real.log()[after:]


def test_corosync_crash_is_detected_after_token_plus_consensus(corosync_available, tmp_path):
    """SIGKILL of the real node: our node forms a new ring after token + consensus."""
    nodelist = {1: NODES[1], 2: NODES[2]}
    specs = [NodeSpec(n, a) for n, a in nodelist.items()]
    token = 1000  # keeps the test short; consensus is 1.2 x token
    real = RealCorosync(tmp_path / "node1", specs, token=token)
    from totem.srp import SrpConfig
    with real, UdpuDriver(nodelist, [2], config=SrpConfig.derive(2, token=token)) as drv:
        real.wait_log(r"Members joined: 2\b", timeout=20)
        node = drv.nodes[2]
        drv.wait_for(lambda: any(c.members == (1, 2) for c in regular_configs(node)), 10, "ring {1,2}")
        killed_at = drv.now()
        real.kill()
        drv.wait_for(lambda: regular_configs(node)[-1].members == (2,), 10, "ring {2} after the kill")
        t_new = next(t for t, e in reversed(node.events)
                     if isinstance(e, ConfigurationChanged) and e.kind is ConfigurationKind.REGULAR)
        detected = t_new - killed_at
        # the token may have left node 2 up to one rotation before the kill
        print(f"failure detected after {detected:.3f}s")
        assert 1.0 + 1.2 - 0.3 <= detected <= 1.0 + 1.2 + 0.5, detected


def test_udpu_config_helper_round_trips_through_corosync(corosync_available, tmp_path):
    """The interop harness writes configs that corosync itself accepts."""
    text = udpu_config([NodeSpec(1, "127.0.0.1"), NodeSpec(2, "127.0.0.2")], tmp_path, tmp_path / "log")
    conf = tmp_path / "c.conf"
    conf.write_text(text)
    res = subprocess.run([corosync_available, "-t", "-c", str(conf)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
    assert shutil.which("corosync-cfgtool") is not None
