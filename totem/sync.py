"""The service synchronisation engine of corosync 3.1.7 (exec/sync.c) as pure code.

After every regular configuration the services bring their state in line, one
service after the other, with barriers between the steps (spec services-wire.md
§2). Every node:

1. on a transitional configuration remembers its members (T) and aborts a sync
   still running;
2. on a regular configuration (ring R, members M) multicasts SERVICE_BUILD(R, its
   sync-capable service ids) on group ``sync`` and calls every local service's
   ``sync_init(T∩M, M, R)``;
3. merges the service lists of the SERVICE_BUILDs delivered for R (ids it does not
   know become steps that do nothing); when one arrived from every member, it
   enters the first step;
4. in a step runs the service's ``sync_process`` (its messages go out on group
   ``a``), then multicasts BARRIER(R); when a barrier for R was delivered from
   every member it activates the service and enters the next step;
5. after the last step, synchronisation is complete: the node may serve clients
   again and totem leaves its transitional send queue (``trans_ack``).

Barriers carry no step number and SERVICE_BUILD and BARRIER set the same
per-member mark, which is cleared when a step is entered; this module mirrors
those rules exactly, since a real node cannot tell them apart from the wire. Only
what corosync leaves undefined is ignored here: sync messages after completion (it
would index past its service list) and, after an abort, messages carrying ring id
0/0 (it compares them with its zeroed ring id).

The engine does no I/O. Every call returns the messages to send, in order, as
:class:`Outgoing` (groups, body) for :meth:`totem.stack.TotemStack.send`; events
(progress, and the log lines corosync prints, as :class:`ServiceLog`) are queued
for :meth:`SyncEngine.next_event`. When the node sees :class:`SyncCompleted` it
calls ``trans_ack`` on its stack.

Sending: pass ``room`` (a :class:`Room`, the node's :class:`~totem.stack.TotemStack`) to
have the engine hold back what the transport cannot take yet; :meth:`poll`
releases it later, in order. Without ``room`` everything is released at once and
the caller must queue it all.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Protocol, Sequence

from .services.base import Service, ServiceLog
from .srp import ConfigurationChanged, ConfigurationKind
from .stack import MessageReceived
from .wire import RingId
from .wire.errors import WireError
from .wire.pg import GROUP_A, GROUP_SYNC
from .wire.service import Barrier, ServiceBuild, parse_service_header_untrusted, parse_sync_untrusted

SUBSYS = "SYNC"


class Room(Protocol):
    """The transport's send queue as the engine sees it: what a message costs in it,
    and whether a total cost fits now. Costs add up, so checks stay O(1)."""

    def cost(self, size: int) -> int: ...
    def fits(self, cost: int) -> bool: ...


class Outgoing(NamedTuple):
    """A message to multicast: ``TotemStack.send(out.groups, out.body)``."""

    groups: tuple[bytes, ...]
    body: bytes


# -- events -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncStarted:
    ring_id: RingId
    members: tuple[int, ...]
    trans: tuple[int, ...]
    """Members of the transitional configuration that are also in the new ring."""


@dataclass(frozen=True, slots=True)
class ServiceSynced:
    """Every member's barrier for this step was delivered; the service was activated."""

    ring_id: RingId
    service_id: int
    name: str


@dataclass(frozen=True, slots=True)
class SyncCompleted:
    """All steps done: serve clients again, and call ``trans_ack`` on the stack."""

    ring_id: RingId
    members: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class SyncAborted:
    """A configuration change interrupted the sync of this ring."""

    ring_id: RingId


SyncEvent = SyncStarted | ServiceSynced | SyncCompleted | SyncAborted | ServiceLog


class SyncState(enum.Enum):
    """corosync's ``sync_state``."""

    SERVICELIST_BUILD = "servicelist build"
    PROCESS = "process"
    BARRIER = "barrier"


class _Step:
    __slots__ = ("service_id", "name", "service", "activated")

    def __init__(self, service_id: int, name: str, service: Service | None) -> None:
        self.service_id = service_id
        self.name = name
        self.service = service
        """None for a service only another node knows: its step does nothing here."""
        self.activated = False


