"""corosync 2.x's totemcrypto envelope as pure code: bytes in, bytes out.

Layout of a sealed datagram (spec totem-wire.md §1.3.2)::

    FE FE 00 00 | salt (16, with a cipher) | data (AES-CBC ciphertext with a cipher) | HMAC

* the 4-byte crypto header (:data:`CryptoHeader`) carries the markers ``0xFE 0xFE`` of
  the 2.3+ format and two pad bytes that must be zero; the real cipher and hash are
  never on the wire: both ends must be configured alike;
* with a cipher, a fresh random 16-byte salt is the CBC IV and the data is padded
  PKCS#7-style to whole blocks;
* the HMAC (of ``crypto_hash``) covers everything before it, header included.

Keys: the private key is at most :data:`PRIVATE_KEY_MAX` bytes (the first 128 bytes of a
key file); the AES key is its first 32/24/16 bytes (zero-padded if shorter), the HMAC
key is the whole private key. No KDF, no per-node keys, as in corosync 2.x.

Receiving follows one rule: nothing but the header markers and the length is looked
at before the HMAC has been verified. The functions that read unauthenticated bytes say
so in their names: :meth:`Envelope.check_untrusted` (markers and length) and
:func:`peek_untrusted_header` (tells plaintext and other corosync versions apart for the
drop counters and logs). :meth:`Envelope.authenticate` checks the HMAC; only then does
:meth:`Envelope.decrypt_authenticated` read the pad bytes and decrypt, and only its
output is ever parsed as a totem message.

This module knows nothing of the totem messages inside: the same envelope serves the
3.x dialect pytotem speaks and a later 2.x dialect unchanged.
"""

from __future__ import annotations

import enum
import os
from dataclasses import dataclass
from typing import Callable

from construct import Int8ub, Struct
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

PRIVATE_KEY_MAX = 128
"""corosync 2.x uses exactly the first 128 bytes of a key file (and at most 128 of totem.key)."""
SALT_SIZE = 16
BLOCK_SIZE = 16
MARKER_2_3 = 0xFE
"""Cipher and hash marker of the corosync 2.3+ format (the real types are not sent)."""

CIPHER_KEY_BYTES = {"none": 0, "aes256": 32, "aes192": 24, "aes128": 16}
"""crypto_cipher -> AES key length in bytes (0: no encryption)."""
HASHES: dict[str, tuple[type[hashes.HashAlgorithm], int] | None] = {
    "none": None,
    "md5": (hashes.MD5, 16),
    "sha1": (hashes.SHA1, 20),
    "sha256": (hashes.SHA256, 32),
    "sha384": (hashes.SHA384, 48),
    "sha512": (hashes.SHA512, 64),
}
"""crypto_hash -> (HMAC digest, digest length)."""

CryptoHeader = Struct(
    "cipher_marker" / Int8ub,
    "hash_marker" / Int8ub,
    "pad0" / Int8ub,
    "pad1" / Int8ub,
)
"""The 4-byte header in front of every sealed datagram (``struct crypto_config_header``)."""
HEADER_SIZE = CryptoHeader.sizeof()
HEADER = CryptoHeader.build(dict(cipher_marker=MARKER_2_3, hash_marker=MARKER_2_3, pad0=0, pad1=0))
"""What every datagram we seal starts with."""
_MARKERS = HEADER[:2]

class Drop(str, enum.Enum):
    """Why a datagram was dropped instead of handed to the protocol."""

    PLAINTEXT = "plaintext"
    """An unencrypted corosync 3.x totem message (a node without crypto, or real corosync 3)."""
    FOREIGN = "foreign"
    """Neither our envelope nor a 3.x message (corosync 2.2, 2.0/1.x, knet or garbage)."""
    TRUNCATED = "truncated"
    """Shorter than the smallest datagram our settings can seal."""
    WRONG_KEY = "wrong_key"
    """The HMAC fails under every key we hold, from a source with no recent valid datagram."""
    WRONG_HASH = "wrong_hash"
    """The HMAC verifies with one of our keys under another crypto_hash."""
    CORRUPT = "corrupt"
    """The HMAC fails from a source whose other datagrams verify (cut, bit flips, forgery)."""
    WRONG_CIPHER = "wrong_cipher"
    """Authenticated, but it does not decrypt with our crypto_cipher."""
    UNSUPPORTED = "unsupported"
    """Authenticated, but the pad bytes announce features this version does not have."""
    REPLAY = "replay"
    """Authenticated, but from a ring that is over: replayed, or late from the ring just
    left (a few around membership changes are normal)."""

    def __str__(self) -> str:
        return self.value


