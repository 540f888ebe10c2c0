"""Timers and constants of the Totem SRP, with corosync 3.1.7's defaults and derived values."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

HZ_MS = 10
"""corosync's 1000/HZ (HZ = 100): used in the hold default and the timer minimums."""
TIMER_MIN_MS = 3 * HZ_MS
"""token, token_retransmit, join, consensus, merge and downcheck may not be lower."""


@dataclass(frozen=True)
class SrpConfig:
    """Effective protocol parameters in milliseconds (timers) or counts.

    Build it with :meth:`derive` from what a corosync.conf says; the fields hold
    the values the protocol uses, after token_coefficient scaling and derivation,
    as ``corosync-cmapctl runtime.config.totem`` shows them.
    """

    token: int = 3000
    token_retransmit: int = 714
    hold: int = 561
    token_warning: int = 75
    join: int = 50
    send_join: int = 0
    consensus: int = 3600
    merge: int = 200
    downcheck: int = 1000
    fail_recv_const: int = 2500
    seqno_unchanged_const: int = 30
    miss_count_const: int = 5
    window_size: int = 50
    max_messages: int = 17
    max_network_delay: int = 50
    heartbeat_failures_allowed: int = 0
    token_retransmits_before_loss_const: int = 4
    cancel_token_hold_on_retransmit: bool = False
    netmtu: int = 1500
    crypto_overhead: int = 0
    """Bytes the transport adds around each datagram and takes off the frame: with
    crypto on, IP/UDP headers plus the envelope estimate, as corosync 2.x subtracts them
    (totem.crypto.envelope.mtu_overhead); 0 without crypto, as corosync 3.x udpu."""

    @classmethod
    def derive(
        cls,
        nodes: int,
        *,
        token: int | None = None,
        token_coefficient: int = 650,
        token_retransmits_before_loss_const: int = 4,
        token_retransmit: int | None = None,
        hold: int | None = None,
        consensus: int | None = None,
        **explicit: int | bool,
    ) -> "SrpConfig":
        """corosync 3.1.7's totemconfig arithmetic for a nodelist of ``nodes`` entries."""
        base = 3000 if token is None else token
        eff = base + (nodes - 2) * token_coefficient if nodes > 2 else base
        retransmit = (
            int(eff / (token_retransmits_before_loss_const + 0.2))
            if token_retransmit is None
            else token_retransmit
        )
        hold_v = int(retransmit * 0.8 - HZ_MS) if hold is None else hold
        consensus_v = int(1.2 * eff) if consensus is None else consensus
        names = {f.name for f in fields(cls)}
        unknown = set(explicit) - names
        if unknown:
            raise TypeError(f"unknown SRP parameters: {sorted(unknown)}")
        return cls(
            token=eff,
            token_retransmit=retransmit,
            hold=hold_v,
            consensus=consensus_v,
            token_retransmits_before_loss_const=token_retransmits_before_loss_const,
            **explicit,  # type: ignore[arg-type]
        )

    def scaled(self, factor: float) -> "SrpConfig":
        """The same protocol with every timer multiplied by ``factor`` (for fast simulations)."""
        timers = ("token", "token_retransmit", "hold", "join", "consensus", "merge",
                  "downcheck", "max_network_delay")
        return replace(self, **{t: max(1, int(getattr(self, t) * factor)) for t in timers})

    @property
    def frame_max(self) -> int:
        """Largest totempg frame in one mcast: netmtu less two mcast headers (1410 by
        default) and less the crypto overhead when crypto is on."""
        return self.netmtu - 2 * 45 - self.crypto_overhead
