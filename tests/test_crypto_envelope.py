"""corosync 2.x's totemcrypto envelope (totem.crypto.envelope): layout, keys, sizes and
everything a receiver refuses, checked byte by byte with the cryptography package."""

from __future__ import annotations

import hmac as std_hmac
import random

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from totem.crypto.envelope import (
    CIPHER_KEY_BYTES,
    HASHES,
    HEADER,
    CryptoHeader,
    Drop,
    Envelope,
    EnvelopeError,
    check_settings,
    mtu_overhead,
    peek_untrusted_header,
    sec_header_size,
)
from totem.srp.config import SrpConfig
from totem.wire import MCAST_HEADER_SIZE, MembJoin

KEY = bytes(range(128))
OTHER = bytes(range(1, 129))
CIPHERS = [c for c in CIPHER_KEY_BYTES]
HASH_NAMES = [h for h in HASHES if h != "none"]
COMBOS = [(c, h) for c in CIPHERS for h in HASH_NAMES]


def counter_random(start: int = 0):
    """A deterministic salt source: 16-byte big-endian counters."""
    state = [start]

    def rnd(n: int) -> bytes:
        state[0] += 1
        return state[0].to_bytes(n, "big")
    return rnd


def test_header_layout_is_the_2_3_markers_and_zero_pads():
    assert CryptoHeader.sizeof() == 4
    assert HEADER == b"\xfe\xfe\x00\x00"
    assert CryptoHeader.parse(HEADER) == dict(cipher_marker=0xFE, hash_marker=0xFE, pad0=0, pad1=0)