class EnvelopeError(Exception):
    """A datagram that is not accepted; ``reason`` says why."""

    def __init__(self, reason: Drop, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)


@dataclass(frozen=True)
class UntrustedHeader:
    """What the first bytes of a datagram claim, read before any authentication."""

    ours: bool
    """The 2.3+ markers (FE FE): worth an HMAC check."""
    guess: str
    """Who probably sent it, for logs."""
    reason: Drop | None
    """Why it is dropped at once (None when ``ours``)."""


def peek_untrusted_header(data: bytes) -> UntrustedHeader:
    """Classify a datagram by its first bytes. UNAUTHENTICATED: nothing read here is
    trusted; it only decides whether the HMAC is worth checking and what to log."""
    if len(data) < HEADER_SIZE:
        return UntrustedHeader(False, "a datagram too short for any header", Drop.TRUNCATED)
    h = CryptoHeader.parse(data[:HEADER_SIZE])
    if h.cipher_marker == MARKER_2_3 and h.hash_marker == MARKER_2_3:
        return UntrustedHeader(True, "an encrypted node", None)
    first = (h.cipher_marker, h.hash_marker)
    if first in ((0x70, 0xC0), (0xC0, 0x70)):
        return UntrustedHeader(False, "a node without crypto (totemd without crypto_cipher/"
                               "crypto_hash, or corosync 3, which cannot encrypt udpu)",
                               Drop.PLAINTEXT)
    if h.cipher_marker == MARKER_2_3:
        return UntrustedHeader(False, "an encrypted node of another version", Drop.FOREIGN)
    if h.cipher_marker == 0xFF:
        return UntrustedHeader(False, "corosync 2.2", Drop.FOREIGN)
    if h.cipher_marker == 0x01:
        return UntrustedHeader(False, "unencrypted kronosnet", Drop.FOREIGN)
    if h.cipher_marker <= 5:
        return UntrustedHeader(False, "unencrypted corosync 2.0/2.1/1.x", Drop.FOREIGN)
    return UntrustedHeader(False, "encrypted kronosnet/corosync 2.0/2.1/1.x or unknown",
                           Drop.FOREIGN)


def sec_header_size(cipher: str, hash_: str) -> int:
    """corosync 2.x's crypto_sec_header_size: the bytes the envelope may add, as used in
    the MTU arithmetic (header + HMAC, and with a cipher the salt and two blocks)."""
    size = HEADER_SIZE
    spec = HASHES[hash_]
    if spec is not None:
        size += spec[1]
    if CIPHER_KEY_BYTES[cipher]:
        size += SALT_SIZE + 2 * BLOCK_SIZE
    return size


def ip_udp_header_size(ipv6: bool) -> int:
    """IP + UDP header bytes, as corosync 2.x's totemip_udpip_header_size."""
    return 48 if ipv6 else 28


def mtu_overhead(cipher: str, hash_: str, *, ipv6: bool = False) -> int:
    """What corosync 2.x's udpu takes off netmtu before totemsrp: IP/UDP headers plus
    the envelope estimate. The totempg frame shrinks by this much."""
    return ip_udp_header_size(ipv6) + sec_header_size(cipher, hash_)


def check_settings(cipher: str, hash_: str) -> None:
    """ValueError for an unknown cipher or hash, or a cipher without a hash."""
    if cipher not in CIPHER_KEY_BYTES:
        raise ValueError(f"unknown crypto_cipher {cipher!r}")
    if hash_ not in HASHES:
        raise ValueError(f"unknown crypto_hash {hash_!r}")
    if CIPHER_KEY_BYTES[cipher] and HASHES[hash_] is None:
        raise ValueError("crypto_cipher requires a crypto_hash other than none")


