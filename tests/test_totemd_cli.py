"""totemd and totemctl as a user runs them: real processes on loopback."""

from __future__ import annotations

import json
import subprocess
import sys

from totem.cli import demo, totemctl


def write_conf(tmp_path, text_nodes: str, extra: str = "") -> str:
    conf = tmp_path / "corosync.conf"
    conf.write_text(
        "totem {\n\tversion: 2\n\tcluster_name: t\n\ttransport: udpu\n" + extra + "}\n"
        "nodelist {\n" + text_nodes + "}\n"
        f"system {{\n\tstate_dir: {tmp_path / 'state'}\n}}\n"
        "logging {\n\tto_stderr: yes\n}\n")
    return str(conf)


NODES = "".join(f"\tnode {{\n\t\tring0_addr: 127.0.41.{i}\n\t\tnodeid: {i}\n\t}}\n" for i in (1, 2, 3))


def run_totemd(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "totem.cli.totemd", *args],
                          capture_output=True, text=True, timeout=30)


def test_totemd_t_accepts_a_valid_config(tmp_path):
    conf = write_conf(tmp_path, NODES)
    res = run_totemd("-t", "-c", conf, "--node", "2")
    assert res.returncode == 0, res.stderr
    assert "node 2 of 3" in res.stdout


def test_totemd_t_refuses_a_bad_line_naming_file_line_and_key(tmp_path):
    conf = write_conf(tmp_path, NODES, extra="\ttoken: soon\n")
    res = run_totemd("-t", "-c", conf, "--node", "1")
    assert res.returncode == 8
    assert "corosync.conf:5" in res.stderr and "totem.token" in res.stderr


def test_totemd_t_refuses_knet_like_corosync_would_not(tmp_path):
    conf = write_conf(tmp_path, NODES).replace("udpu", "knet")
    open(conf, "w").write(open(conf).read().replace("udpu", "knet"))
    res = run_totemd("-t", "-c", conf, "--node", "1")
    assert res.returncode == 8
    assert "knet" in res.stderr


def test_totemd_v():
    res = run_totemd("-v")
    assert res.returncode == 0 and "totemd" in res.stdout


def test_totemctl_status_reports_an_unreachable_daemon(tmp_path, capsys):
    rc = totemctl.main(["status", "--socket", str(tmp_path / "nothing.sock")])
    assert rc == 1
    assert "cannot reach totemd" in capsys.readouterr().err


def test_demo_forms_a_ring_survives_a_kill_and_rejoins():
    lines: list[str] = []
    rc = demo.run(port=15406, token=1000, out=lines.append)
    text = "\n".join(lines)
    assert rc == 0, text
    assert "one ring of three" in text
    assert "new ring of nodes 1 and 2" in text
    assert "node 3 is back in the ring" in text
    assert "Members left: 3" in text and "Members joined: 3" in text


def test_totemctl_status_of_a_running_daemon(tmp_path, capsys):
    one = "\tnode {\n\t\tring0_addr: 127.0.42.1\n\t\tnodeid: 1\n\t}\n"
    conf = write_conf(tmp_path, one, extra="\tinterface {\n\t\tmcastport: 15407\n\t}\n")
    proc = subprocess.Popen([sys.executable, "-m", "totem.cli.totemd", "-f", "-c", conf, "--node", "1", "--ipc", "none"],
                            stderr=subprocess.PIPE, text=True)
    try:
        import time
        deadline = time.monotonic() + 10
        st = None
        while time.monotonic() < deadline:
            rc = totemctl.main(["status", "-c", conf, "--node", "1", "--json"])
            out = capsys.readouterr().out
            if rc == 0:
                st = json.loads(out)
                if st["state"] == "OPERATIONAL":
                    break
            time.sleep(0.1)
        assert st is not None and st["state"] == "OPERATIONAL" and st["members"] == [1]
        assert totemctl.main(["status", "-c", conf, "--node", "1"]) == 0
        assert "Ring ID 1." in capsys.readouterr().out
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert "Completed service synchronization" in err
    assert "Corosync Cluster Engine exiting normally" in err