@pytest.mark.parametrize("cipher,hash_", COMBOS)
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 1400])
def test_seal_open_round_trip_and_sizes(cipher, hash_, size):
    env = Envelope(cipher, hash_, KEY, random=counter_random())
    plain = random.Random(size).randbytes(size)
    sealed = env.seal(plain)
    assert sealed[:4] == HEADER
    hlen = HASHES[hash_][1]
    if CIPHER_KEY_BYTES[cipher]:
        assert len(sealed) == 4 + 16 + 16 * (size // 16 + 1) + hlen
        assert size < 8 or plain not in sealed
    else:
        assert sealed == HEADER + plain + sealed[-hlen:]
    assert len(sealed) - size <= sec_header_size(cipher, hash_)
    assert env.open(sealed) == plain


def test_aes_key_is_the_first_bytes_of_the_private_key_and_the_salt_is_the_iv():
    """As corosync 2.x: cipher key = first 32/24/16 bytes, IV = salt, PKCS#7 padding;
    HMAC key = the whole private key, over header + salt + ciphertext."""
    for cipher, klen in (("aes256", 32), ("aes192", 24), ("aes128", 16)):
        env = Envelope(cipher, "sha256", KEY, random=lambda n: b"\x42" * n)
        plain = b"totem message"
        sealed = env.seal(plain)
        salt, ct, mac = sealed[4:20], sealed[20:-32], sealed[-32:]
        assert salt == b"\x42" * 16
        dec = Cipher(algorithms.AES(KEY[:klen]), modes.CBC(salt)).decryptor()
        padded = dec.update(ct) + dec.finalize()
        assert padded == plain + bytes([3]) * 3
        assert mac == std_hmac.digest(KEY, sealed[:-32], "sha256")


def test_only_the_first_128_bytes_of_a_key_count_and_short_keys_are_zero_padded():
    long_key = KEY + b"anything after byte 128"
    a = Envelope("aes256", "sha1", KEY, random=lambda n: bytes(n))
    b = Envelope("aes256", "sha1", long_key, random=lambda n: bytes(n))
    assert a.seal(b"x") == b.seal(b"x")
    short = Envelope("aes256", "sha1", b"0123456789abcdef", random=lambda n: bytes(n))
    sealed = short.seal(b"x")
    dec = Cipher(algorithms.AES(b"0123456789abcdef".ljust(32, b"\0")), modes.CBC(bytes(16))).decryptor()
    assert (dec.update(sealed[20:-20]) + dec.finalize())[:1] == b"x"
    assert sealed[-20:] == std_hmac.digest(b"0123456789abcdef", sealed[:-20], "sha1")


def test_every_packet_gets_a_fresh_salt():
    env = Envelope("aes256", "sha256", KEY)  # os.urandom
    sealed = {env.seal(b"same message") for _ in range(50)}
    assert len(sealed) == 50
    assert len({s[4:20] for s in sealed}) == 50
    # injected randomness makes sealing deterministic (for tests and replays)
    assert Envelope("aes128", "md5", KEY, random=counter_random()).seal(b"m") == \
        Envelope("aes128", "md5", KEY, random=counter_random()).seal(b"m")


def test_settings_checks():
    with pytest.raises(ValueError, match="requires a crypto_hash"):
        check_settings("aes256", "none")
    with pytest.raises(ValueError, match="unknown crypto_cipher"):
        check_settings("3des", "sha1")
    with pytest.raises(ValueError, match="unknown crypto_hash"):
        check_settings("aes256", "sha3")
    with pytest.raises(ValueError, match="empty"):
        Envelope("aes256", "sha1", b"")


def test_corosync_2x_header_size_arithmetic():
    # spec §1.2: aes256 + sha1 estimates 4 + 20 + 16 + 2 x 16 = 72 bytes
    assert sec_header_size("aes256", "sha1") == 72
    assert sec_header_size("none", "none") == 4
    assert sec_header_size("none", "sha256") == 36
    assert sec_header_size("aes128", "sha512") == 4 + 64 + 48
    # 2.x: net_mtu = 1500 - 28 - crypto header - ...: IPv4 28, IPv6 48 bytes of headers
    assert mtu_overhead("aes256", "sha1") == 100
    assert mtu_overhead("aes256", "sha1", ipv6=True) == 120


@pytest.mark.parametrize("cipher,hash_", [(c, h) for c, h in COMBOS])
@pytest.mark.parametrize("ipv6", [False, True])
def test_largest_sealed_datagram_fits_the_mtu(cipher, hash_, ipv6):
    """The frame shrinks as corosync 2.x's net_mtu does, so a full mcast -- even a
    recovery rebroadcast that wraps one in another mcast -- stays within netmtu."""
    for netmtu in (576, 1500, 9000):
        cfg = SrpConfig(netmtu=netmtu, crypto_overhead=mtu_overhead(cipher, hash_, ipv6=ipv6))
        env = Envelope(cipher, hash_, KEY, random=counter_random())
        largest = MCAST_HEADER_SIZE + cfg.frame_max
        ip_udp = 48 if ipv6 else 28
        for size in (largest, largest + MCAST_HEADER_SIZE):
            assert len(env.seal(bytes(size))) + ip_udp <= netmtu, (netmtu, size)


def test_peek_untrusted_header_tells_senders_apart():
    join = MembJoin(1, (1,), (), 4).pack()
    cases = {
        join: Drop.PLAINTEXT,
        b"\xc0\x70\x03\x03" + bytes(20): Drop.PLAINTEXT,
        b"\xff\xff\x00\x00" + bytes(20): Drop.FOREIGN,
        b"\x01\x02" + bytes(20): Drop.FOREIGN,
        b"\x03\x00\x22\xff" + bytes(20): Drop.FOREIGN,
        b"\x99" * 24: Drop.FOREIGN,
        b"\xfe\x01\x00\x00" + bytes(20): Drop.FOREIGN,
        b"\xfe": Drop.TRUNCATED,
    }
    for data, reason in cases.items():
        head = peek_untrusted_header(data)
        assert not head.ours and head.reason is reason, data[:4]
    assert peek_untrusted_header(HEADER + bytes(40)).ours
    assert "corosync 3" in peek_untrusted_header(join).guess


def reasons_of(env: Envelope, data: bytes) -> Drop:
    with pytest.raises(EnvelopeError) as info:
        env.open(data)
    return info.value.reason


def test_receiver_refuses_wrong_key_plaintext_and_short_datagrams():
    env = Envelope("aes256", "sha256", KEY, random=counter_random())
    other = Envelope("aes256", "sha256", OTHER, random=counter_random())
    assert reasons_of(env, other.seal(b"hello")) is Drop.WRONG_KEY
    assert reasons_of(env, MembJoin(1, (1,), (), 4).pack()) is Drop.PLAINTEXT
    assert reasons_of(env, HEADER + bytes(31)) is Drop.TRUNCATED  # no room for the HMAC
    assert reasons_of(env, HEADER + bytes(32)) is Drop.WRONG_KEY
    assert reasons_of(env, b"") is Drop.TRUNCATED


@pytest.mark.parametrize("cipher,hash_", [("aes256", "sha256"), ("none", "sha1"), ("aes128", "md5")])
def test_every_single_bit_flip_and_every_truncation_is_refused(cipher, hash_):
    env = Envelope(cipher, hash_, KEY, random=counter_random())
    sealed = env.seal(b"a totem message of some length....")
    for i in range(len(sealed)):
        for bit in (0, 7):
            bad = bytearray(sealed)
            bad[i] ^= 1 << bit
            with pytest.raises(EnvelopeError):
                env.open(bytes(bad))
    for n in range(len(sealed)):
        with pytest.raises(EnvelopeError):
            env.open(sealed[:n])
    with pytest.raises(EnvelopeError):
        env.open(sealed + b"\0")


def resign(env: Envelope, body: bytes, hash_name: str) -> bytes:
    return body + std_hmac.digest(env.private_key, body, hash_name)


def test_nonzero_pad_bytes_are_checked_only_after_authentication():
    env = Envelope("aes256", "sha256", KEY, random=counter_random())
    sealed = env.seal(b"x")
    body = b"\xfe\xfe\x01\x00" + sealed[4:-32]
    # unauthenticated: a forged pad byte is just a bad HMAC
    assert reasons_of(env, body + sealed[-32:]) is Drop.WRONG_KEY
    # authenticated by a key holder: "features not supported"
    assert reasons_of(env, resign(env, body, "sha256")) is Drop.UNSUPPORTED


def test_authenticated_but_other_cipher_is_wrong_cipher():
    mine = Envelope("aes256", "sha256", KEY)
    # the sender uses no cipher: same key and hash, so the HMAC verifies
    plain_sender = Envelope("none", "sha256", KEY)
    assert reasons_of(mine, plain_sender.seal(b"seventeen bytes!!")) is Drop.WRONG_CIPHER
    # aes128 with the same key: decrypts to garbage with a bad padding (salt fixed so
    # that this one case is deterministic)
    aes128 = Envelope("aes128", "sha256", KEY, random=lambda n: b"\x07" * n)
    assert reasons_of(mine, aes128.seal(b"a message")) is Drop.WRONG_CIPHER


def test_nothing_is_decrypted_or_parsed_before_the_hmac_verifies(monkeypatch):
    env = Envelope("aes256", "sha256", KEY, random=counter_random())
    sealed = env.seal(b"payload")
    bad = sealed[:-1] + bytes([sealed[-1] ^ 1])

    def boom(self, data):
        raise AssertionError("decrypted before authentication")
    monkeypatch.setattr(Envelope, "decrypt_authenticated", boom)
    assert reasons_of(env, bad) is Drop.WRONG_KEY


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_open(data):
    env = Envelope("aes256", "sha1", KEY)
    with pytest.raises(EnvelopeError):
        env.open(data)
    with pytest.raises(EnvelopeError):
        env.open(HEADER + data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.data())
def test_mutated_sealed_datagrams_never_open(plain, data):
    env = Envelope("aes192", "sha384", KEY, random=counter_random())
    sealed = bytearray(env.seal(plain))
    i = data.draw(st.integers(0, len(sealed) - 1))
    sealed[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(EnvelopeError):
        env.open(bytes(sealed))


def test_known_answer():
    """A fixed vector (key bytes 0..127, salt 00..0f), checked independently with
    ``openssl enc -aes-256-cbc -K 0001..1f -iv 0001..0f`` and Python's hmac module."""
    env = Envelope("aes256", "sha1", KEY, random=lambda n: bytes(range(n)))
    sealed = env.seal(b"pytotem")
    assert sealed.hex() == (
        "fefe0000"                                   # header
        "000102030405060708090a0b0c0d0e0f"           # salt = IV
        "00ea63dcdb9bf7ada2b8563cd292adc3"           # AES-256-CBC("pytotem" + 9 x 09)
        "49cfc7f25329cb20bd2d39fb6bfea74e0f7c892c")  # HMAC-SHA1(whole key, all before)
    assert env.open(sealed) == b"pytotem"


def test_envelope_and_key_ring_know_no_totem_dialect():
    """A later corosync 2.x dialect reuses them unchanged: they import no wire format."""
    import subprocess
    import sys
    code = ("import sys, totem.crypto.envelope, totem.crypto.keyring, totem.crypto.keyfile; "
            "print(sorted(m for m in sys.modules if m.startswith(('totem.wire', 'totem.srp', "
            "'totem.stack'))))")
    root = __file__.rsplit("/tests/", 1)[0]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=root)
    assert out.stdout.strip() == "[]"
