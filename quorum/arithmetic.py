"""Pure votequorum arithmetic (corosync 3.1.7 exec/votequorum.c semantics).

No I/O and no clock: the last_man_standing window is driven by ``now``
(milliseconds, any monotonic origin) handed to :meth:`Votequorum.membership_changed`
and :meth:`Votequorum.tick`.  The expected-votes-tracking barrier, which
corosync keeps in ``<state_dir>/ev_tracking``, is passed in to the constructor
and read back from :attr:`Votequorum.ev_tracking_barrier` for the caller to
persist.

One :class:`Votequorum` instance is the view of ONE node ("us").  The event
methods mirror the daemon's entry points:

* ``membership_changed(members, now)``  -- votequorum_sync_init
* ``node_info(nodeid, votes, expected, flags)`` -- a delivered NODEINFO
* ``sync_activate()``                   -- votequorum_sync_activate
* ``tick(now)``                         -- the LMS timer
* ``set_expected(n)`` / ``set_votes(nodeid, n)`` / ``cancel_wait_for_all()``
  -- delivered RECONFIGURE messages
* ``leave()``                           -- exit path (allow_downscale LEAVING)

``local_nodeinfo()`` gives what this node would multicast in its NODEINFO.
``partition_sync()`` drives a whole partition of instances through one sync
round (init, every member's NODEINFO in nodeid order, activate).

Quorum devices (qdevice votes, master_wins) and runtime config reload are not
modelled.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence

# NODEINFO flags (wire values)
NODE_FLAGS_QUORATE = 1
NODE_FLAGS_LEAVING = 2
NODE_FLAGS_WFASTATUS = 4
NODE_FLAGS_FIRST = 8
NODE_FLAGS_QDEVICE_REGISTERED = 16
NODE_FLAGS_QDEVICE_ALIVE = 32
NODE_FLAGS_QDEVICE_CAST_VOTE = 64
NODE_FLAGS_QDEVICE_MASTER_WINS = 128

# getinfo flags (libvotequorum values)
INFO_TWONODE = 1
INFO_QUORATE = 2
INFO_WAIT_FOR_ALL = 4
INFO_LAST_MAN_STANDING = 8
INFO_AUTO_TIE_BREAKER = 16
INFO_ALLOW_DOWNSCALE = 32

# names printed by corosync-quorumtool, in its order
INFO_FLAG_NAMES = (
    (INFO_TWONODE, "2Node"),
    (INFO_QUORATE, "Quorate"),
    (INFO_WAIT_FOR_ALL, "WaitForAll"),
    (INFO_LAST_MAN_STANDING, "LastManStanding"),
    (INFO_AUTO_TIE_BREAKER, "AutoTieBreaker"),
    (INFO_ALLOW_DOWNSCALE, "AllowDownscale"),
)

# node states (libvotequorum values)
NODESTATE_MEMBER = 1
NODESTATE_DEAD = 2
NODESTATE_LEAVING = 3

# auto tie breaker modes (runtime.votequorum.atb_type values)
ATB_NONE = 0
ATB_LOWEST = 1
ATB_HIGHEST = 2
ATB_LIST = 3

DEFAULT_LMS_WINDOW_MS = 10000


class QuorumConfigError(ValueError):
    """A configuration corosync refuses at startup."""


@dataclass(frozen=True)
class QuorumConfig:
    """The ``quorum {}`` / ``nodelist {}`` inputs votequorum reads.

    ``nodelist`` maps nodeid -> quorum_votes (None = no nodelist).
    ``wait_for_all=None`` means "not configured" (then it follows two_node).
    """

    nodelist: Optional[Mapping[int, int]] = None
    expected_votes: int = 0
    votes: int = 1  # deprecated quorum.votes, used only without nodelist
    two_node: bool = False
    wait_for_all: Optional[bool] = None
    last_man_standing: bool = False
    last_man_standing_window: int = DEFAULT_LMS_WINDOW_MS
    auto_tie_breaker: bool = False
    auto_tie_breaker_node: Optional[str] = None
    allow_downscale: bool = False
    expected_votes_tracking: bool = False


def parse_atb(spec: Optional[str]) -> tuple[int, tuple[int, ...]]:
    """auto_tie_breaker_node -> (mode, list). Invalid text disables ATB."""
    if spec is None:
        return ATB_LOWEST, ()
    s = spec.strip()
    if s == "lowest":
        return ATB_LOWEST, ()
    if s == "highest":
        return ATB_HIGHEST, ()
    ids: list[int] = []
    for tok in s.split():
        try:
            v = int(tok)
        except ValueError:
            break
        if v == 0:
            break
        ids.append(v)
    if ids:
        return ATB_LIST, tuple(ids)
    return ATB_NONE, ()


@dataclass(frozen=True)
class QuorumInfo:
    """What ``corosync-quorumtool`` / votequorum_getinfo report for us."""

    nodeid: int
    members: tuple[int, ...]
    node_votes: int
    expected_votes: int  # us->expected_votes
    highest_expected: int
    total_votes: int
    quorum: int
    quorate: bool
    flags: int  # INFO_* bits
    wait_for_all_status: bool
    ev_barrier: int
    ev_tracking_barrier: int
    lms_deadline: Optional[int]

    @property
    def flag_names(self) -> tuple[str, ...]:
        return tuple(name for bit, name in INFO_FLAG_NAMES if self.flags & bit)


@dataclass
class NodeState:
    votes: int = 0
    expected_votes: int = 0
    flags: int = 0
    state: int = NODESTATE_DEAD


@dataclass(frozen=True)
class NodeInfoMsg:
    nodeid: int
    votes: int
    expected_votes: int
    flags: int


class Votequorum:
    """votequorum state of one node."""

    def __init__(self, nodeid: int, config: QuorumConfig,
                 ev_tracking_barrier: int = 0) -> None:
        self.nodeid = nodeid
        self.nodes: dict[int, NodeState] = {
            nodeid: NodeState(votes=1, state=NODESTATE_MEMBER, flags=NODE_FLAGS_FIRST)
        }
        self.quorum = 0
        self.cluster_is_quorate = False
        self.wait_for_all_status = False
        self.quorum_members: tuple[int, ...] = ()
        self.previous_quorum_members: tuple[int, ...] = ()
        self.lowest_node_id = nodeid
        self.highest_node_id = nodeid
        self.ev_barrier = 0
        self.ev_tracking_barrier = ev_tracking_barrier
        self.lms_deadline: Optional[int] = None
        self._read_config(config)
        self._recalculate(False, False)

    # ------------------------------------------------------------ config
    def _read_config(self, cfg: QuorumConfig) -> None:
        us = self.us
        have_nodelist = cfg.nodelist is not None and self.nodeid in cfg.nodelist
        if not have_nodelist and not cfg.expected_votes:
            raise QuorumConfigError(
                "nodelist or quorum.expected_votes must be configured")
        node_expected = sum(cfg.nodelist.values()) if have_nodelist else 0

        self.two_node = bool(cfg.two_node)
        self.allow_downscale = bool(cfg.allow_downscale)
        self.wfa_autoset = cfg.wait_for_all is None
        self.wait_for_all = bool(cfg.two_node) if self.wfa_autoset else bool(cfg.wait_for_all)
        self.last_man_standing = bool(cfg.last_man_standing)
        self.lms_window = int(cfg.last_man_standing_window)
        # allow_downscale switches expected-votes tracking on
        self.ev_tracking = bool(cfg.expected_votes_tracking) or self.allow_downscale
        if cfg.auto_tie_breaker:
            self.atb, self.atb_list = parse_atb(cfg.auto_tie_breaker_node)
        else:
            self.atb, self.atb_list = ATB_NONE, ()

        if self.two_node and self.atb != ATB_NONE:
            self.two_node = False  # ATB wins over two_node
        if self.atb != ATB_NONE and node_expected % 2 and not self.wait_for_all:
            if self.last_man_standing:
                raise QuorumConfigError(
                    "auto_tie_breaker & last_man_standing not available in odd sized cluster")
            self.atb, self.atb_list = ATB_NONE, ()

        expected = cfg.expected_votes
        if self.ev_tracking:
            expected = self.ev_tracking_barrier
        if have_nodelist:
            us.votes = cfg.nodelist[self.nodeid]
            us.expected_votes = node_expected
        else:
            us.votes = cfg.votes
        if expected:
            us.expected_votes = expected
        self.ev_barrier = us.expected_votes
        if self.wait_for_all:
            self._set_wfa_status(True)

    # ------------------------------------------------------------ helpers
    @property
    def us(self) -> NodeState:
        return self.nodes[self.nodeid]

    def _set_wfa_status(self, on: bool) -> None:
        self.wait_for_all_status = on
        if on:
            self.us.flags |= NODE_FLAGS_WFASTATUS
        else:
            self.us.flags &= ~NODE_FLAGS_WFASTATUS

    def _member_ids(self) -> list[int]:
        return [n for n, s in self.nodes.items() if s.state == NODESTATE_MEMBER]

    def _totals(self) -> tuple[int, int, int]:
        """(total_votes, highest_expected, member_count) over MEMBER nodes."""
        tv = he = cnt = 0
        for s in self.nodes.values():
            if s.state == NODESTATE_MEMBER:
                tv += s.votes
                he = max(he, s.expected_votes)
                cnt += 1
        return tv, he, cnt

    def calculate_quorum(self, allow_decrease: bool, max_expected: int) -> tuple[int, int]:
        """Return (new quorum, total_votes); does not change state."""
        if self.allow_downscale and allow_decrease and max_expected:
            max_expected = max(self.ev_barrier, max_expected)
        total_votes, highest_expected, total_nodes = self._totals()
        if max_expected > 0:
            highest_expected = max_expected
        newquorum = max((highest_expected + 2) // 2, (total_votes + 2) // 2)
        if not allow_decrease:
            newquorum = max(self.quorum, newquorum)
        if self.two_node and total_nodes <= 2:
            newquorum = 1
        return newquorum, total_votes

    def _update_node_expected(self, n: int) -> None:
        if n:
            for s in self.nodes.values():
                if s.state == NODESTATE_MEMBER:
                    s.expected_votes = n

    def _atb_allows(self) -> bool:
        members = set(self.quorum_members)
        live = {n for n, s in self.nodes.items() if s.state == NODESTATE_MEMBER}
        if self.atb == ATB_LOWEST:
            return self.lowest_node_id in live
        if self.atb == ATB_HIGHEST:
            return self.highest_node_id in live
        prev = set(self.previous_quorum_members)
        for i, cand in enumerate(self.atb_list):
            if cand in members:
                # an earlier list entry that was with us before the split
                # may now be on the other side: we cannot claim the tie
                return not any(e in prev for e in self.atb_list[:i])
        return False

    def _are_we_quorate(self, total_votes: int) -> None:
        us = self.us
        if self.wait_for_all and self.wait_for_all_status:
            if total_votes != us.expected_votes:
                assert not self.cluster_is_quorate
                return
            self._set_wfa_status(False)

        quorate = self.quorum <= total_votes
        if quorate:
            live = self._member_ids()
            self.lowest_node_id = min(live + [self.nodeid])
            self.highest_node_id = max(live + [self.nodeid])

        # the C code subtracts two ints and compares with an unsigned quorum:
        # a grown membership wraps to a huge value and never passes
        shrink = len(self.previous_quorum_members) - len(self.quorum_members)
        if (self.atb != ATB_NONE
                and total_votes == us.expected_votes // 2
                and 0 <= shrink < self.quorum
                and self._atb_allows()):
            quorate = True

        self.cluster_is_quorate = quorate
        if quorate:
            us.flags |= NODE_FLAGS_QUORATE
        else:
            us.flags &= ~NODE_FLAGS_QUORATE
        if self.wait_for_all:
            self._set_wfa_status(not quorate)

    def _recalculate(self, allow_decrease: bool, by_current_nodes: bool) -> None:
        us = self.us
        total_votes, _, members = self._totals()
        if not by_current_nodes:
            members = 0
        if total_votes > us.expected_votes:
            us.expected_votes = total_votes
        if self.ev_tracking and us.expected_votes > self.ev_tracking_barrier:
            self.ev_tracking_barrier = us.expected_votes
        self.quorum, total_votes = self.calculate_quorum(allow_decrease, members)
        self._update_node_expected(members)
        self._are_we_quorate(total_votes)

    # ------------------------------------------------------------ events
    def membership_changed(self, members: Iterable[int], now: int) -> None:
        """A new ring (sync_init): mark departed nodes dead, arm the LMS timer."""
        members = tuple(members)
        if len(members) > 1:
            self.us.flags &= ~NODE_FLAGS_FIRST
        left = False
        for n in self.quorum_members:
            if n not in members:
                left = True
                if n in self.nodes:
                    self.nodes[n].state = NODESTATE_DEAD
        if self.last_man_standing:
            low_here = any(n == self.lowest_node_id and s.state == NODESTATE_MEMBER
                           for n, s in self.nodes.items())
            if ((len(members) >= self.quorum and left)
                    or (len(members) <= self.quorum and self.atb != ATB_NONE and low_here)):
                self.lms_deadline = now + self.lms_window
        self.previous_quorum_members = self.quorum_members
        self.quorum_members = members

    def node_info(self, nodeid: int, votes: int, expected_votes: int, flags: int) -> None:
        """A delivered NODEINFO (including our own)."""
        new = nodeid not in self.nodes
        node = self.nodes.setdefault(nodeid, NodeState())
        old = (0, 0, 0, NODESTATE_DEAD) if new else (
            node.votes, node.expected_votes, node.flags, node.state)
        allow_downgrade = by_node = False

        node.flags = flags
        node.votes = votes
        node.state = NODESTATE_MEMBER
        if flags & NODE_FLAGS_LEAVING:
            node.state = NODESTATE_LEAVING
            allow_downgrade = by_node = True
        if not self.cluster_is_quorate and flags & NODE_FLAGS_QUORATE:
            allow_downgrade = True
            self.us.expected_votes = expected_votes
        if flags & NODE_FLAGS_QUORATE or self.ev_tracking:
            node.expected_votes = expected_votes
        else:
            node.expected_votes = self.us.expected_votes
        if self.last_man_standing and node.votes > 1:
            self.last_man_standing = False  # LMS needs one vote per node
            self.lms_deadline = None

        if (new or nodeid == self.nodeid or flags & NODE_FLAGS_FIRST
                or old != (node.votes, node.expected_votes, node.flags, node.state)):
            self._recalculate(allow_downgrade, by_node)

        if (self.wait_for_all and not flags & NODE_FLAGS_WFASTATUS
                and flags & NODE_FLAGS_QUORATE):
            self._set_wfa_status(False)

    def sync_activate(self) -> None:
        self._recalculate(False, False)

    def tick(self, now: int) -> bool:
        """Fire the LMS timer if due. Returns True when it fired."""
        if self.lms_deadline is None or now < self.lms_deadline:
            return False
        self.lms_deadline = None
        if self.cluster_is_quorate:
            self._recalculate(True, True)
        return True

    def check_set_expected(self, n: int) -> bool:
        """The local validation corosync-quorumtool -e goes through."""
        saved = self.allow_downscale
        self.allow_downscale = False
        try:
            newquorum, total = self.calculate_quorum(True, n)
        finally:
            self.allow_downscale = saved
        return not (n < total or (self.cluster_is_quorate and newquorum > total))

    def set_expected(self, n: int) -> None:
        """Delivered RECONFIGURE(EXPECTED_VOTES)."""
        self._update_node_expected(n)
        self.ev_barrier = n
        if self.ev_tracking:
            self.us.expected_votes = max(self.us.expected_votes, self.ev_tracking_barrier)
        self._recalculate(True, False)

    def set_votes(self, nodeid: int, n: int) -> None:
        """Delivered RECONFIGURE(NODE_VOTES)."""
        if nodeid not in self.nodes:
            return
        self.nodes[nodeid].votes = n
        self._recalculate(True, False)

    def cancel_wait_for_all(self) -> None:
        """Delivered RECONFIGURE(CANCEL_WFA)."""
        self._set_wfa_status(False)
        self._recalculate(False, False)

    def leave(self) -> Optional[NodeInfoMsg]:
        """Clean shutdown: with allow_downscale, the LEAVING NODEINFO to send."""
        if not self.allow_downscale:
            return None
        self.us.flags |= NODE_FLAGS_LEAVING
        return self.local_nodeinfo()

    # ------------------------------------------------------------ output
    def local_nodeinfo(self) -> NodeInfoMsg:
        us = self.us
        return NodeInfoMsg(self.nodeid, us.votes, us.expected_votes, us.flags)

    def info(self) -> QuorumInfo:
        total_votes, highest_expected, _ = self._totals()
        flags = 0
        if self.two_node:
            flags |= INFO_TWONODE
        if self.cluster_is_quorate:
            flags |= INFO_QUORATE
        if self.wait_for_all:
            flags |= INFO_WAIT_FOR_ALL
        if self.last_man_standing:
            flags |= INFO_LAST_MAN_STANDING
        if self.atb != ATB_NONE:
            flags |= INFO_AUTO_TIE_BREAKER
        if self.allow_downscale:
            flags |= INFO_ALLOW_DOWNSCALE
        return QuorumInfo(
            nodeid=self.nodeid,
            members=self.quorum_members,
            node_votes=self.us.votes,
            expected_votes=self.us.expected_votes,
            highest_expected=highest_expected,
            total_votes=total_votes,
            quorum=self.quorum,
            quorate=self.cluster_is_quorate,
            flags=flags,
            wait_for_all_status=self.wait_for_all_status,
            ev_barrier=self.ev_barrier,
            ev_tracking_barrier=self.ev_tracking_barrier,
            lms_deadline=self.lms_deadline,
        )


def partition_sync(instances: Mapping[int, Votequorum], members: Sequence[int],
                   now: int) -> dict[int, QuorumInfo]:
    """One sync round for the instances in ``members`` (all must be present).

    Every member runs sync_init, then each member's NODEINFO (taken after its
    sync_init, as sync_process does) is delivered to all members in nodeid
    order, then every member runs sync_activate.
    """
    members = tuple(sorted(members))
    for n in members:
        instances[n].membership_changed(members, now)
    msgs = [instances[n].local_nodeinfo() for n in members]
    for m in msgs:
        for n in members:
            instances[n].node_info(m.nodeid, m.votes, m.expected_votes, m.flags)
    for n in members:
        instances[n].sync_activate()
    return {n: instances[n].info() for n in members}


def tick_all(instances: Mapping[int, Votequorum], members: Iterable[int],
             now: int) -> dict[int, QuorumInfo]:
    for n in members:
        instances[n].tick(now)
    return {n: instances[n].info() for n in members}
