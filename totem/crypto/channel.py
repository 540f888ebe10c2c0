"""Everything crypto between a node's socket and its protocol stack, as pure code.

:class:`SecureChannel` seals outgoing datagrams and opens incoming ones: the envelope
(:mod:`.envelope`), the node's keys and their rotation (:mod:`.keyring`) and the replay
filter (:mod:`.replay`). Every datagram it does not hand on is dropped and counted by
reason (:class:`~totem.crypto.envelope.Drop`), in total and per source; each source is
logged at most once per :data:`LOG_INTERVAL`. Time is passed in; nothing here does I/O.

Only :meth:`SecureChannel.open` is dialect-specific (it parses the authenticated
message with the 3.x codec to check its ring); the envelope and the key ring are not.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Mapping

from ..srp import ConfigurationChanged, ConfigurationKind
from ..stack import MessageReceived
from ..wire import Message, RingId, parse_untrusted
from .envelope import Drop, EnvelopeError
from .keyring import GROUP_KEYS, KeyRing
from .replay import StaleFilter
from .settings import CryptoSettings

LOG_INTERVAL = 60.0
"""A source of dropped datagrams is logged at most once per this many seconds."""
SOURCES_MAX = 1024
"""Sources tracked one by one; beyond, drops are counted under ``"other"`` (with
block_unlisted_ips off, spoofed source addresses must not grow memory without bound)."""
VERIFIED_RECENTLY = 10.0
"""An HMAC failure from a source that sent a valid datagram within this many seconds
counts as ``corrupt``; otherwise as ``wrong_key``."""


@dataclass(frozen=True)
class Opened:
    """An authenticated, fresh datagram: the message and its bytes."""

    msg: Message
    data: bytes
    key: str


class SecureChannel:
    """Seal/open datagrams of one node; drop and count the rest."""

    def __init__(self, nodeid: int, settings: CryptoSettings, nodelist: Mapping[int, str], *,
                 random: Callable[[int], bytes] = os.urandom,
                 parse: Callable[[bytes], Message] = parse_untrusted) -> None:
        self.nodeid = nodeid
        self.settings = settings
        self.keys = KeyRing(nodeid, settings.cipher, settings.hash, settings.primary,
                            settings.next, random=random)
        self.stale = StaleFilter()
        self.parse = parse
        self.nodeid_of: dict[str, int] = {}
        self.set_nodelist(nodelist)
        self.dropped: dict[str, int] = {d.value: 0 for d in Drop}
        self.dropped_by_source: dict[str, dict[str, int]] = {}
        self.key_by_source: dict[str, str] = {}
        self.sealed = 0
        self.opened = 0
        self.logs: list[tuple[str, str]] = []
        """(level, text) lines for the node's log (drained by the node)."""
        self._verified_at: dict[str, float] = {}
        self._logged_at: dict[str, float] = {}

    def set_nodelist(self, nodelist: Mapping[int, str]) -> None:
        """nodeid -> address of every node (a reload may change it)."""
        self.nodeid_of = {addr: n for n, addr in nodelist.items()}

    # -- sending -------------------------------------------------------------------------

    def seal(self, data: bytes) -> bytes:
        self.sealed += 1
        return self.keys.seal(data)

    # -- receiving -----------------------------------------------------------------------

    def open(self, data: bytes, source: str, now: float, ring: RingId) -> Opened | None:
        """The authenticated message, or None (dropped and counted). ``ring`` is this
        node's current ring id. WireError if the authenticated bytes are no message."""
        try:
            plain, kid = self.keys.open(data, self.key_by_source.get(source))
        except EnvelopeError as exc:
            reason, detail = exc.reason, exc.detail
            if reason is Drop.WRONG_KEY:
                reason, detail = self._classify_bad_hmac(data, source, now)
            self._drop(reason, source, now, detail)
            return None
        msg = self.parse(plain)
        self.stale.local_ring(ring)
        why = self.stale.check(msg)
        if why is not None:
            self._drop(Drop.REPLAY, source, now, why)
            return None
        if source in self.key_by_source or len(self.key_by_source) < SOURCES_MAX:
            self._verified_at[source] = now
            self.key_by_source[source] = kid
        self.keys.heard(self.nodeid_of.get(source), kid)
        self._take_key_logs()
        self.opened += 1
        return Opened(msg, plain, kid)

    def _classify_bad_hmac(self, data: bytes, source: str, now: float) -> tuple[Drop, str]:
        other = self.keys.other_hash(data)
        if other is not None:
            return Drop.WRONG_HASH, (f"authenticated with crypto_hash {other}, not "
                                     f"{self.keys.hash}: its configuration differs")
        last = self._verified_at.get(source)
        if last is not None and now - last < VERIFIED_RECENTLY:
            return Drop.CORRUPT, ("the HMAC does not match, though this source sent valid "
                                  "datagrams just before (cut, bit flips or forgery)")
        return Drop.WRONG_KEY, "the HMAC matches none of our keys (another key file?)"

    def _drop(self, reason: Drop, source: str, now: float, detail: str) -> None:
        self.dropped[reason.value] += 1
        if source not in self.dropped_by_source and len(self.dropped_by_source) >= SOURCES_MAX:
            source = "other"
        per = self.dropped_by_source.setdefault(source, {})
        per[reason.value] = per.get(reason.value, 0) + 1
        last = self._logged_at.get(source)
        if last is None or now - last >= LOG_INTERVAL:
            self._logged_at[source] = now
            total = sum(per.values())
            # a few replay drops are normal around membership changes: late datagrams of
            # the ring just left look exactly like replayed ones
            level = "notice" if reason is Drop.REPLAY else "warning"
            self.logs.append((level, f"Dropped a datagram from {source}: {reason.value}: "
                              f"{detail} ({total} dropped from this source so far; logged at "
                              f"most once per {int(LOG_INTERVAL)} s)"))

    # -- the ring above ------------------------------------------------------------------

    def handle_event(self, ev: object) -> None:
        """Feed every stack event; configuration changes and key announcements matter."""
        if isinstance(ev, ConfigurationChanged) and ev.kind is ConfigurationKind.REGULAR:
            self.keys.configuration(ev.members, ev.joined)
        elif isinstance(ev, MessageReceived) and GROUP_KEYS in ev.groups:
            try:
                self.keys.receive_announcement(ev.sender, ev.body)
            except ValueError as exc:
                self.logs.append(("warning", f"Ignored a bad key announcement from node "
                                  f"{ev.sender}: {exc}"))
        self._take_key_logs()

    def announcement(self) -> tuple[tuple[bytes, ...], bytes] | None:
        """(groups, body) to multicast when an announcement is due; call
        :meth:`announced` once the stack took it."""
        body = self.keys.announcement()
        return None if body is None else ((GROUP_KEYS,), body)

    def announced(self) -> None:
        self.keys.announced()

    def reload(self, settings: CryptoSettings) -> str:
        """New key material (same cipher and hash; ValueError otherwise)."""
        if (settings.cipher, settings.hash) != (self.settings.cipher, self.settings.hash):
            raise ValueError(
                f"crypto_cipher/crypto_hash cannot change by reload ({self.settings.cipher}/"
                f"{self.settings.hash} -> {settings.cipher}/{settings.hash}): every node must "
                "be restarted with the new settings")
        self.settings = settings
        self.keys.reload(settings.primary, settings.next)
        self._take_key_logs()
        return settings.describe()

    def _take_key_logs(self) -> None:
        if self.keys.logs:
            self.logs.extend(self.keys.logs)
            self.keys.logs.clear()

    def take_logs(self) -> list[tuple[str, str]]:
        out, self.logs = self.logs, []
        return out

    # -- status --------------------------------------------------------------------------

    def status(self) -> dict:
        st = self.keys.status()
        st.update({
            "sealed": self.sealed, "opened": self.opened,
            "dropped": dict(self.dropped),
            "dropped_by_source": {s: dict(v) for s, v in self.dropped_by_source.items()},
            "key_by_source": dict(self.key_by_source),
        })
        return st
