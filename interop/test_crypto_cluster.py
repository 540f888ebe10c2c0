"""Encrypted rings of real totemd processes, each in its own namespaces: the ring
forms with corosync 2.x's envelope, a node with another key cannot join, and the key
is rotated by editing corosync.conf and reloading (SIGHUP or ``totemctl reload``)
without a membership change."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from interop.cluster import Cluster
from totem.crypto.keyfile import generate_key, key_id, read_key

TOKEN = 1000
PLAIN = "\tcrypto_cipher: none\n\tcrypto_hash: none\n"


def install_key(c: Cluster, n: int, source, name: str = "authkey") -> str:
    """A copy of key file ``source`` in node ``n``'s directory (what its namespace sees),
    mode 0400 as on a real node."""
    path = c.node(n).dir / name
    path.write_bytes(read_key(source))
    os.chmod(path, 0o400)
    return str(path)


def encrypt(c: Cluster, keys: dict[int, str], extra: str = "") -> None:
    """Switch every node's corosync.conf to aes256/sha256 with its key file."""
    for n, path in keys.items():
        conf = c.node(n).conffile
        text = conf.read_text()
        assert PLAIN in text
        conf.write_text(text.replace(PLAIN, "\tcrypto_cipher: aes256\n\tcrypto_hash: sha256\n"
                                            f"\tkeyfile: {path}\n{extra}"))


def test_encrypted_ring_excludes_a_node_with_another_key(totemd_ok, tmp_path):
    with Cluster(tmp_path, kinds=("totemd",) * 3, token=TOKEN, start=False) as c:
        shared = generate_key(tmp_path / "authkey")
        wrong = generate_key(tmp_path / "otherkey")
        encrypt(c, {n: install_key(c, n, shared) for n in (1, 2)} | {3: install_key(c, 3, wrong)})
        c.start(1)
        c.start(2)
        st = c.wait_ring([1, 2])
        ring = st[1]["ring_id"]
        assert st[1]["crypto"]["send_key"] == key_id(read_key(shared))
        c.wait_log(1, r"Crypto: aes256/sha256, key [0-9a-f]{16} \(keyfile .*authkey\)", 5)
        c.start(3)
        time.sleep(4 * TOKEN / 1000)
        st = {n: c.status(n) for n in (1, 2, 3)}
        assert st[1]["ring_id"] == ring and st[1]["members"] == [1, 2], "the ring was not disturbed"
        assert st[3]["members"] == [3]
        assert st[1]["crypto"]["dropped_by_source"]["198.18.0.3"]["wrong_key"] > 0
        assert st[3]["crypto"]["dropped"]["wrong_key"] > 0
        c.wait_log(1, r"Dropped a datagram from 198\.18\.0\.3: wrong_key", 5)
        # give node 3 the cluster key: it joins
        c.stop(3)
        path = c.node(3).dir / "authkey"
        os.chmod(path, 0o600)
        path.write_bytes(read_key(shared))
        os.chmod(path, 0o400)
        c.start(3)
        c.wait_ring([1, 2, 3])


def test_key_rotation_by_reload_without_a_membership_change(totemd_ok, tmp_path):
    with Cluster(tmp_path, kinds=("totemd",) * 3, token=TOKEN, start=False) as c:
        old_src = generate_key(tmp_path / "authkey")
        new_src = generate_key(tmp_path / "authkey.new")
        old_id, new_id = key_id(read_key(old_src)), key_id(read_key(new_src))
        old = {n: install_key(c, n, old_src) for n in (1, 2, 3)}
        new = {n: install_key(c, n, new_src, "authkey.new") for n in (1, 2, 3)}
        encrypt(c, old)
        c.start_all()
        st = c.wait_ring([1, 2, 3])
        ring = st[1]["ring_id"]
        # step 1: keyfile_next on every node, reloaded one after the other
        for n in (1, 2, 3):
            conf = c.node(n).conffile
            conf.write_text(conf.read_text().replace(f"\tkeyfile: {old[n]}\n",
                                                     f"\tkeyfile: {old[n]}\n\tkeyfile_next: {new[n]}\n"))
            if n == 2:
                os.kill(c.node(n).proc.pid, signal.SIGHUP)
            else:
                res = c.run(n, [sys.executable, "-m", "totem.cli.totemctl", "reload", "--socket",
                                str(c.node(n).control_socket)])
                assert res.returncode == 0 and new_id in res.stdout, res.stderr
            if n < 3:
                time.sleep(0.5)
                assert c.status(1)["crypto"]["send_key"] == old_id, "not before all hold it"
        deadline = time.monotonic() + 10
        while not all(c.status(n)["crypto"]["send_key"] == new_id for n in (1, 2, 3)):
            assert time.monotonic() < deadline, [c.status(n)["crypto"] for n in (1, 2, 3)]
            time.sleep(0.2)
        c.wait_log(1, rf"every member holds key {new_id}; sealing with it", 5)
        # step 2: the new key alone
        for n in (1, 2, 3):
            conf = c.node(n).conffile
            conf.write_text(conf.read_text().replace(f"\tkeyfile: {old[n]}\n\tkeyfile_next: {new[n]}\n",
                                                     f"\tkeyfile: {new[n]}\n"))
            res = c.run(n, [sys.executable, "-m", "totem.cli.totemctl", "reload", "--socket",
                            str(c.node(n).control_socket)])
            assert res.returncode == 0, res.stderr
        deadline = time.monotonic() + 10
        while not all([k["id"] for k in c.status(n)["crypto"]["keys"]] == [new_id] for n in (1, 2, 3)):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        st = c.wait_ring([1, 2, 3])
        assert all(s["ring_id"] == ring for s in st.values()), "no membership change"
        assert all(s["crypto"]["rotation"] == "none" for s in st.values())
        # a reload that would change the cipher is refused, the node goes on
        conf = c.node(1).conffile
        conf.write_text(conf.read_text().replace("crypto_cipher: aes256", "crypto_cipher: aes128"))
        res = c.run(1, [sys.executable, "-m", "totem.cli.totemctl", "reload", "--socket",
                        str(c.node(1).control_socket)])
        assert res.returncode == 1 and "cannot change by reload" in res.stderr
        assert c.status(1)["ring_id"] == ring


