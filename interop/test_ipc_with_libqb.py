"""libqb IPC against the real thing: libcpg.so.4 against our server, our client against
corosync 3.1.7. No mocks; the programs that run in the other namespaces are in
interop/ipc_libqb_driver.py.

Abstract socket names such as ``@cpg`` belong to a network namespace, so our server
runs in a private one (``unshare --net``) where no corosync owns ``cpg``. Our client
must see corosync's private /dev/shm, so it runs in corosync's mount namespace
(``nsenter --mount``); corosync itself shares the host's network namespace, as in the
other interop tests (which the ``corosync`` xdist group keeps from running together).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from interop.realcorosync import NodeSpec, RealCorosync

pytestmark = pytest.mark.xdist_group("corosync")

ROOT = Path(__file__).resolve().parents[1]
DRIVER = str(ROOT / "interop" / "ipc_libqb_driver.py")
NODEID = 0x1234567
CS_OK = 1


def lines(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("transport", ["shm", "socket"])
def test_real_libcpg_against_our_server(corosync_available, transport):
    res = subprocess.run(["unshare", "--net", sys.executable, DRIVER, "serve-libcpg", transport],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-3000:]
    runs = lines(res.stdout)
    assert [r["user"] for r in runs] == [None, 65534]
    for run in runs:
        client, server = run["client"], run["server"]
        assert client is not None, run["stderr"]
        uid = run["user"] or 0
        assert client["uid"] == uid
        assert (client["initialize"], client["fd_get"], client["local_get"], client["finalize"]) \
            == (CS_OK, CS_OK, CS_OK, CS_OK)
        assert client["nodeid"] == NODEID
        assert server[0] == {"connect": server[0]["connect"], "service": "cpg", "uid": uid,
                             "pid": client["pid"]}
        assert [(e["request"], e["size"]) for e in server if "request" in e] == [(4, 16), (8, 16)]
        assert all(e["dir_uid"] == uid and e["dir_mode"] == 0o770 for e in server if "request" in e)
        assert server[-1] == {"disconnect": server[0]["connect"]}
        assert run["left_in_dev_shm"] == []
        # Pacemaker's authenticity check reads SO_PEERCRED of the fd cpg_fd_get returns:
        # our server (root) with shm; nobody (pid 0, uid -1) with the socket transport.
        if transport == "shm":
            assert client["peercred"] == [run["server_pid"], 0, 0]
        else:
            assert client["peercred"] == [0, 2**32 - 1, 2**32 - 1]


def test_our_client_against_real_corosync(corosync_available, tmp_path):
    real = RealCorosync(tmp_path / "node1", [NodeSpec(1, "127.0.0.1")])
    real.start()
    proc = None
    try:
        real.wait_log(r"A new membership \([0-9a-f.]+\) was formed", timeout=30)
        assert real.proc is not None
        proc = subprocess.Popen(["nsenter", "--target", str(real.proc.pid), "--mount",
                                 sys.executable, DRIVER, "corosync-client"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        results = json.loads(proc.stdout.readline() or "null")
        assert results is not None, proc.stderr.read()[-3000:] if proc.stderr else ""
        assert json.loads(proc.stdout.readline()) == {"waiting": True}
        real.kill()
        final = json.loads(proc.stdout.readline())
        assert proc.wait(timeout=30) == 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        real.stop()

    assert results["transport"] == "shm" and results["max_msg_size"] == 1024 * 1024
    assert results["server"]["comm"] == "corosync" and results["server"]["uid"] == 0
    assert results["local_get"] == [7, 32, CS_OK, 1]  # id, size, error, nodeid 1
    assert results["join"] == [0, 24, CS_OK]
    confchg = results["confchg"]
    me = [1, confchg["client_pid"]]
    assert (confchg["id"], confchg["group"]) == (4, "pytotem-ipc-interop")
    assert (confchg["members"], confchg["left"], confchg["joined"]) == (1, 0, 1)
    assert confchg["entries"] == [me + [0], me + [1]]  # member, then joined (reason JOIN)
    assert confchg["size"] == 184 + 24 * 2
    assert results["cmap_len"] == [2, 40, CS_OK, len("pytotem-interop") + 1, 11]  # STRING
    assert results["cmap_get"] == [2, 40 + 16, CS_OK, "pytotem-interop\0"]
    assert results["cmap_missing"] == [2, 40, 12]  # NOT_EXIST
    print(f"our client -> corosync cpg LOCAL_GET round trip: {results['rtt_us']:.0f} us")
    # a receive_event waiting when corosync dies ends at once with ConnectionClosed
    assert final["result"].startswith("closed:") and final["after"] == "closed"
    assert final["seconds"] < 5
