"""The crypto layer between socket and stack as pure code (totem.crypto.channel and
totem.crypto.replay): every refused datagram is dropped, counted per reason and per
source, logged at most once per source per interval, and never parsed unless
authenticated."""

from __future__ import annotations

import pytest

from totem.crypto.channel import LOG_INTERVAL, VERIFIED_RECENTLY, SecureChannel
from totem.crypto.envelope import Envelope
from totem.crypto.keyfile import key_id
from totem.crypto.keyring import GROUP_KEYS, KeyRing
from totem.crypto.replay import StaleFilter
from totem.crypto.settings import CryptoSettings
from totem.srp import ConfigurationChanged, ConfigurationKind
from totem.stack import MessageReceived
from totem.wire import (
    Mcast,
    MembCommitToken,
    MembEntry,
    MembJoin,
    MembMergeDetect,
    OrfToken,
    RingId,
    TokenHoldCancel,
    parse_untrusted,
)

K1 = bytes(range(128))
K2 = bytes(range(7, 135))
NODES = {1: "10.0.0.1", 2: "10.0.0.2", 3: "10.0.0.3"}
R1 = RingId(1, 8)
R2 = RingId(1, 12)


def channel(**kw) -> SecureChannel:
    return SecureChannel(1, CryptoSettings("aes256", "sha256", K1), NODES, **kw)


def sealer(key=K1, cipher="aes256", hash_="sha256") -> Envelope:
    return Envelope(cipher, hash_, key)


def token(ring=R2, sender=2, seq=5) -> bytes:
    return OrfToken(seq=seq, token_seq=seq, aru=seq, aru_addr=1, ring_id=ring, nodeid=sender).pack()


def test_a_genuine_datagram_is_opened_parsed_and_handed_on():
    ch = channel()
    data = token()
    opened = ch.open(sealer().seal(data), "10.0.0.2", 0.0, R2)
    assert opened is not None and opened.data == data
    assert isinstance(opened.msg, OrfToken) and opened.key == key_id(K1)
    assert ch.opened == 1 and sum(ch.dropped.values()) == 0
    assert ch.seal(data)[:4] == b"\xfe\xfe\x00\x00"


def test_each_reason_is_counted_in_total_and_per_source():
    ch = channel()
    src = "10.0.0.2"
    ok = sealer().seal(token())
    cases = [
        (MembJoin(2, (2,), (), 4, nodeid=2).pack(), "plaintext"),       # an unencrypted node
        (b"\xff\xff\x00\x00" + bytes(60), "foreign"),                    # corosync 2.2
        (b"\xfe\xfe\x00\x00" + bytes(5), "truncated"),
        (sealer(K2).seal(token()), "wrong_key"),                          # another key file
        (sealer(hash_="sha1").seal(token()), "wrong_hash"),               # another crypto_hash
        (sealer(cipher="none").seal(token()), "wrong_cipher"),            # another crypto_cipher
    ]
    for data, reason in cases:
        assert ch.open(data, src, 0.0, R2) is None
        assert ch.dropped[reason] == 1, reason
    assert ch.open(ok, src, 1.0, R2) is not None
    # the source has just sent valid datagrams: a failing HMAC now means damage
    assert ch.open(ok[:-16], src, 2.0, R2) is None                       # truncated in transit
    flipped = bytearray(ok)
    flipped[30] ^= 0x04
    assert ch.open(bytes(flipped), src, 3.0, R2) is None                 # bit flip
    assert ch.dropped["corrupt"] == 2
    # long after the last valid datagram, the same failure reads as a wrong key
    assert ch.open(bytes(flipped), src, 3.0 + VERIFIED_RECENTLY + 1, R2) is None
    assert ch.dropped["wrong_key"] == 2
    assert ch.dropped_by_source[src] == {"plaintext": 1, "foreign": 1, "truncated": 1,
                                         "wrong_key": 2, "wrong_hash": 1, "wrong_cipher": 1,
                                         "corrupt": 2}
    st = ch.status()
    assert st["dropped"]["corrupt"] == 2 and st["dropped_by_source"][src]["corrupt"] == 2


def test_logged_at_most_once_per_source_per_interval():
    ch = channel()
    plain = MembJoin(2, (2,), (), 4, nodeid=2).pack()
    for i in range(100):
        ch.open(plain, "10.0.0.2", i * 0.5, R2)          # 50 s of drops
    ch.open(plain, "10.0.0.3", 1.0, R2)
    logs = ch.take_logs()
    assert [t for _, t in logs if "10.0.0.2" in t] and len([t for _, t in logs if "10.0.0.2" in t]) == 1
    assert len([t for _, t in logs if "10.0.0.3" in t]) == 1
    assert "plaintext" in logs[0][1] and "corosync 3" in logs[0][1]
    ch.open(plain, "10.0.0.2", LOG_INTERVAL + 0.1, R2)
    later = ch.take_logs()
    assert len(later) == 1 and "(101 dropped from this source so far" in later[0][1]
    assert ch.dropped["plaintext"] == 102


def test_unauthenticated_bytes_are_never_parsed():
    calls = []

    def parse(data):
        calls.append(data)
        return parse_untrusted(data)
    ch = channel(parse=parse)
    for data in (sealer(K2).seal(token()), MembJoin(2, (2,), (), 4).pack(), b"\xfe\xfe\0\0" + bytes(80)):
        assert ch.open(data, "10.0.0.2", 0.0, R2) is None
    assert calls == []
    assert ch.open(sealer().seal(token()), "10.0.0.2", 0.0, R2) is not None
    assert calls == [token()]