MARKER = b"pytotem-plaintext-marker"
_SEND_MARKED = f"""
import trio, cpg
async def main():
    async with cpg.connect() as client:
        group = await client.join(b"wire")
        for i in range(20):
            await group.send({MARKER!r} + b" %d" % i)
        async for event in group:
            if isinstance(event, cpg.Message) and event.data.endswith(b" 19"):
                return
trio.run(main)
"""


def _wire(c: Cluster, name: str) -> tuple[list[bytes], str]:
    """What tshark captures on node 2's link while node 1 multicasts the marker: the
    UDP payloads to port 5405, and the bytes tshark shows of each (hex; its corosync
    dissector knows the 2.x framing only, so the rest of a frame is shown as data)."""
    from totem.capture import read_datagrams

    pcap = c.node(2).dir / f"{name}.pcap"  # the tools run in the node's directory (its /tmp is its own)
    cap = c.popen(2, ["tshark", "-q", "-i", "eth0", "-f", "udp port 5405", "-w", pcap.name],
                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while not pcap.exists() or pcap.stat().st_size == 0:  # dumpcap writes its header when capturing
            assert cap.poll() is None, f"tshark exited with {cap.returncode}"
            assert time.monotonic() < deadline, "tshark did not start capturing"
            time.sleep(0.1)
        time.sleep(0.5)
        res = c.run(1, [sys.executable, "-c", _SEND_MARKED], timeout=30)
        assert res.returncode == 0, res.stderr
        time.sleep(0.5)
    finally:
        cap.terminate()
        try:
            cap.wait(10)
        except subprocess.TimeoutExpired:
            cap.kill()
            cap.wait(5)
    payloads = [d.payload for d in read_datagrams(str(pcap)) if d.dport == 5405]
    shown = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "data.data"],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    return payloads, shown.replace(":", "").lower()


def test_tshark_sees_no_plaintext_payload_on_an_encrypted_ring(totemd_ok, tshark_available, tmp_path):
    """The same CPG messages on a plain ring and on an aes256/sha256 ring: tshark on the
    wire shows them on the first, and only opaque bytes on the second."""
    with Cluster(tmp_path / "plain", kinds=("totemd",) * 3, token=TOKEN) as c:
        c.wait_ring([1, 2, 3])
        payloads, shown = _wire(c, "plain")
    assert any(MARKER in p for p in payloads), "the control run must see the marker in clear"
    assert MARKER.hex() in shown, "tshark shows the marker of the plain ring"
    with Cluster(tmp_path / "aes", kinds=("totemd",) * 3, token=TOKEN, start=False) as c:
        key = generate_key(tmp_path / "authkey")
        encrypt(c, {n: install_key(c, n, key) for n in (1, 2, 3)})
        c.start_all()
        c.wait_ring([1, 2, 3])
        payloads, shown = _wire(c, "aes")
    assert len(payloads) > 40, "tokens and the 20 messages were captured"
    assert not any(MARKER in p for p in payloads)
    assert not any(MARKER[:8] in p for p in payloads)
    assert shown.strip() and MARKER[:8].hex() not in shown, "tshark shows no plaintext payload"
