"""Crypto in corosync.conf for totemd: keys, key files and their errors, the frame
arithmetic, ``totemd -t`` and ``totemctl keygen``."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from totem.cli import totemctl, totemd
from totem.config import ConfigError, load, parse_text
from totem.crypto.envelope import mtu_overhead
from totem.crypto.keyfile import generate_key, key_id, read_key
from totem.crypto.settings import frame_config, load_crypto
from totem.srp.config import SrpConfig

NODES = "".join(f"\tnode {{\n\t\tring0_addr: 127.0.77.{i}\n\t\tnodeid: {i}\n\t}}\n" for i in (1, 2, 3))


def write_conf(tmp_path, totem_lines: str = "", nodes: str = NODES, mode: int = 0o644) -> str:
    conf = tmp_path / "corosync.conf"
    totem = "".join(f"\t{line}\n" for line in totem_lines.splitlines())
    conf.write_text("totem {\n\tversion: 2\n\tcluster_name: t\n\ttransport: udpu\n" + totem + "}\n"
                    "nodelist {\n" + nodes + "}\n"
                    f"system {{\n\tstate_dir: {tmp_path / 'state'}\n}}\n"
                    "logging {\n\tto_stderr: yes\n\tto_syslog: no\n}\n")
    os.chmod(conf, mode)
    return str(conf)


def key_file(tmp_path, name="authkey", size=256, mode=0o400) -> str:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    os.chmod(path, mode)
    return str(path)


def cfg_of(path: str):
    return load(path, local_node=1)


def config_error(path: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_crypto(cfg_of(path))
    return info.value


def test_key_file_is_read_as_corosync_2x_does(tmp_path):
    k = key_file(tmp_path, size=300)
    c = load_crypto(cfg_of(write_conf(tmp_path, f"crypto_cipher: aes256\ncrypto_hash: sha256\nkeyfile: {k}")))
    assert c.cipher == "aes256" and c.hash == "sha256"
    assert c.primary == open(k, "rb").read()[:128]
    assert c.next is None and c.primary_id == key_id(c.primary)
    assert load_crypto(cfg_of(write_conf(tmp_path, "crypto_cipher: none\ncrypto_hash: none"))) is None


def test_missing_key_file_names_the_line_and_the_fix(tmp_path):
    err = config_error(write_conf(tmp_path, "crypto_cipher: aes256\ncrypto_hash: sha1\n"
                                  f"keyfile: {tmp_path}/nokey"))
    assert (err.line, err.key) == (7, "totem.keyfile")
    assert f"key file {tmp_path}/nokey does not exist" in str(err)
    assert "totemctl keygen -k" in str(err)


def test_short_key_file(tmp_path):
    k = key_file(tmp_path, size=100)
    err = config_error(write_conf(tmp_path, f"crypto_cipher: aes128\ncrypto_hash: md5\nkeyfile: {k}"))
    assert "holds 100 bytes; at least 128 are needed" in str(err)


@pytest.mark.parametrize("mode", [0o444, 0o440, 0o600 | stat.S_IWGRP, 0o604])
def test_key_file_accessible_by_others(tmp_path, mode):
    k = key_file(tmp_path, mode=mode)
    err = config_error(write_conf(tmp_path, f"crypto_cipher: aes256\ncrypto_hash: sha256\nkeyfile: {k}"))
    assert f"accessible by group or others (mode {mode:04o})" in str(err)
    assert f"chmod 400 {k}" in str(err)


def test_default_key_file_and_its_environment_override(tmp_path):
    conf = write_conf(tmp_path, "secauth: on")
    k = key_file(tmp_path)
    c = load_crypto(cfg_of(conf), environ={"COROSYNC_TOTEM_AUTHKEY_FILE": k})
    assert (c.cipher, c.hash, c.primary_source) == ("aes256", "sha256", f"default keyfile {k}")
    if not os.path.exists("/etc/corosync/authkey"):
        err = config_error(conf)
        assert "/etc/corosync/authkey does not exist" in str(err)


def test_inline_key(tmp_path):
    conf = write_conf(tmp_path, "crypto_cipher: aes256\ncrypto_hash: sha256\nkey: "
                      "correct horse battery staple", mode=0o600)
    c = load_crypto(cfg_of(conf))
    assert c.primary == b"correct horse battery staple" and c.primary_source == "totem.key"
    os.chmod(conf, 0o644)
    err = config_error(conf)
    assert "accessible by group or others" in str(err) and "chmod 600" in str(err)
    conf = write_conf(tmp_path, "crypto_cipher: aes256\ncrypto_hash: sha256\nkey: short", mode=0o600)
    assert "at least 16" in str(config_error(conf))


def test_keyfile_next_and_warnings(tmp_path):
    k1, k2 = key_file(tmp_path, "k1"), key_file(tmp_path, "k2")
    conf = write_conf(tmp_path, f"crypto_cipher: aes256\ncrypto_hash: sha256\nkeyfile: {k1}\n"
                      f"keyfile_next: {k2}\nkey: ignored-because-keyfile-wins")
    cfg = cfg_of(conf)
    c = load_crypto(cfg)
    assert c.next == read_key(k2) and c.next_source == f"keyfile_next {k2}"
    assert any("totem.key: ignored: totem.keyfile is set" in w for w in cfg.warnings)
    cfg = cfg_of(write_conf(tmp_path, f"crypto_cipher: none\ncrypto_hash: sha1\nkeyfile: {k1}"))
    assert any("authenticated but not encrypted" in w for w in cfg.warnings)
    cfg = cfg_of(write_conf(tmp_path, f"keyfile_next: {k2}"))
    assert any("keyfile_next: ignored" in w for w in cfg.warnings)


@pytest.mark.parametrize("cipher,hash_,ipv6,frame", [
    ("none", "none", False, 1410),       # plain corosync 3.x udpu: 1500 - 2 x 45
    ("aes256", "sha1", False, 1310),     # 1410 - 28 - (4 + 20 + 16 + 32)
    ("aes256", "sha256", False, 1298),
    ("aes128", "sha512", False, 1266),
    ("none", "sha256", False, 1346),     # 1410 - 28 - (4 + 32)
    ("aes256", "sha256", True, 1278),    # IPv6 headers are 48 bytes
])
def test_frame_shrinks_as_corosync_2x_computes_it(cipher, hash_, ipv6, frame):
    nodes = NODES if not ipv6 else "".join(
        f"\tnode {{\n\t\tring0_addr: fd00::{i}\n\t\tnodeid: {i}\n\t}}\n" for i in (1, 2))
    text = ("totem {\n\tversion: 2\n\ttransport: udpu\n"
            f"\tcrypto_cipher: {cipher}\n\tcrypto_hash: {hash_}\n}}\nnodelist {{\n{nodes}}}\n")
    cfg = parse_text(text, local_node=1, hostname="h", addresses=[], resolver=lambda h: [])
    assert cfg.srp.frame_max == frame
    # the same arithmetic for settings made in code
    if cipher != "none":
        from totem.crypto.settings import CryptoSettings
        srp = frame_config(SrpConfig(), CryptoSettings(cipher, hash_, b"k" * 128), "fd00::1" if ipv6 else "10.0.0.1")
        assert srp.frame_max == frame and srp.crypto_overhead == mtu_overhead(cipher, hash_, ipv6=ipv6)


def test_totemd_t_explains_the_corosync_3_limit(tmp_path, capsys):
    k = key_file(tmp_path)
    conf = write_conf(tmp_path, f"crypto_cipher: aes256\ncrypto_hash: sha256\nkeyfile: {k}")
    assert totemd.main(["-t", "-c", conf, "--node", "2"]) == 0
    out = capsys.readouterr().out
    assert "node 2 of 3" in out
    assert f"Crypto: aes256/sha256, key {key_id(read_key(k))} (keyfile {k})" in out
    assert "corosync 3" in out and "only valid for the Knet transport" in out
    assert "a ring with corosync 3 nodes cannot be encrypted" in out


@pytest.mark.parametrize("totem_lines,message", [
    ("crypto_cipher: aes256", "crypto_cipher requires crypto_hash"),
    ("crypto_cipher: aes256\ncrypto_hash: sha256\nkeyfile: /nonexistent/authkey",
     "key file /nonexistent/authkey does not exist"),
    ("crypto_cipher: blowfish\ncrypto_hash: sha256", "Invalid cipher type"),
])
def test_totemd_t_refuses_crypto_errors_with_exit_8(tmp_path, capsys, totem_lines, message):
    conf = write_conf(tmp_path, totem_lines)
    assert totemd.main(["-t", "-c", conf, "--node", "1"]) == 8
    err = capsys.readouterr().err
    assert err.startswith("parse error in config: ") and message in err
    assert "corosync.conf:5" in err or "corosync.conf:7" in err


def test_totemd_t_real_process_short_and_open_key_files(tmp_path):
    for size, mode, message in ((64, 0o400, "holds 64 bytes"), (256, 0o644, "mode 0644")):
        k = key_file(tmp_path, f"k{size}{mode}", size=size, mode=mode)
        conf = write_conf(tmp_path, f"crypto_cipher: aes256\ncrypto_hash: sha256\nkeyfile: {k}")
        res = subprocess.run([sys.executable, "-m", "totem.cli.totemd", "-t", "-c", conf, "--node", "1"],
                             capture_output=True, text=True, timeout=60)
        assert res.returncode == 8 and message in res.stderr, res.stderr


def test_totemctl_keygen(tmp_path, capsys):
    path = tmp_path / "authkey"
    assert totemctl.main(["keygen", "-k", str(path)]) == 0
    out = capsys.readouterr().out
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o400 and st.st_size == 256
    assert f"key id {key_id(read_key(path))}" in out
    assert totemctl.main(["keygen", "-k", str(path)]) == 1
    assert "exists" in capsys.readouterr().err
    assert totemctl.main(["keygen", "-k", str(tmp_path / "small"), "-s", "64"]) == 1
    assert "at least 128" in capsys.readouterr().err
    assert totemctl.main(["keygen", "-k", str(tmp_path / "nodir" / "k")]) == 1
    assert totemctl.main(["keygen", "-k", str(tmp_path / "k128"), "-s", "128"]) == 0
    assert len(read_key(tmp_path / "k128")) == 128
    # two keys are different
    assert read_key(path) != read_key(tmp_path / "k128")


def test_generate_key_refuses_to_overwrite(tmp_path):
    p = generate_key(tmp_path / "k")
    with pytest.raises(FileExistsError):
        generate_key(p)