def test_replays_from_rings_that_are_over_are_dropped():
    ch = channel()
    old_mcast = sealer().seal(Mcast(2, 3, R1, b"old frame", nodeid=2).pack())
    old_merge = sealer().seal(MembMergeDetect(2, R1, nodeid=2).pack())
    old_join = sealer().seal(MembJoin(2, (1, 2), (), R1.seq, nodeid=2).pack())
    # recorded while ring R1 was current: all fine then
    for d in (old_mcast, old_merge, old_join):
        assert ch.open(d, "10.0.0.2", 0.0, R1) is not None
    # the ring moved on to R2, and node 2 has been heard in R2
    assert ch.open(sealer().seal(token(R2, 2)), "10.0.0.2", 1.0, R2) is not None
    for d in (old_mcast, old_merge, old_join):
        assert ch.open(d, "10.0.0.2", 2.0, R2) is None
    assert ch.dropped["replay"] == 3
    # what R2 needs still passes
    assert ch.open(sealer().seal(Mcast(2, 4, R2, b"new", nodeid=2).pack()), "10.0.0.2", 3.0, R2)
    assert ch.open(sealer().seal(MembJoin(2, (1, 2), (), R2.seq, nodeid=2).pack()),
                   "10.0.0.2", 3.0, R2)
    logs = ch.take_logs()
    assert logs[0][0] == "notice" and "replay" in logs[0][1]


def test_stale_filter_rules():
    f = StaleFilter()
    f.local_ring(R1)
    assert f.check(parse_untrusted(token(R1, 2))) is None
    f.local_ring(R2)
    assert "which is over" in f.check(parse_untrusted(token(R1, 3)))
    assert "which is over" in f.check(parse_untrusted(TokenHoldCancel(R1, nodeid=3).pack()))
    # per sender: never a lower ring seq than already heard from it
    assert f.check(parse_untrusted(MembJoin(3, (3,), (), 20).pack())) is None
    assert "lower than" in f.check(parse_untrusted(MembJoin(3, (3,), (), 16).pack()))
    assert "lower than" in f.check(parse_untrusted(MembMergeDetect(3, RingId(3, 16)).pack()))
    assert f.check(parse_untrusted(MembMergeDetect(3, RingId(3, 20)).pack())) is None
    # a LEAVE (header nodeid 0) is judged by its system_from
    assert f.check(parse_untrusted(MembJoin(3, (3,), (3,), 20, nodeid=0).pack())) is None
    # a foreign ring never seen is not stale (other partitions merge through it)
    assert f.check(parse_untrusted(MembMergeDetect(4, RingId(4, 4)).pack())) is None
    # commit tokens carry the ring being formed: only older than the current ring is stale
    entry = [MembEntry(R2, 0, 0, 1)]
    ct = MembCommitToken(0, RingId(1, 16), 0, [1], entry, nodeid=1)
    assert f.check(parse_untrusted(ct.pack())) is None
    ct_cur = MembCommitToken(0, R2, 1, [1], entry, nodeid=1)
    assert f.check(parse_untrusted(ct_cur.pack())) is None     # the second rotation
    ct_old = MembCommitToken(0, RingId(1, 4), 0, [1], entry, nodeid=1)
    assert "older than the current ring" in f.check(parse_untrusted(ct_old.pack()))
    ct_r1 = MembCommitToken(0, R1, 0, [1], entry, nodeid=1)
    assert "which is over" in f.check(parse_untrusted(ct_r1.pack()))


def announce(ch: SecureChannel, sender: int, body: bytes) -> None:
    ch.handle_event(MessageReceived(sender, (GROUP_KEYS,), body, R2, R2))


def test_rotation_through_events_and_reload():
    ch = channel()
    ch.handle_event(ConfigurationChanged(ConfigurationKind.REGULAR, R2, (1, 2), (), (2,)))
    groups, body = ch.announcement()
    assert groups == (GROUP_KEYS,)
    ch.announced()
    assert ch.announcement() is None
    announce(ch, 1, body)
    other = KeyRing(2, "aes256", "sha256", K1, K2)
    other.configuration((1, 2))
    announce(ch, 2, other.announcement())
    # reload with the new key: announce again; node 2 holds K2 too -> switch
    text = ch.reload(CryptoSettings("aes256", "sha256", K1, K2, "keyfile a", "keyfile_next b"))
    assert key_id(K2) in text
    assert ch.keys.send_id == key_id(K2)
    assert ch.announcement() is not None
    assert any("sealing with it" in t for _, t in ch.take_logs())
    with pytest.raises(ValueError, match="cannot change by reload"):
        ch.reload(CryptoSettings("aes128", "sha256", K1))
    # a bad announcement is logged, not fatal
    announce(ch, 2, b"garbage")
    assert any("bad key announcement" in t for _, t in ch.take_logs())


def test_spoofed_sources_do_not_grow_memory_without_bound():
    ch = channel()
    plain = MembJoin(2, (2,), (), 4).pack()
    for i in range(1500):
        ch.open(plain, f"10.9.{i // 256}.{i % 256}", 0.0, R2)
    assert len(ch.dropped_by_source) == 1025
    assert ch.dropped_by_source["other"]["plaintext"] == 1500 - 1024
    assert len(ch.take_logs()) == 1025
    assert ch.dropped["plaintext"] == 1500