def unknown_service_name(service_id: int) -> str:
    return f"Unknown External Service (id = {service_id})"


STAT_KEYS = ("service_builds", "barriers", "old_ring_discarded", "after_completion_discarded",
             "malformed_sync", "malformed_exec", "unknown_exec_fn", "unknown_service", "app_refused")


class SyncEngine:
    """One node's sync engine plus corosync's exec dispatch to the local services."""

    def __init__(
        self,
        nodeid: int,
        services: Iterable[Service] = (),
        *,
        room: Room | None = None,
    ) -> None:
        self.nodeid = nodeid
        self.services: dict[int, Service] = {}
        for svc in services:
            if svc.service_id in self.services:
                raise ValueError(f"two services with id {svc.service_id}")
            self.services[svc.service_id] = svc
        self.room = room
        self.in_sync = True
        """corosync's ``sync_in_process``: True from start-up until the first sync completes
        and from every configuration change until the next completion."""
        self.state = SyncState.BARRIER
        self.ring_id: RingId | None = None
        """The ring being synchronised (None once aborted, as corosync zeroes it)."""
        self.members: tuple[int, ...] = ()
        self._trans: tuple[int, ...] = ()
        self._received: dict[int, bool] = {}
        self._steps: list[_Step] = []
        self._index = 0
        self._process_pending = False
        self._process_retry = False
        self._barrier_staged = False
        """The step's barrier is held: the state stays PROCESS (as in corosync, where the
        step is not done while a send fails) until the transport takes it."""
        self._completed = False
        self._staged: deque[Outgoing] = deque()
        self._staged_cost = 0
        """What the staged messages cost in the transport's queue (with ``room``)."""
        self._events: deque[object] = deque()
        self.stats: dict[str, int] = dict.fromkeys(STAT_KEYS, 0)
        # last: a service may emit or send as soon as it is attached
        for svc in self.services.values():
            svc.attach(self._emit, self.app_send)

    # -- views ------------------------------------------------------------------------------

    @property
    def service_list(self) -> list[tuple[int, str]]:
        """The steps of the current sync: (service id, name), in order."""
        return [(s.service_id, s.name) for s in self._steps]

    @property
    def current_step(self) -> tuple[int, str] | None:
        if self._completed or not self._steps or self._index >= len(self._steps):
            return None
        s = self._steps[self._index]
        return (s.service_id, s.name)

    @property
    def wants_poll(self) -> bool:
        """Whether :meth:`poll` has something to do (a step not done yet, or held messages)."""
        return bool(self._staged) or self._process_pending

    def local_service_ids(self) -> tuple[int, ...]:
        return tuple(sid for sid, svc in sorted(self.services.items()) if svc.syncs)

    # -- events -------------------------------------------------------------------------------

    def _emit(self, ev: object) -> None:
        self._events.append(ev)

    def _log(self, level: str, text: str, subsys: str = SUBSYS) -> None:
        self._events.append(ServiceLog(level, subsys, text))

    def next_event(self) -> object | None:
        """The next event (sync progress, service events, log lines), or None."""
        return self._events.popleft() if self._events else None

    def take_events(self) -> list[object]:
        out = list(self._events)
        self._events.clear()
        return out

    # -- input ---------------------------------------------------------------------------------

    def handle(self, ev: object) -> list[Outgoing]:
        """Feed any event of :class:`~totem.stack.TotemStack`; the ones that matter are used."""
        if isinstance(ev, MessageReceived):
            return self.deliver(ev.sender, ev.groups, ev.body)
        if isinstance(ev, ConfigurationChanged):
            return self.configuration_changed(ev)
        return []

    def configuration_changed(self, ev: ConfigurationChanged) -> list[Outgoing]:
        interrupted = self.in_sync
        self.in_sync = True
        if interrupted:
            self._abort()
        if ev.kind is ConfigurationKind.TRANSITIONAL:
            self._trans = tuple(ev.members)
            return self._flush()
        self._start(tuple(ev.members), ev.ring_id)
        return self._flush()

    def deliver(self, sender: int, groups: Sequence[bytes], body: bytes) -> list[Outgoing]:
        """A message delivered in agreed order: sync messages drive the engine, messages on
        group ``a`` go to their service (at any time, as corosync's main dispatches them)."""
        if GROUP_SYNC in groups:
            self._deliver_sync(sender, body)
        if GROUP_A in groups:
            self._deliver_exec(sender, body)
        return self._flush()

    def app_send(self, body: bytes) -> bool:
        """Queue an exec message a service originates for a client (CPG join, mcast,
        ...) on group ``a``. Refused while a sync runs (corosync holds application
        traffic until its sync completes, spec §2.6) or when the transport has no
        room; the next :meth:`poll` hands it out."""
        if self.in_sync:
            self.stats["app_refused"] += 1
            return False
        room = self.room
        if room is not None and not room.fits(self._staged_cost + room.cost(len(body))):
            self.stats["app_refused"] += 1
            return False
        self._stage(Outgoing((GROUP_A,), body))
        return True

    def _stage(self, out: Outgoing) -> None:
        self._staged.append(out)
        if self.room is not None:
            self._staged_cost += self.room.cost(len(out.body))

    def poll(self) -> list[Outgoing]:
        """Retry a step whose ``sync_process`` was not done, and release held messages.

        Call it whenever the transport may have room again (every token) and from time
        to time while :attr:`wants_poll`; a step's first ``sync_process`` runs at once,
        from the call that entered the step.
        """
        return self._flush(retry=True)

    # -- the protocol ------------------------------------------------------------------------------

    def _start(self, members: tuple[int, ...], ring_id: RingId) -> None:
        self.ring_id = ring_id
        self.members = members
        self.state = SyncState.SERVICELIST_BUILD
        self._received = dict.fromkeys(members, False)
        self._index = 0
        self._completed = False
        self._process_pending = False
        self._barrier_staged = False
        self._steps = [_Step(sid, svc.name, svc) for sid, svc in sorted(self.services.items()) if svc.syncs]
        ids = tuple(s.service_id for s in self._steps)
        self._stage(Outgoing((GROUP_SYNC,), ServiceBuild(ring_id, ids).pack()))
        self._trans = tuple(n for n in self._trans if n in members)
        self._emit(SyncStarted(ring_id, members, self._trans))
        self._log("debug", "call init for locally known services")
        for step in self._steps:
            assert step.service is not None
            step.service.sync_init(self._trans, members, ring_id)

    def _abort(self) -> None:
        if self.state is SyncState.PROCESS:
            self._process_pending = False
            step = self._steps[self._index] if self._index < len(self._steps) else None
            if step is not None and step.service is not None:
                step.service.sync_abort()
        if self.ring_id is not None and not self._completed:
            self._emit(SyncAborted(self.ring_id))
        # what the transport has not taken yet belonged to the aborted round
        self._staged.clear()
        self._staged_cost = 0
        self._barrier_staged = False
        self.ring_id = None

    def _deliver_sync(self, sender: int, body: bytes) -> None:
        try:
            msg = parse_sync_untrusted(body)
        except WireError as exc:
            self.stats["malformed_sync"] += 1
            self._log("debug", f"undecodable sync message from node {sender}: {exc}")
            return
        is_build = isinstance(msg, ServiceBuild)
        if self.ring_id is None or msg.ring_id != self.ring_id:
            self.stats["old_ring_discarded"] += 1
            self._log("debug", f"{'service build' if is_build else 'barrier'} for old ring - discarding")
            return
        if self._completed:
            # corosync would step past the end of its service list here
            self.stats["after_completion_discarded"] += 1
            self._log("debug", f"{'service build' if is_build else 'barrier'} after completion - discarding")
            return
        if is_build:
            self.stats["service_builds"] += 1
            self._merge(msg)
        else:
            self.stats["barriers"] += 1
        if sender in self._received:
            self._received[sender] = True
        if not all(self._received.values()):
            return
        if is_build:
            self._log("debug", "enter sync process")
            self._process_enter()
        else:
            self._barrier_reached()

    def _merge(self, msg: ServiceBuild) -> None:
        known = {s.service_id for s in self._steps}
        added = False
        for sid in msg.services:
            if sid not in known:
                known.add(sid)
                self._steps.append(_Step(sid, unknown_service_name(sid), None))
                added = True
        if added:
            self._steps.sort(key=lambda s: s.service_id)

    def _process_enter(self) -> None:
        self.state = SyncState.PROCESS
        if not self._steps:
            self.state = SyncState.SERVICELIST_BUILD
            self._complete()
            return
        for n in self._received:
            self._received[n] = False
        self._process_pending = True
        self._process_retry = False

    def _barrier_reached(self) -> None:
        if self._index >= len(self._steps):
            return
        step = self._steps[self._index]
        self._log("debug", f"Committing synchronization for {step.name}")
        step.activated = True
        if step.service is not None:
            step.service.sync_activate()
        assert self.ring_id is not None
        self._emit(ServiceSynced(self.ring_id, step.service_id, step.name))
        self._index += 1
        if self._index == len(self._steps):
            self._complete()
        else:
            self._process_enter()

    def _complete(self) -> None:
        assert self.ring_id is not None
        self._completed = True
        self._process_pending = False
        self.in_sync = False
        self._log("notice", "Completed service synchronization, ready to provide service.", "MAIN")
        self._emit(SyncCompleted(self.ring_id, self.members))

    def _run_process(self) -> None:
        step = self._steps[self._index]
        if step.activated:
            self._process_pending = False
            return
        if step.service is not None:
            messages, done = step.service.sync_process()
        else:
            messages, done = [], True
        for body in messages:
            self._stage(Outgoing((GROUP_A,), body))
        self._process_retry = True
        if done:
            self._process_pending = False
            assert self.ring_id is not None
            self._stage(Outgoing((GROUP_SYNC,), Barrier(self.ring_id).pack()))
            self._barrier_staged = True

    # -- sending --------------------------------------------------------------------------------

    def _release(self, out: list[Outgoing]) -> None:
        """Move held messages to ``out``, oldest first, as far as ``room`` admits them
        together with what ``out`` already holds."""
        staged, room = self._staged, self.room
        if room is None:
            out.extend(staged)
            staged.clear()
        else:
            cost = sum(room.cost(len(o.body)) for o in out)
            while staged:
                c = room.cost(len(staged[0].body))
                if not room.fits(cost + c):
                    return
                cost += c
                self._staged_cost -= c
                out.append(staged.popleft())
        if self._barrier_staged:
            self._barrier_staged = False
            self.state = SyncState.BARRIER

    def _flush(self, retry: bool = False) -> list[Outgoing]:
        out: list[Outgoing] = []
        self._release(out)
        if self._process_pending and not self._staged and (retry or not self._process_retry):
            self._run_process()
            self._release(out)
        return out

    # -- exec dispatch ------------------------------------------------------------------------------

    def _deliver_exec(self, sender: int, body: bytes) -> None:
        try:
            header = parse_service_header_untrusted(body)
        except WireError:
            self.stats["malformed_exec"] += 1
            return
        service, fn = header.service, header.function
        svc = self.services.get(service)
        if svc is None:
            self.stats["unknown_service"] += 1
            return
        if fn >= svc.exec_count:
            self.stats["unknown_exec_fn"] += 1
            self._log("warning", f"discarded unknown message {fn} for service {service} (max id {svc.exec_count})",
                      "MAIN")
            return
        try:
            svc.deliver(sender, fn, body)
        except WireError as exc:
            self.stats["malformed_exec"] += 1
            self._log("warning", f"undecodable message {fn} for service {service} from node {sender}: {exc}",
                      "MAIN")
