"""Encrypted rings of real totemd processes, each in its own namespaces: the ring
forms with corosync 2.x's envelope, a node with another key cannot join, and the key
is rotated by editing corosync.conf and reloading (SIGHUP or ``totemctl reload``)
without a membership change."""

from __future__ import annotations

import os
import signal
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
