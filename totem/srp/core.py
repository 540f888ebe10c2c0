"""The Totem single-ring protocol of corosync 3.1.7 as pure code.

:class:`SrpCore` holds one node's protocol state. Datagrams and timer expiries go
in together with the current time; datagrams to send, the next timer deadline and
events (messages delivered in agreed order, configuration changes) come out. It
never touches a socket, a clock or trio, so the simulator can run many of them on
one virtual network and clock, and the daemon wraps one in a thin trio shell.

The structure and names follow corosync's ``totemsrp.c`` so that the code can be
held against it and against corosync's logs (spec totem-wire.md §4):
membership (GATHER, COMMIT with the commit token's two rotations, RECOVERY with
encapsulated rebroadcasts of the old ring's messages, OPERATIONAL), ORF token
processing (retransmission lists, flow control, aru, freeing, failure to receive),
token hold and merge detection, and every timer.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Callable

from ..wire import (
    Mcast,
    MembCommitToken,
    MembEntry,
    MembJoin,
    MembMergeDetect,
    Message,
    OrfToken,
    RingId,
    RtrItem,
    TokenHoldCancel,
    WireError,
    parse_untrusted,
)
from ..wire.srp import EMPTY_MEMB_ENTRY, RTR_LIST_MAX
from .config import SrpConfig
from .events import (
    Broadcast,
    ConfigurationChanged,
    ConfigurationKind,
    Datagram,
    Event,
    MessageDelivered,
    RingSeqStore,
    SendTo,
    State,
    StateChanged,
)
from .sortqueue import QUEUE_SIZE, SEQ_MASK, SortQueue, seq_lt, seq_lte

MESSAGE_SIZE_MAX = 1024 * 1024
LEAVE_NODEID = 0
SEQNO_START_MSG = 0
SEQNO_START_TOKEN = 0
RETRANS_QUEUE_MAX = 16384


@dataclass(frozen=True, slots=True)
class LogMessage:
    """Something corosync would log; the shell decides where it goes."""

    level: str  # "debug", "notice", "warning", "error"
    text: str


@dataclass(slots=True)
class _Stored:
    """A message in a sort queue: its exact bytes (for rebroadcast) and its parse."""

    raw: bytes
    msg: Mcast


# timer names, in the order they fire when due at the same instant
_TIMERS = ("pause", "token_retransmit", "hold", "merge", "send_join", "join", "consensus", "token",
           "token_warning", "heartbeat")


class SrpCore:
    """One node's Totem SRP state machine (no I/O)."""

    def __init__(
        self,
        nodeid: int,
        config: SrpConfig | None = None,
        store: RingSeqStore | None = None,
        *,
        on_token_received: Callable[[], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        if not 0 < nodeid <= SEQ_MASK:
            raise ValueError(f"nodeid must be 1..2^32-1, not {nodeid}")
        self.my_id = nodeid
        self.config = config or SrpConfig()
        self.store = store or RingSeqStore()
        self.on_token_received = on_token_received
        """Called when a valid token arrives, before messages are taken from the queue
        (totempg flushes its staged frame here)."""

        self.state = State.OPERATIONAL
        self.started = False
        self.stats: dict[str, int] = dict.fromkeys(_STATS, 0)

        self._out: list[Datagram] = []
        self._events: deque[Event | LogMessage] = deque()
        self._timers: dict[str, float] = {}
        self._rng = rng or random.Random(nodeid)
        """Only for send_join's random delay; seeded so that runs are reproducible."""
        self._pending_join: bytes | None = None

        # membership
        self.my_ring_id = RingId(nodeid, 0)
        self.my_old_ring_id = RingId(0, 0)
        self.token_ring_id_seq = 0
        self.my_proc_list: list[int] = [nodeid]
        self.my_failed_list: list[int] = []
        self.my_memb_list: list[int] = [nodeid]
        self.my_new_memb_list: list[int] = []
        self.my_trans_memb_list: list[int] = []
        self.my_deliver_memb_list: list[int] = []
        self.my_left_memb_list: list[int] = []
        self.my_leave_memb: list[int] = []
        self._consensus: set[int] = set()
        self.failed_to_recv = False
        self.commit_token: MembCommitToken | None = None
        self.orf_token_discard = False
        self.originated_orf_token = False

        # ordering
        self.my_aru = SEQNO_START_MSG
        self.my_high_seq_received = SEQNO_START_MSG
        self.my_high_delivered = SEQNO_START_MSG
        self.my_high_ring_delivered = 0
        self.my_last_aru = SEQNO_START_MSG
        self.my_last_seq = SEQNO_START_MSG
        self.my_seq_unchanged = 0
        self.my_token_held = False
        self.my_token_seq = (SEQNO_START_TOKEN - 1) & SEQ_MASK
        self.my_aru_count = 0
        self.my_install_seq = SEQNO_START_MSG
        self.my_retrans_flg_count = 0
        self.my_rotation_counter = 0
        self.my_set_retrans_flg = False
        self.my_received_flg = True
        self.last_released = SEQNO_START_MSG
        self.old_ring_state_saved = False
        self.old_ring_state_aru = 0
        self.old_ring_state_high_seq_received = 0
        self.regular_sq: SortQueue[_Stored] = SortQueue()
        self.recovery_sq: SortQueue[_Stored] = SortQueue()
        self.new_message_queue: deque[bytes] = deque()
        self.new_message_queue_trans: deque[bytes] = deque()
        self.retrans_message_queue: deque[bytes] = deque()
        self.waiting_trans_ack = True
        self.queue_max = max(1, (4 * MESSAGE_SIZE_MAX) // self.config.frame_max)
        self.global_seqno = 0

        # flow control
        self.my_trc = 0
        self.my_pbl = 0
        self.my_cbl = 0

        # token retransmission
        self._token_copy: bytes | None = None
        self._token_target = nodeid
        self.pause_timestamp = 0.0
        self._last_token_rx = 0.0

    # ------------------------------------------------------------------ public API

    def start(self, now: float) -> None:
        """The interface is up: load the ring seq, form a singleton view, enter GATHER."""
        if self.started:
            return
        self.started = True
        seq = (self.store.load() + 1) & 0xFFFFFFFFFFFFFFFF
        self.my_ring_id = RingId(self.my_id, seq)
        self.token_ring_id_seq = seq
        self._log("debug", f"Created or loaded sequence id {self.my_ring_id} for this ring.")
        self.pause_timestamp = now
        self._set_timer("pause", now, self.config.token / 5)
        self._gather_enter(now, "interface change")

    def receive_datagram(self, data: bytes, now: float) -> None:
        """Process one datagram from the network. Malformed input raises WireError."""
        self.receive(parse_untrusted(data), now, data)

    def receive(self, msg: Message, now: float, raw: bytes | None = None) -> None:
        """Process one parsed message (``raw`` are its bytes when it came off the wire)."""
        if not self.started:
            return
        if isinstance(msg, OrfToken):
            self.stats["orf_token_rx"] += 1
            self._handle_orf_token(msg, now)
        elif isinstance(msg, Mcast):
            self.stats["mcast_rx"] += 1
            self._handle_mcast(msg, raw if raw is not None else msg.pack(), now)
        elif isinstance(msg, MembJoin):
            self.stats["memb_join_rx"] += 1
            self._handle_memb_join(msg, now)
        elif isinstance(msg, MembCommitToken):
            self.stats["memb_commit_token_rx"] += 1
            self._handle_commit_token(msg, now)
        elif isinstance(msg, MembMergeDetect):
            self.stats["memb_merge_detect_rx"] += 1
            self._handle_merge_detect(msg, now)
        elif isinstance(msg, TokenHoldCancel):
            self.stats["token_hold_cancel_rx"] += 1
            self._handle_token_hold_cancel(msg, now)

    def get_timer(self) -> float | None:
        """The time at which :meth:`handle_timer` must next be called, if any."""
        return min(self._timers.values()) if self._timers else None

    def handle_timer(self, now: float) -> None:
        """Run every timer that is due at ``now``."""
        while self._timers:
            name = min(self._timers, key=lambda n: (self._timers[n], _TIMERS.index(n)))
            if self._timers[name] > now:
                return
            del self._timers[name]
            getattr(self, f"_timer_{name}")(now)

    def datagrams_to_send(self) -> list[Datagram]:
        """Datagrams produced since the last call, in order."""
        out, self._out = self._out, []
        return out

    def next_event(self) -> Event | LogMessage | None:
        """The next event, or None."""
        return self._events.popleft() if self._events else None

    def mcast(self, payload: bytes) -> bool:
        """Queue one totempg frame for ordered delivery; False when the queue is full.

        Called by the process-group layer when it hands over a frame (possibly while
        the token is being processed); a sender with new data calls
        :meth:`signal_new_message` first, as totempg does.
        """
        queue = self.new_message_queue_trans if self.waiting_trans_ack else self.new_message_queue
        if len(queue) >= self.queue_max:
            return False
        if len(payload) > MESSAGE_SIZE_MAX:
            raise ValueError("frame larger than the largest message")
        queue.append(payload)
        self.stats["mcast_tx"] += 1
        return True

    def avail(self) -> int:
        queue = self.new_message_queue_trans if self.waiting_trans_ack else self.new_message_queue
        return self.queue_max - len(queue)

    def signal_new_message(self) -> None:
        """Someone is about to send: release a held token (corosync's event signal)."""
        self._token_hold_cancel_send()

    def trans_ack(self) -> None:
        """Service synchronisation finished: send from the regular queue again.

        Frames still waiting in the transitional queue follow the regular queue's
        (corosync would strand them until the next configuration change).
        """
        self.waiting_trans_ack = False
        if self.new_message_queue_trans:
            self.new_message_queue.extend(self.new_message_queue_trans)
            self.new_message_queue_trans.clear()

    def send_first_during_sync(self, count: int) -> None:
        """Let the first ``count`` frames of the regular queue go out ahead of what
        the sync queues: the rest of a message whose first frames went out in the old
        ring, which would otherwise be cut in two by the sync messages."""
        queue = self.new_message_queue
        head = [queue.popleft() for _ in range(min(count, len(queue)))]
        self.new_message_queue_trans.extendleft(reversed(head))

    def leave(self, now: float) -> None:
        """Graceful shutdown: tell the others at once (a LEAVE join)."""
        if not self.started:
            return
        if self.my_id not in self.my_failed_list:
            self.my_failed_list.append(self.my_id)
        active = [n for n in self.my_proc_list if n != self.my_id]
        self.stats["memb_join_tx"] += 1
        self._out.append(Broadcast(MembJoin(
            self.my_id, tuple(active), tuple(self.my_failed_list), self.my_ring_id.seq,
            nodeid=LEAVE_NODEID,
        ).pack()))
        self._timers.clear()
        self.started = False

    @property
    def members(self) -> tuple[int, ...]:
        return tuple(self.my_memb_list)

    @property
    def ring_id(self) -> RingId:
        return self.my_ring_id

    # ------------------------------------------------------------------ helpers

    def _emit(self, event: Event | LogMessage) -> None:
        self._events.append(event)

    def _log(self, level: str, text: str) -> None:
        self._events.append(LogMessage(level, text))

    def _set_timer(self, name: str, now: float, ms: float) -> None:
        self._timers[name] = now + ms / 1000.0

    def _cancel(self, name: str) -> None:
        self._timers.pop(name, None)

    def _set_state(self, new: State, reason: str) -> None:
        old = self.state
        self.state = new
        self._emit(StateChanged(old, new, reason))

    def _reset_token_timeout(self, now: float) -> None:
        self._set_timer("token", now, self.config.token)
        if self.config.token_warning:
            self._set_timer("token_warning", now, self.config.token_warning * self.config.token / 100)

    def _cancel_token_timeout(self) -> None:
        self._cancel("token")
        self._cancel("token_warning")

    def _reset_token_retransmit_timeout(self, now: float) -> None:
        self._set_timer("token_retransmit", now, self.config.token_retransmit)

    def _start_merge_detect_timeout(self, now: float) -> None:
        if "merge" not in self._timers:
            self._set_timer("merge", now, self.config.merge)

    def _heartbeat(self, now: float, forward: bool) -> None:
        c = self.config
        if forward and c.heartbeat_failures_allowed:
            self._set_timer("heartbeat", now,
                            c.heartbeat_failures_allowed * c.token_retransmit + c.max_network_delay)
        else:
            self._cancel("heartbeat")

    # ------------------------------------------------------------------ sets

    def _proc_minus_failed(self) -> list[int]:
        failed = self.my_failed_list
        return [n for n in self.my_proc_list if n not in failed]

    @staticmethod
    def _merge(into: list[int], items) -> None:
        for n in items:
            if n not in into:
                into.append(n)

    def _consensus_agreed(self) -> bool:
        return all(n in self._consensus for n in self._proc_minus_failed())

    def _lowest_in_config(self) -> bool:
        members = self._proc_minus_failed()
        return bool(members) and min(members) == self.my_id

    # ------------------------------------------------------------------ timers

    def _timer_pause(self, now: float) -> None:
        self.pause_timestamp = now
        self._set_timer("pause", now, self.config.token / 5)

    def _timer_token(self, now: float) -> None:
        c = self.config
        if self.state is State.OPERATIONAL:
            self._log("notice", f"A processor failed, forming new configuration: token timed out "
                                f"({c.token}ms), waiting {c.consensus}ms for consensus.")
            self.stats["operational_token_lost"] += 1
            self._gather_enter(now, "the token was lost in the OPERATIONAL state")
        elif self.state is State.GATHER:
            self._log("debug", f"The consensus timeout expired ({c.consensus}ms).")
            self._consensus_timeout_expired(now)
            self._gather_enter(now, "the consensus timeout expired")
            self.stats["gather_token_lost"] += 1
        elif self.state is State.COMMIT:
            self._log("debug", "The token was lost in the COMMIT state.")
            self.stats["commit_token_lost"] += 1
            self._gather_enter(now, "the token was lost in the COMMIT state")
        else:
            self._log("debug", "The token was lost in the RECOVERY state.")
            self._recovery_token_loss(now)
            self.orf_token_discard = True

    _timer_heartbeat = _timer_token

    def _timer_token_warning(self, now: float) -> None:
        waited = int((now - self._last_token_rx) * 1000)
        self._log("notice", f"Token has not been received in {waited} ms")
        self._set_timer("token_warning", now, self.config.token_warning * self.config.token / 100)

    def _timer_token_retransmit(self, now: float) -> None:
        if self.state is State.GATHER:
            return
        self._token_retransmit()
        self._reset_token_retransmit_timeout(now)

    def _timer_hold(self, now: float) -> None:
        if self.state in (State.OPERATIONAL, State.RECOVERY):
            self._token_retransmit()

    def _timer_merge(self, now: float) -> None:
        if self.state is State.OPERATIONAL and self.my_ring_id.rep == self.my_id:
            self.stats["memb_merge_detect_tx"] += 1
            self._out.append(Broadcast(MembMergeDetect(
                self.my_id, self.my_ring_id, nodeid=self.my_id).pack()))

    def _timer_join(self, now: float) -> None:
        if self.state in (State.GATHER, State.COMMIT):
            self._join_message_send(now)
            self._set_timer("join", now, self.config.join)

    def _timer_consensus(self, now: float) -> None:
        self._consensus_timeout_expired(now)

    def _token_retransmit(self) -> None:
        if self._token_copy is not None:
            self._out.append(SendTo(self._token_target, self._token_copy))

    # ------------------------------------------------------------------ membership

    def _consensus_timeout_expired(self, now: float) -> None:
        self.stats["consensus_timeouts"] += 1
        if self._consensus_agreed():
            self._consensus = {self.my_id}
            self._reset_token_timeout(now)
        else:
            missing = [n for n in self.my_proc_list if n not in self._consensus]
            self._merge(self.my_failed_list, missing)
            self._gather_enter(now, "consensus timeout")

    def _join_message_send(self, now: float) -> None:
        self.stats["memb_join_tx"] += 1
        data = MembJoin(
            self.my_id, tuple(self.my_proc_list), tuple(self.my_failed_list),
            self.my_ring_id.seq, nodeid=self.my_id,
        ).pack()
        if self.config.send_join:
            # corosync sleeps a random 0..send_join ms before each join (to spread the
            # joins of a large cluster); here the join waits on a timer instead, and a
            # newer join replaces one still waiting
            self._pending_join = data
            if "send_join" not in self._timers:
                self._set_timer("send_join", now, self._rng.random() * self.config.send_join)
            return
        self._out.append(Broadcast(data))

    def _timer_send_join(self, now: float) -> None:
        if self._pending_join is not None:
            self._out.append(Broadcast(self._pending_join))
            self._pending_join = None

    def _gather_enter(self, now: float, why: str) -> None:
        self.orf_token_discard = True
        self.originated_orf_token = False
        self._merge(self.my_proc_list, (self.my_id,))
        self._join_message_send(now)
        self._set_timer("join", now, self.config.join)
        self._set_timer("consensus", now, self.config.consensus)
        self._cancel("token_retransmit")
        self._cancel_token_timeout()
        self._cancel("merge")
        self._consensus = {self.my_id}
        self._log("debug", f"entering GATHER state from {why}.")
        self.stats["gather_entered"] += 1
        if why == "the consensus timeout expired":
            self.stats["continuous_gather"] += 1
        self._set_state(State.GATHER, why)

    def _old_ring_state_save(self) -> None:
        if not self.old_ring_state_saved:
            self.old_ring_state_saved = True
            self.my_old_ring_id = self.my_ring_id
            self.old_ring_state_aru = self.my_aru
            self.old_ring_state_high_seq_received = self.my_high_seq_received

    def _old_ring_state_restore(self) -> None:
        self.my_aru = self.old_ring_state_aru
        self.my_high_seq_received = self.old_ring_state_high_seq_received

    def _recovery_token_loss(self, now: float) -> None:
        self._old_ring_state_restore()
        self._gather_enter(now, "the token was lost in the RECOVERY state")
        self.stats["recovery_token_lost"] += 1

    def _commit_token_create(self) -> None:
        members = sorted(self._proc_minus_failed())
        self.commit_token = MembCommitToken(
            token_seq=0,
            ring_id=RingId(self.my_id, (self.token_ring_id_seq + 4) & 0xFFFFFFFFFFFFFFFF),
            memb_index=0,
            addr=members,
            memb_list=[EMPTY_MEMB_ENTRY] * len(members),
            nodeid=self.my_id,
        )

    def _commit_token_update(self) -> None:
        ct = self.commit_token
        assert ct is not None
        self.my_new_memb_list = list(ct.addr)
        idx = ct.memb_index
        self.my_received_flg = self.my_aru == self.my_high_seq_received
        memb = ct.memb_list
        memb[idx] = MembEntry(self.my_old_ring_id, self.old_ring_state_aru, self.my_high_delivered,
                              int(self.my_received_flg))
        ring = memb[idx].ring_id
        high_aru = memb[idx].aru
        for i in range(idx + 1):
            if memb[i].ring_id == ring and seq_lt(high_aru, memb[i].aru):
                high_aru = memb[i].aru
        for i in range(idx + 1):
            if memb[i].ring_id == ring and seq_lt(memb[i].aru, high_aru):
                memb[i] = memb[i]._replace(received_flg=0)
                if i == idx:
                    self.my_received_flg = False
        ct.nodeid = self.my_id
        ct.memb_index = idx + 1

    def _commit_enter(self, now: float) -> None:
        ct = self.commit_token
        assert ct is not None
        self._old_ring_state_save()
        self._commit_token_update()
        self._token_target = ct.addr[ct.memb_index % len(ct.addr)]
        self._cancel("join")
        self._cancel("consensus")
        self.my_ring_id = ct.ring_id
        self.store.save(self.my_ring_id.seq)
        self.token_ring_id_seq = self.my_ring_id.seq
        self._log("debug", "entering COMMIT state.")
        self._set_state(State.COMMIT, "commit token")
        self._reset_token_retransmit_timeout(now)
        self._reset_token_timeout(now)
        self.stats["commit_entered"] += 1
        self.stats["continuous_gather"] = 0
        self.my_trc = self.my_pbl = self.my_cbl = 0
        self._commit_token_send(ct, now)

    def _commit_token_send(self, ct: MembCommitToken, now: float) -> None:
        ct.token_seq = (ct.token_seq + 1) & SEQ_MASK
        ct.nodeid = self.my_id
        data = ct.pack()
        self._token_copy = data
        self.stats["memb_commit_token_tx"] += 1
        self._out.append(SendTo(self._token_target, data))
        self._reset_token_retransmit_timeout(now)

    def _recovery_enter(self, ct: MembCommitToken, now: float) -> None:
        self._log("debug", "entering RECOVERY state.")
        self.orf_token_discard = False
        self.my_high_ring_delivered = 0
        self.recovery_sq.reinit(SEQNO_START_MSG)
        self.retrans_message_queue.clear()
        low_ring_aru = self.old_ring_state_high_seq_received
        self._commit_token_send(ct, now)
        self.my_token_seq = (SEQNO_START_TOKEN - 1) & SEQ_MASK

        old_members = self.my_memb_list
        # transitional membership: new members coming from my old ring (in my old ring's member order)
        ring_of = dict(zip(ct.addr, (e.ring_id for e in ct.memb_list)))
        self.my_trans_memb_list = [
            n for n in old_members if n in ring_of and ring_of[n] == self.my_old_ring_id
        ]
        trans = self.my_trans_memb_list
        local_received_flg = True
        for addr, entry in zip(ct.addr, ct.memb_list):
            if addr in trans and entry.received_flg == 0:
                self.my_deliver_memb_list = list(trans)
                local_received_flg = False
                break
        originated = 0
        if not local_received_flg:
            for addr, entry in zip(ct.addr, ct.memb_list):
                if addr in self.my_deliver_memb_list and entry.ring_id == self.my_old_ring_id:
                    if seq_lt(entry.aru, low_ring_aru):
                        low_ring_aru = entry.aru
                    if seq_lt(self.my_high_ring_delivered, entry.high_delivered):
                        self.my_high_ring_delivered = entry.high_delivered
            count = (self.old_ring_state_high_seq_received - low_ring_aru) & SEQ_MASK
            if count >= QUEUE_SIZE:
                raise AssertionError(f"recovery range {count} exceeds the sort queue")
            for i in range(1, count + 1):
                item = self.regular_sq.get((low_ring_aru + i) & SEQ_MASK)
                if item is None:
                    continue
                originated += 1
                self.retrans_message_queue.append(item.raw)
        if originated:
            self._log("debug", f"Originated {originated} messages in RECOVERY.")
        else:
            self._log("debug", "Did not need to originate any messages in recovery.")
        self.my_aru = SEQNO_START_MSG
        self.my_aru_count = 0
        self.my_seq_unchanged = 0
        self.my_high_seq_received = SEQNO_START_MSG
        self.my_install_seq = SEQNO_START_MSG
        self.last_released = SEQNO_START_MSG
        # corosync resets these two only on entering OPERATIONAL; after a failed
        # recovery the stale counts let a node declare this recovery finished rotations
        # early, before the encapsulated messages reached it, and the ring then stalls
        # with that node's aru stuck below them (simulator seed 782).
        self.my_retrans_flg_count = 0
        self.my_rotation_counter = 0
        self._reset_token_timeout(now)
        self._reset_token_retransmit_timeout(now)
        self._set_state(State.RECOVERY, "commit token completed its rotation")
        self.stats["recovery_entered"] += 1
        self.stats["continuous_gather"] = 0

    def _deliver_messages_from_recovery_to_regular(self) -> None:
        count = (self.my_aru - SEQNO_START_MSG) & SEQ_MASK
        for i in range(1, count + 1):
            item = self.recovery_sq.get((SEQNO_START_MSG + i) & SEQ_MASK)
            if item is None or item.msg.encapsulated != Mcast.ENCAPSULATED:
                continue
            try:
                inner = item.msg.inner()
            except WireError:
                self.stats["rx_msg_dropped"] += 1
                continue
            if inner.ring_id == self.my_old_ring_id:
                if not self.regular_sq.inuse(inner.seq):
                    self.regular_sq.add(inner.seq, _Stored(item.msg.payload, inner))
                    if seq_lt(self.old_ring_state_high_seq_received, inner.seq):
                        self.old_ring_state_high_seq_received = inner.seq

    def _operational_enter(self, now: float) -> None:
        self.originated_orf_token = False
        self._consensus = set()
        self.old_ring_state_saved = False
        self._deliver_messages_from_recovery_to_regular()

        aru_save = self.my_aru
        self.my_aru = self.old_ring_state_aru
        self._deliver_to_app(False, self.old_ring_state_high_seq_received)

        trans = self.my_trans_memb_list
        self.my_left_memb_list = [n for n in self.my_memb_list if n not in trans]
        joined = [n for n in self.my_new_memb_list if n not in trans]
        self.my_memb_list = list(self.my_new_memb_list)
        self.last_released = 0
        self.my_set_retrans_flg = False

        self._emit(ConfigurationChanged(ConfigurationKind.TRANSITIONAL, self.my_ring_id,
                                        tuple(trans), tuple(self.my_left_memb_list), ()))
        self.waiting_trans_ack = True
        self._deliver_to_app(True, self.old_ring_state_high_seq_received)
        self.my_aru = aru_save
        self._emit(ConfigurationChanged(ConfigurationKind.REGULAR, self.my_ring_id,
                                        tuple(self.my_new_memb_list), (), tuple(joined)))

        self.regular_sq.copy_from(self.recovery_sq)
        self.my_last_aru = SEQNO_START_MSG
        self.my_proc_list = list(self.my_new_memb_list)
        self.my_failed_list = []

        # the new ring's seqs that carried recovery rebroadcasts count as delivered
        i = self.my_high_seq_received
        while i != 0 and self.regular_sq.get(i) is None:
            i = (i - 1) & SEQ_MASK
        self.my_high_delivered = i
        self.regular_sq.release(i)
        self.last_released = i

        left = self.my_left_memb_list
        joined_txt = (" joined: " + " ".join(map(str, joined))) if joined else ""
        left_txt = (" left: " + " ".join(map(str, left))) if left else ""
        self._log("notice", f"A new membership ({self.my_ring_id}) was formed. Members{joined_txt}{left_txt}")
        failed = [n for n in left if n not in self.my_leave_memb]
        if failed:
            self._log("notice", "Failed to receive the leave message. failed: " + " ".join(map(str, failed)))
        self.my_leave_memb = []
        self._set_state(State.OPERATIONAL, "recovery finished")
        self.stats["operational_entered"] += 1
        self.stats["continuous_gather"] = 0
        self.my_received_flg = True
        self._set_timer("pause", now, self.config.token / 5)
        self.pause_timestamp = now
        self.my_old_ring_id = self.my_ring_id

    # ------------------------------------------------------------------ delivery

    def _deliver_to_app(self, skip: bool, end_point: int) -> None:
        stored = self.my_high_delivered
        count = (end_point - stored) & SEQ_MASK
        if count >= QUEUE_SIZE:
            raise AssertionError(f"delivery range {count} exceeds the sort queue")
        sq = self.regular_sq
        deliver_memb = self.my_deliver_memb_list
        for i in range(1, count + 1):
            seq = (stored + i) & SEQ_MASK
            if not sq.in_range(seq):
                break
            item = sq.get(seq)
            if item is None and not skip:
                break
            self.my_high_delivered = seq
            if item is None:
                continue
            m = item.msg
            if skip and m.system_from not in deliver_memb:
                continue
            self._events.append(MessageDelivered(m.nodeid, m.payload, m.ring_id, m.seq))

    # ------------------------------------------------------------------ message handlers

    def _handle_mcast(self, m: Mcast, raw: bytes, now: float) -> None:
        sq = self.recovery_sq if m.encapsulated == Mcast.ENCAPSULATED else self.regular_sq
        if m.ring_id != self.my_ring_id:
            state = self.state
            if state is State.OPERATIONAL:
                self._merge(self.my_proc_list, (m.system_from,))
                self._gather_enter(now, "foreign message in OPERATIONAL state")
            elif state is State.GATHER:
                if m.system_from not in self.my_proc_list:
                    self._merge(self.my_proc_list, (m.system_from,))
                    self._gather_enter(now, "foreign message in GATHER state")
            else:
                self.stats["rx_msg_dropped"] += 1
            return
        if self.state is State.RECOVERY and m.encapsulated != Mcast.ENCAPSULATED:
            # A new-ring message from a node already OPERATIONAL. corosync stores it in
            # the regular queue, which still holds the old ring's messages under the same
            # seq numbers: if this recovery then fails, the old ring's recovery later
            # treats it as an old-ring message (found by the simulator: same-set and
            # agreed-order violations). It is fetched again by retransmission once this
            # node is OPERATIONAL, as corosync fetches it after discarding it on entry.
            self.stats["rx_msg_dropped"] += 1
            return
        seq = m.seq
        if sq.in_range(seq) and not sq.inuse(seq):
            sq.add(seq, _Stored(raw, m))
            if seq_lt(self.my_high_seq_received, seq):
                self.my_high_seq_received = seq
        self._update_aru()
        if self.state is State.OPERATIONAL:
            self._deliver_to_app(False, self.my_high_seq_received)

    def _update_aru(self) -> None:
        sq = self.recovery_sq if self.state is State.RECOVERY else self.regular_sq
        aru = self.my_aru
        high = self.my_high_seq_received
        items = sq.items
        while aru != high:
            nxt = (aru + 1) & SEQ_MASK
            if nxt not in items:
                break
            aru = nxt
        self.my_aru = aru

    def _handle_merge_detect(self, m: MembMergeDetect, now: float) -> None:
        if m.ring_id == self.my_ring_id:
            return
        if self.state is State.OPERATIONAL:
            self._merge(self.my_proc_list, (m.system_from,))
            self._gather_enter(now, "merge during OPERATIONAL state")
        elif self.state is State.GATHER and m.system_from not in self.my_proc_list:
            self._merge(self.my_proc_list, (m.system_from,))
            self._gather_enter(now, "merge during GATHER state")

    def _handle_token_hold_cancel(self, m: TokenHoldCancel, now: float) -> None:
        if m.ring_id == self.my_ring_id:
            self.my_seq_unchanged = 0
            if self.my_ring_id.rep == self.my_id:
                self._timer_token_retransmit(now)

    def _token_hold_cancel_send(self) -> None:
        if not self.my_token_held:
            return
        self.my_token_held = False
        self.stats["token_hold_cancel_tx"] += 1
        self._out.append(Broadcast(TokenHoldCancel(self.my_ring_id, nodeid=self.my_id).pack()))

    def _handle_memb_join(self, j: MembJoin, now: float) -> None:
        if j.nodeid == LEAVE_NODEID and j.system_from == self.my_id:
            # My own LEAVE, still in flight when this node was started again: it comes
            # from the previous incarnation. corosync never processes its own LEAVE (the
            # instance that sends it shuts down, and its socket with it); processing it
            # here would put this node in its own failed list (the sender, me, lists me
            # as failed), from where it can never agree with anyone and stays in GATHER.
            self.stats["rx_msg_dropped"] += 1
            return
        if now - self.pause_timestamp > self.config.token / 2000:
            self._log("notice", f"Process pause detected for {int((now - self.pause_timestamp) * 1000)} ms, "
                                "flushing membership messages.")
            self.pause_timestamp = now
            return
        if self.token_ring_id_seq < j.ring_seq:
            self.token_ring_id_seq = j.ring_seq
        state = self.state
        if state is State.OPERATIONAL:
            if not self._ignore_join_under_operational(j):
                self._join_process(j, now)
        elif state is State.GATHER:
            self._join_process(j, now)
        elif j.system_from in self.my_new_memb_list and j.ring_seq >= self.my_ring_id.seq:
            self._join_process(j, now)
            if state is State.RECOVERY:
                self._recovery_token_loss(now)
                self._gather_enter(now, "join during RECOVERY")
            else:
                self._gather_enter(now, "join during COMMIT state")

    def _ignore_join_under_operational(self, j: MembJoin) -> bool:
        if self.my_id in j.failed_list:
            return True
        return j.system_from in self.my_memb_list and j.ring_seq < self.my_ring_id.seq

    def _join_process(self, j: MembJoin, now: float) -> None:
        sender = j.system_from
        if j.nodeid == LEAVE_NODEID:
            if j.failed_list:
                leaving = j.failed_list[-1]
                self._log("debug", f"Received LEAVE message from {leaving}")
                if leaving not in self.my_leave_memb:
                    self.my_leave_memb.append(leaving)
        proc, failed = set(j.proc_list), set(j.failed_list)
        my_proc, my_failed = set(self.my_proc_list), set(self.my_failed_list)
        gather_entered = False
        if proc == my_proc and failed == my_failed:
            if j.nodeid != LEAVE_NODEID:
                self._consensus.add(sender)
            if self._consensus_agreed() and self.failed_to_recv:
                self.failed_to_recv = False
                self.my_proc_list = [self.my_id]
                self.my_failed_list = []
                self._commit_token_create()
                self._commit_enter(now)
                return
            if self._consensus_agreed() and self._lowest_in_config():
                self._commit_token_create()
                self._commit_enter(now)
        elif proc <= my_proc and failed <= my_failed:
            pass
        elif sender in my_failed:
            pass
        else:
            before = (len(self.my_proc_list), len(self.my_failed_list))
            self._merge(self.my_proc_list, j.proc_list)
            if self.my_id in failed:
                self._merge(self.my_failed_list, (sender,))
            elif sender in self.my_memb_list:
                self._merge(self.my_failed_list, j.failed_list)
            changed = before != (len(self.my_proc_list), len(self.my_failed_list))
            # corosync re-enters GATHER here even when nothing changed (a sender outside
            # my ring whose failed list I do not adopt). Two such nodes then answer each
            # other's joins at network speed and restart their consensus timers forever;
            # the simulator found that join storm. With unchanged lists the periodic join
            # and the running consensus timer settle the disagreement instead.
            if changed or self.state is not State.GATHER:
                self._gather_enter(now, "merge during join")
                gather_entered = True
        if not gather_entered and self.state is State.OPERATIONAL:
            self._gather_enter(now, "join during OPERATIONAL state")

    def _handle_commit_token(self, ct: MembCommitToken, now: float) -> None:
        n = len(ct.addr)
        if n == 0 or not 0 <= ct.memb_index <= n:
            self.stats["rx_msg_dropped"] += 1
            return
        state = self.state
        if state is State.GATHER:
            if set(ct.addr) == set(self._proc_minus_failed()) and len(set(ct.addr)) == n \
                    and ct.ring_id.seq > self.my_ring_id.seq and ct.memb_index < n:
                self.commit_token = ct
                self._commit_enter(now)
        elif state is State.COMMIT:
            if ct.ring_id.seq == self.my_ring_id.seq and ct.memb_index == n:
                self._recovery_enter(ct, now)
        elif state is State.RECOVERY:
            if self.my_id == self.my_ring_id.rep and not self.originated_orf_token:
                self.originated_orf_token = True
                self._log("debug", "Sending initial ORF token")
                self._orf_token_send_initial()
                self._reset_token_timeout(now)
                self._reset_token_retransmit_timeout(now)

    def _orf_token_send_initial(self) -> None:
        retrans = 1 if self.retrans_message_queue else 0
        self.my_set_retrans_flg = bool(retrans)
        self.stats["orf_token_tx"] += 1
        token = OrfToken(seq=SEQNO_START_MSG, token_seq=SEQNO_START_TOKEN,
                         aru=(SEQNO_START_MSG - 1) & SEQ_MASK, aru_addr=self.my_id,
                         ring_id=self.my_ring_id, retrans_flg=retrans)
        self._token_send(token, True)

    def _token_send(self, token: OrfToken, forward: bool) -> None:
        token.nodeid = self.my_id
        data = token.pack()
        self._token_copy = data
        if forward:
            self._out.append(SendTo(self._token_target, data))

    # ------------------------------------------------------------------ the ORF token

    def _handle_orf_token(self, token: OrfToken, now: float) -> None:
        if self.orf_token_discard:
            return
        if token.ring_id == self.my_ring_id and ((token.seq - self.my_aru) & SEQ_MASK) >= QUEUE_SIZE:
            # a token this node cannot have been passed in its ring (a copy of one still
            # in flight elsewhere, sent by someone on the path): corosync asserts here;
            # dropping it leaves the real token to do its work
            self.stats["token_insane"] += 1
            if self.stats["token_insane"] in (1, 10, 100, 1000):
                self._log("warning", f"Dropped a token of this ring whose seq {token.seq:x} is out of "
                                     f"reach of my aru {self.my_aru:x} ({self.stats['token_insane']} so far)")
            return
        c = self.config
        if token.seq == self.my_last_seq:
            self._start_merge_detect_timeout(now)
            self.my_seq_unchanged += 1
        else:
            self._cancel("merge")
            self._cancel("hold")
            self.my_seq_unchanged = 0
        self.my_last_seq = token.seq

        is_rep = self.my_ring_id.rep == self.my_id
        if is_rep:
            self.my_token_held = self.my_seq_unchanged > c.seqno_unchanged_const
        else:
            self.my_token_held = self.my_seq_unchanged >= c.seqno_unchanged_const
        forward = not (is_rep and self.my_token_held)

        state = self.state
        if state is State.COMMIT:
            return
        if token.ring_id != self.my_ring_id:
            self._heartbeat(now, forward)
            return
        if seq_lte(token.token_seq, self.my_token_seq):
            return
        if state is State.OPERATIONAL:
            # corosync frees here for every token, retransmitted duplicates included; a
            # duplicate is no new rotation, and freeing on it can drop messages that a
            # partitioned member still needs in recovery (found by the simulator). Freeing
            # is local, so doing it only for new tokens changes nothing on the wire.
            self._messages_free(token.aru)
        self._last_token_rx = now

        if self.on_token_received is not None:
            self.on_token_received()

        last_aru = self.my_last_aru
        self.my_last_aru = token.aru

        allowed = self._fcc_calculate(token)
        retransmitted = self._orf_token_rtr(token, allowed)
        allowed -= retransmitted
        if c.cancel_token_hold_on_retransmit and self.my_token_held and (token.rtr_list or retransmitted):
            self.my_token_held = False
            forward = True
        allowed = self._fcc_rtr_limit(token, allowed)
        sent = self._orf_token_mcast(token, allowed, now)
        # flow control bookkeeping (fcc_token_update)
        total = retransmitted + sent
        token.fcc = (token.fcc + total - self.my_trc) & SEQ_MASK
        token.backlog = (token.backlog + self.my_cbl - self.my_pbl) & SEQ_MASK
        self.my_trc = total
        self.my_pbl = self.my_cbl

        if seq_lt(self.my_aru, token.aru) or token.aru_addr == self.my_id or token.aru_addr == 0:
            token.aru = self.my_aru
            token.aru_addr = 0 if token.aru == token.seq else self.my_id
        if token.aru == last_aru and token.aru_addr != 0:
            self.my_aru_count += 1
        else:
            self.my_aru_count = 0

        if self.my_aru_count > c.fail_recv_const and token.aru_addr == self.my_id:
            self._log("error", "FAILED TO RECEIVE")
            self.failed_to_recv = True
            self._merge(self.my_failed_list, (self.my_id,))
            self._gather_enter(now, "failed to receive")
        else:
            self.my_token_seq = token.token_seq
            token.token_seq = (token.token_seq + 1) & SEQ_MASK
            if self.state is State.RECOVERY:
                self._recovery_token_bookkeeping(token, now)
            self.stats["orf_token_tx"] += 1 if forward else 0
            self._token_send(token, forward)
            if self.state is State.OPERATIONAL:
                self._deliver_to_app(False, self.my_high_seq_received)
            self._reset_token_timeout(now)
            self._reset_token_retransmit_timeout(now)
            if self.my_id == self.my_ring_id.rep and self.my_token_held:
                self._set_timer("hold", now, c.hold)
        self._heartbeat(now, forward)

    def _recovery_token_bookkeeping(self, token: OrfToken, now: float) -> None:
        if self.retrans_message_queue:
            if token.retrans_flg == 0:
                token.retrans_flg = 1
                self.my_set_retrans_flg = True
        elif token.retrans_flg == 1 and self.my_set_retrans_flg:
            token.retrans_flg = 0
            self.my_set_retrans_flg = False
        if token.retrans_flg == 0:
            self.my_retrans_flg_count += 1
        else:
            self.my_retrans_flg_count = 0
        if self.my_retrans_flg_count == 2:
            self.my_install_seq = token.seq
        if (self.my_retrans_flg_count >= 2 and not self.my_received_flg
                and seq_lte(self.my_install_seq, self.my_aru)):
            self.my_received_flg = True
            self.my_deliver_memb_list = list(self.my_trans_memb_list)
        if self.my_retrans_flg_count >= 3 and seq_lte(self.my_install_seq, token.aru):
            self.my_rotation_counter += 1
        else:
            self.my_rotation_counter = 0
        if self.my_rotation_counter == 2:
            self._operational_enter(now)
            self.my_rotation_counter = 0
            self.my_retrans_flg_count = 0

    def _backlog(self) -> int:
        if self.state is State.OPERATIONAL:
            q = self.new_message_queue_trans if self.waiting_trans_ack else self.new_message_queue
            return len(q)
        if self.state is State.RECOVERY:
            return len(self.retrans_message_queue)
        return 0

    def _fcc_calculate(self, token: OrfToken) -> int:
        c = self.config
        allowed = c.max_messages
        window_left = (c.window_size - token.fcc) & SEQ_MASK
        if allowed > window_left:
            allowed = window_left
        self.my_cbl = self._backlog()
        denom = (token.backlog + self.my_cbl - self.my_pbl) & SEQ_MASK
        if denom:
            calc = (c.window_size * self.my_pbl) // denom
            if calc > 0 and allowed > calc:
                allowed = calc
        return allowed

    def _fcc_rtr_limit(self, token: OrfToken, allowed: int) -> int:
        limit = (self.last_released + QUEUE_SIZE - allowed - self.config.window_size) & SEQ_MASK
        return 0 if seq_lt(limit, token.seq) else allowed

    def _orf_token_rtr(self, token: OrfToken, allowed: int) -> int:
        sq = self.recovery_sq if self.state is State.RECOVERY else self.regular_sq
        rtr = token.rtr_list
        if rtr:
            self._log("notice", "Retransmit List: " + " ".join(f"{r.seq:x}" for r in rtr))
        done = 0
        i = 0
        ring = self.my_ring_id
        while done < allowed and i < len(rtr):
            item = rtr[i]
            if item.ring_id != ring:
                i += 1
                continue
            stored = sq.get(item.seq) if sq.in_range(item.seq) else None
            if stored is None:
                i += 1
                continue
            self._out.append(Broadcast(stored.raw))
            del rtr[i]
            self.stats["mcast_retx"] += 1
            done += 1
        # ask for what I miss
        count = (token.seq - self.my_aru) & SEQ_MASK
        if count >= QUEUE_SIZE:
            raise AssertionError(f"retransmit range {count} exceeds the sort queue")
        listed = {r.seq for r in rtr}
        miss_const = self.config.miss_count_const
        for k in range(1, count + 1):
            if len(rtr) >= RTR_LIST_MAX:
                break
            seq = (self.my_aru + k) & SEQ_MASK
            if not sq.in_range(seq):
                break
            if sq.inuse(seq):
                continue
            if sq.miss_count(seq) < miss_const:
                continue
            if seq not in listed:
                rtr.append(RtrItem(ring, seq))
                listed.add(seq)
        return done

    def _orf_token_mcast(self, token: OrfToken, allowed: int, now: float) -> int:
        if self.state is State.RECOVERY:
            queue = self.retrans_message_queue
            sq = self.recovery_sq
            self._reset_token_retransmit_timeout(now)
            encapsulated = Mcast.ENCAPSULATED
        else:
            queue = self.new_message_queue_trans if self.waiting_trans_ack else self.new_message_queue
            sq = self.regular_sq
            encapsulated = Mcast.NORMAL
        sent = 0
        while sent < allowed and queue:
            payload = queue.popleft()
            token.seq = (token.seq + 1) & SEQ_MASK
            m = Mcast(self.my_id, token.seq, self.my_ring_id, payload,
                      this_seqno=self.global_seqno, encapsulated=encapsulated, nodeid=self.my_id)
            self.global_seqno = (self.global_seqno + 1) & 0x7FFFFFFF
            raw = m.pack()
            sq.add(token.seq, _Stored(raw, m))
            self._out.append(Broadcast(raw))
            self.my_high_seq_received = token.seq
            sent += 1
        self._update_aru()
        return sent

    def _messages_free(self, token_aru: int) -> None:
        release_to = token_aru
        if seq_lt(self.my_last_aru, release_to):
            release_to = self.my_last_aru
        if seq_lt(self.my_high_delivered, release_to):
            release_to = self.my_high_delivered
        if seq_lt(release_to, self.last_released):
            return
        if release_to == self.last_released:
            return
        self.regular_sq.release(release_to)
        self.last_released = release_to


_STATS = (
    "orf_token_tx", "orf_token_rx", "memb_merge_detect_tx", "memb_merge_detect_rx",
    "memb_join_tx", "memb_join_rx", "mcast_tx", "mcast_retx", "mcast_rx",
    "memb_commit_token_tx", "memb_commit_token_rx", "token_hold_cancel_tx", "token_hold_cancel_rx",
    "operational_entered", "operational_token_lost", "gather_entered", "gather_token_lost",
    "commit_entered", "commit_token_lost", "recovery_entered", "recovery_token_lost",
    "consensus_timeouts", "rx_msg_dropped", "continuous_gather", "token_insane",
)