class Envelope:
    """Seal and open datagrams with one key and one (crypto_cipher, crypto_hash).

    ``random`` gives the salt (``os.urandom`` by default; tests inject a seeded source).
    """

    def __init__(self, cipher: str, hash_: str, key: bytes, *,
                 random: Callable[[int], bytes] = os.urandom) -> None:
        check_settings(cipher, hash_)
        if not key:
            raise ValueError("empty private key")
        self.cipher = cipher
        self.hash = hash_
        self.private_key = bytes(key[:PRIVATE_KEY_MAX])
        self.random = random
        klen = CIPHER_KEY_BYTES[cipher]
        self._aes = algorithms.AES(self.private_key[:klen].ljust(klen, b"\0")) if klen else None
        spec = HASHES[hash_]
        self.hash_len = spec[1] if spec else 0
        self._mac = hmac.HMAC(self.private_key, spec[0]()) if spec else None
        self.min_size = HEADER_SIZE + self.hash_len + (SALT_SIZE + BLOCK_SIZE if klen else 0)
        """The smallest datagram these settings can seal (an empty message)."""
        self._untrusted_min = HEADER_SIZE + max(self.hash_len, 1)
        """Shorter cannot even carry the header and an HMAC; anything else is worth an
        HMAC check (a length that does not fit our cipher is judged after it)."""

    # -- sending -----------------------------------------------------------------------

    def seal(self, plain: bytes) -> bytes:
        """Header, then salt + AES-CBC ciphertext (or the plaintext), then the HMAC."""
        parts = [HEADER]
        if self._aes is not None:
            salt = self.random(SALT_SIZE)
            if len(salt) != SALT_SIZE:
                raise ValueError("the random source gave a salt of the wrong size")
            pad = BLOCK_SIZE - len(plain) % BLOCK_SIZE
            enc = Cipher(self._aes, modes.CBC(salt)).encryptor()
            parts += (salt, enc.update(plain + bytes((pad,)) * pad), enc.finalize())
        else:
            parts.append(plain)
        body = b"".join(parts)
        if self._mac is None:
            return body
        mac = self._mac.copy()
        mac.update(body)
        return body + mac.finalize()

    # -- receiving ---------------------------------------------------------------------

    def check_untrusted(self, data: bytes) -> None:
        """UNAUTHENTICATED bytes: raise EnvelopeError unless the datagram carries our
        markers and is long enough for the header and an HMAC. The only checks made
        before authentication."""
        if data[:2] != _MARKERS:
            head = peek_untrusted_header(data)
            raise EnvelopeError(head.reason or Drop.FOREIGN, f"probably sent by {head.guess}")
        if len(data) < self._untrusted_min:
            raise EnvelopeError(Drop.TRUNCATED, f"{len(data)} bytes, at least "
                                f"{self._untrusted_min} needed for the header and an HMAC")

    def authenticate(self, data: bytes) -> bool:
        """Whether the trailing HMAC is right for everything before it (constant time)."""
        if self._mac is None:
            return True
        n = len(data) - self.hash_len
        if n < HEADER_SIZE:
            return False
        mac = self._mac.copy()
        mac.update(data[:n])
        try:
            mac.verify(data[n:])
        except InvalidSignature:
            return False
        return True

    def decrypt_authenticated(self, data: bytes) -> bytes:
        """The message inside a datagram :meth:`authenticate` accepted."""
        end = len(data) - self.hash_len
        if data[2] or data[3]:
            raise EnvelopeError(Drop.UNSUPPORTED, "pad bytes of the crypto header are not zero")
        if self._aes is None:
            return data[HEADER_SIZE:end]
        clen = end - HEADER_SIZE - SALT_SIZE
        if clen < BLOCK_SIZE or clen % BLOCK_SIZE:
            raise EnvelopeError(Drop.WRONG_CIPHER, f"{clen} bytes of ciphertext are not whole "
                                "AES blocks (the sender uses another crypto_cipher)")
        salt = data[HEADER_SIZE:HEADER_SIZE + SALT_SIZE]
        dec = Cipher(self._aes, modes.CBC(salt)).decryptor()
        plain = dec.update(data[HEADER_SIZE + SALT_SIZE:end]) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK_SIZE or plain[-pad:] != bytes((pad,)) * pad:
            raise EnvelopeError(Drop.WRONG_CIPHER, "bad padding after decryption (the sender "
                                "uses another crypto_cipher)")
        return plain[:-pad]

    def open(self, data: bytes) -> bytes:
        """The message inside ``data``, or EnvelopeError (the HMAC is checked first)."""
        self.check_untrusted(data)
        if not self.authenticate(data):
            raise EnvelopeError(Drop.WRONG_KEY, "HMAC does not match")
        return self.decrypt_authenticated(data)
