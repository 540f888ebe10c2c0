"""Pure votequorum arithmetic (corosync 3.1.7 exec/votequorum.c semantics).

No I/O and no clock: the last_man_standing window is driven by ``now``
(milliseconds, any monotonic origin) handed to :meth:`Votequorum.membership_changed`
and :meth:`Votequorum.tick`.  The expected-votes-tracking barrier, which
corosync keeps in ``<state_dir>/ev_tracking``, is passed in to the constructor;
every change of it is reported as a :class:`Note` for the caller to persist.

One :class:`Votequorum` instance is the view of ONE node ("us").  The event
methods mirror the daemon's entry points:

* ``membership_changed(members, now)``  -- the votequorum sync_init
* ``node_info(nodeid, votes, expected, flags, sender=)`` -- a delivered NODEINFO
* ``sync_activate()``                   -- the votequorum sync_activate
* ``tick(now)``                         -- the LMS timer
* ``set_expected(n)`` / ``set_votes(nodeid, n)`` / ``cancel_wait_for_all(nodeid)``
  -- delivered RECONFIGURE messages
* ``lib_set_expected(n)`` / ``lib_set_votes(nodeid, n)`` -- the local checks (and
  local side effects) of the libvotequorum requests that send those RECONFIGUREs
* ``read_config(cfg, runtime=True)``   -- a configuration reload
* ``leave()``                           -- exit path (allow_downscale LEAVING)

What corosync does *because* of these steps (notify clients, call the quorum
service, log -- its VOTEQ debug lines included --, write the ev_tracking file) is
queued as :class:`Note` values that the caller drains with
:meth:`Votequorum.take_notes`, in the order corosync does it.

``local_nodeinfo()`` / ``device_nodeinfo()`` give what this node multicasts in
its NODEINFOs.  ``partition_sync()`` drives a whole partition of instances
through one sync round (init, every member's NODEINFO in nodeid order,
activate).

Bit-level quirks of votequorum.c that change results are kept on purpose, since
real nodes in a mixed ring compute with them: quorum is stored in 8 bits; the
lowest/highest node ids used by auto_tie_breaker are unknown (-1) until the node
has once been quorate; the "other half might be quorate" test of
auto_tie_breaker compares a *signed* member-count difference, so a grown
membership always passes it; the known-node list is kept in votequorum.c's
(almost, but not quite, sorted) insertion order, which clients see in quorum
notifications.

Local quorum devices (registration, polling, master_wins) are not modelled; a
device slot's votes learnt from other nodes' NODEINFO are, as corosync counts
them.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Mapping, Optional, Sequence, Union


class NodeFlags(enum.IntFlag):
    """The flags word of a NODEINFO (wire values)."""

    QUORATE = 0x01
    LEAVING = 0x02
    WFASTATUS = 0x04
    FIRST = 0x08
    QDEVICE_REGISTERED = 0x10
    QDEVICE_ALIVE = 0x20
    QDEVICE_CAST_VOTE = 0x40
    QDEVICE_MASTER_WINS = 0x80


class NodeState(enum.IntEnum):
    """A known node's state (libvotequorum values)."""

    MEMBER = 1
    DEAD = 2
    LEAVING = 3


class InfoFlags(enum.IntFlag):
    """The flags of votequorum_getinfo (libvotequorum values)."""

    TWONODE = 1
    QUORATE = 2
    WAIT_FOR_ALL = 4
    LAST_MAN_STANDING = 8
    AUTO_TIE_BREAKER = 16
    ALLOW_DOWNSCALE = 32
    QDEVICE_REGISTERED = 64
    QDEVICE_ALIVE = 128
    QDEVICE_CAST_VOTE = 256
    QDEVICE_MASTER_WINS = 512


NODE_FLAGS_QUORATE = NodeFlags.QUORATE
NODE_FLAGS_LEAVING = NodeFlags.LEAVING
NODE_FLAGS_WFASTATUS = NodeFlags.WFASTATUS
NODE_FLAGS_FIRST = NodeFlags.FIRST
INFO_TWONODE = InfoFlags.TWONODE
INFO_QUORATE = InfoFlags.QUORATE
INFO_WAIT_FOR_ALL = InfoFlags.WAIT_FOR_ALL
INFO_LAST_MAN_STANDING = InfoFlags.LAST_MAN_STANDING
INFO_AUTO_TIE_BREAKER = InfoFlags.AUTO_TIE_BREAKER
INFO_ALLOW_DOWNSCALE = InfoFlags.ALLOW_DOWNSCALE

INFO_FLAG_NAMES = (
    (InfoFlags.TWONODE, "2Node"),
    (InfoFlags.QUORATE, "Quorate"),
    (InfoFlags.WAIT_FOR_ALL, "WaitForAll"),
    (InfoFlags.LAST_MAN_STANDING, "LastManStanding"),
    (InfoFlags.AUTO_TIE_BREAKER, "AutoTieBreaker"),
    (InfoFlags.ALLOW_DOWNSCALE, "AllowDownscale"),
    (InfoFlags.QDEVICE_REGISTERED, "Qdevice"),
    (InfoFlags.QDEVICE_ALIVE, "QdeviceAlive"),
    (InfoFlags.QDEVICE_CAST_VOTE, "QdeviceCastVote"),
    (InfoFlags.QDEVICE_MASTER_WINS, "QdeviceMasterWins"),
)
"""Names of the getinfo flags; the first seven as corosync-quorumtool prints them."""

_NODE_TO_INFO_QDEVICE = (
    (NodeFlags.QDEVICE_REGISTERED, InfoFlags.QDEVICE_REGISTERED),
    (NodeFlags.QDEVICE_ALIVE, InfoFlags.QDEVICE_ALIVE),
    (NodeFlags.QDEVICE_CAST_VOTE, InfoFlags.QDEVICE_CAST_VOTE),
    (NodeFlags.QDEVICE_MASTER_WINS, InfoFlags.QDEVICE_MASTER_WINS),
)

NODESTATE_MEMBER = NodeState.MEMBER
NODESTATE_DEAD = NodeState.DEAD
NODESTATE_LEAVING = NodeState.LEAVING

QDEVICE_NODEID = 0


class Atb(enum.IntEnum):
    """auto tie breaker modes (``runtime.votequorum.atb_type`` values)."""

    NONE = 0
    LOWEST = 1
    HIGHEST = 2
    LIST = 3


ATB_NONE, ATB_LOWEST, ATB_HIGHEST, ATB_LIST = Atb.NONE, Atb.LOWEST, Atb.HIGHEST, Atb.LIST

DEFAULT_LMS_WINDOW_MS = 10000
QUORUM_MASK = 0xFF
"""votequorum.c keeps ``quorum`` in a uint8_t: every stored value is cut to 8 bits."""


class QuorumConfigError(ValueError):
    """A configuration corosync refuses at startup."""


AtbSpec = Union[str, Sequence[int], None]


@dataclass(frozen=True)
class QuorumConfig:
    """The ``quorum {}`` / ``nodelist {}`` inputs votequorum reads.

    ``nodelist`` maps nodeid -> quorum_votes (None = no nodelist).
    ``wait_for_all=None`` means "not configured" (then it follows two_node).
    ``auto_tie_breaker_node``: ``"lowest"``, ``"highest"``, node ids (a sequence, or
    the text of the config key), or None (lowest).
    """

    nodelist: Optional[Mapping[int, int]] = None
    expected_votes: int = 0
    votes: int = 1  # deprecated quorum.votes, used only without nodelist
    two_node: bool = False
    wait_for_all: Optional[bool] = None
    last_man_standing: bool = False
    last_man_standing_window: int = DEFAULT_LMS_WINDOW_MS
    auto_tie_breaker: bool = False
    auto_tie_breaker_node: AtbSpec = None
    allow_downscale: bool = False
    expected_votes_tracking: bool = False

    @property
    def tracks_expected_votes(self) -> bool:
        """Whether votequorum keeps the ev_tracking file (allow_downscale implies it)."""
        return self.expected_votes_tracking or self.allow_downscale


def parse_atb(spec: AtbSpec) -> tuple[Atb, tuple[int, ...]]:
    """auto_tie_breaker_node -> (mode, list), as votequorum's parser reads it: the
    words ``lowest``/``highest``, or numbers read one after another (strtol) until one
    is 0 or unreadable. Anything else disables ATB."""
    if spec is None:
        return Atb.LOWEST, ()
    if not isinstance(spec, str):
        ids = tuple(int(x) for x in spec)
        return (Atb.LIST, ids) if ids else (Atb.NONE, ())
    if spec == "lowest":
        return Atb.LOWEST, ()
    if spec == "highest":
        return Atb.HIGHEST, ()
    ids: list[int] = []
    rest = spec
    while True:
        rest = rest.lstrip(" \t\n\v\f\r")
        end = 1 if rest[:1] in ("+", "-") else 0
        while end < len(rest) and rest[end].isdigit():
            end += 1
        digits = rest[:end]
        if not digits.lstrip("+-") or int(digits) == 0:
            break
        ids.append(int(digits))
        rest = rest[end:]
    if ids:
        return Atb.LIST, tuple(ids)
    return Atb.NONE, ()


@dataclass(frozen=True)
class QuorumInfo:
    """What votequorum_getinfo reports for one node (``corosync-quorumtool``)."""

    nodeid: int
    state: int
    members: tuple[int, ...]
    node_votes: int
    expected_votes: int  # the node's expected votes
    highest_expected: int
    total_votes: int
    quorum: int
    quorate: bool
    flags: int  # InfoFlags bits
    wait_for_all_status: bool
    ev_barrier: int
    ev_tracking_barrier: int
    lms_deadline: Optional[float]
    qdevice_votes: int

    @property
    def flag_names(self) -> tuple[str, ...]:
        return tuple(name for bit, name in INFO_FLAG_NAMES if self.flags & bit)


@dataclass
class ClusterNode:
    """One entry of the known-node table (never removed, only marked DEAD)."""

    votes: int = 0
    expected_votes: int = 0
    flags: int = 0
    state: int = NodeState.DEAD


@dataclass(frozen=True)
class NodeInfoMsg:
    nodeid: int
    votes: int
    expected_votes: int
    flags: int


@dataclass(frozen=True)
class Note:
    """Something corosync does as a consequence of a step, in order.

    ``kind``:
    * ``"log"``: ``level``, ``text`` -- a VOTEQ log line;
    * ``"expected"``: ``value`` -- the EXPECTEDVOTES notification to trackers;
    * ``"quorum"``: -- the quorum callback (vsf_quorum + QUORUM notification to
      trackers) with the current quorate flag and members;
    * ``"ev_tracking"``: ``value`` -- write the ev_tracking barrier to disk.
    """

    kind: str
    value: int = 0
    level: str = ""
    text: str = ""


class Votequorum:
    """votequorum state of one node."""

    def __init__(self, nodeid: int, config: QuorumConfig,
                 ev_tracking_barrier: int = 0) -> None:
        self.nodeid = nodeid
        self.nodes: dict[int, ClusterNode] = {
            nodeid: ClusterNode(votes=1, state=NodeState.MEMBER, flags=NodeFlags.FIRST)
        }
        self.order: list[int] = [nodeid]
        """Known nodes in votequorum.c's list order (quorum notifications use it)."""
        self.device = ClusterNode(votes=0, state=0)
        """The quorum-device slot (nodeid 0); its state is never set (0)."""
        self.quorum = 0
        self.cluster_is_quorate = False
        self.wait_for_all_status = False
        self.quorum_members: tuple[int, ...] = ()
        self.previous_quorum_members: tuple[int, ...] = ()
        self.lowest_node_id = -1
        self.highest_node_id = -1
        self.ev_barrier = 0
        self.ev_tracking_barrier = ev_tracking_barrier
        self.lms_deadline: Optional[float] = None
        self.in_sync = False
        """corosync's sync_in_progress: quorum changes are published only outside sync."""
        self.notes: list[Note] = []
        self.two_node = False
        self.wait_for_all = False
        self.wfa_autoset = False
        self.last_man_standing = False
        self.lms_window = DEFAULT_LMS_WINDOW_MS
        self.allow_downscale = False
        self.ev_tracking = False
        self.atb: Atb = Atb.NONE
        self.initial_atb: Atb = Atb.NONE
        self.atb_list: tuple[int, ...] = ()
        self.read_config(config, runtime=False)
        self._recalculate(False, False)

    # ------------------------------------------------------------ config
    def read_config(self, cfg: QuorumConfig, runtime: bool = True) -> None:
        """Read the configuration: at startup (``runtime=False``) everything, raising
        :class:`QuorumConfigError` where corosync refuses to start; on a reload only
        what votequorum re-reads (votes, expected votes, two_node), logging errors
        and keeping the current values instead. A reload does not recompute quorum:
        the caller multicasts the new NODEINFO (and RECONFIGUREs), whose delivery does.
        """
        us = self.us
        if runtime:
            self.two_node = False
            self.atb = self.initial_atb
        expected = cfg.expected_votes or 0
        have_nodelist = cfg.nodelist is not None and self.nodeid in cfg.nodelist
        node_expected = sum(cfg.nodelist.values()) if have_nodelist and cfg.nodelist else 0
        self.two_node = bool(cfg.two_node)

        if not have_nodelist and not expected:
            text = "configuration error: nodelist or quorum.expected_votes must be configured!"
            if not runtime:
                raise QuorumConfigError(text)
            self._log("crit", text)
            self._log("crit", "will continue with current runtime data")
            return

        if not runtime:
            self.allow_downscale = bool(cfg.allow_downscale)
            self.wfa_autoset = cfg.wait_for_all is None
            self.wait_for_all = bool(cfg.wait_for_all)
            self.last_man_standing = bool(cfg.last_man_standing)
            self.lms_window = int(cfg.last_man_standing_window)
            self.ev_tracking = cfg.tracks_expected_votes
            if cfg.auto_tie_breaker:
                self.atb, self.atb_list = parse_atb(cfg.auto_tie_breaker_node)
                if self.atb == Atb.NONE:
                    self._log("warning", "auto_tie_breaker_nodes is not valid. It must be 'lowest', "
                                         "'highest' or a space-separated list of node IDs. "
                                         "auto_tie_breaker is disabled")
            else:
                self.atb, self.atb_list = Atb.NONE, ()
            self.initial_atb = self.atb
            if self.ev_tracking:
                self.notes.append(Note("ev_tracking", self.ev_tracking_barrier))

        if self.wfa_autoset:
            self.wait_for_all = self.two_node

        if self.two_node and self.atb != Atb.NONE:
            self._log("crit", "two_node and auto_tie_breaker are both specified but are not compatible.")
            self._log("crit", "two_node has been disabled, please fix your corosync.conf")
            self.two_node = False

        if self.atb != Atb.NONE and node_expected % 2 and not self.wait_for_all:
            if self.last_man_standing:
                text = ("configuration error: auto_tie_breaker & last_man_standing not available "
                        "in odd sized cluster")
                if not runtime:
                    raise QuorumConfigError(text)
                self._log("crit", text)
                return
            self._log("crit", "auto_tie_breaker is set and the cluster has an odd number of nodes.\n")
            self._log("crit", "wait_for_all needs to be set for this configuration but it is missing\n")
            self._log("crit", "Therefore auto_tie_breaker has been disabled. Please fix your corosync.conf\n")
            self.atb = Atb.NONE

        if self.ev_tracking:
            expected = self.ev_tracking_barrier
        if have_nodelist:
            assert cfg.nodelist is not None
            us.votes = cfg.nodelist[self.nodeid]
            us.expected_votes = node_expected
        else:
            us.votes = cfg.votes
        if expected:
            us.expected_votes = expected
        self.device.votes = 0  # no quorum.device section
        self.ev_barrier = us.expected_votes
        if self.wait_for_all:
            if not runtime:
                self._set_wfa_status(True)
        elif self.wfa_autoset and self.wait_for_all_status:
            self._set_wfa_status(False)

    # ------------------------------------------------------------ helpers
    @property
    def us(self) -> ClusterNode:
        return self.nodes[self.nodeid]

    def take_notes(self) -> list[Note]:
        out, self.notes = self.notes, []
        return out

    def _log(self, level: str, text: str) -> None:
        self.notes.append(Note("log", level=level, text=text))

    def find(self, nodeid: int) -> Optional[ClusterNode]:
        """A known node, the device slot for 0, or None."""
        if nodeid == QDEVICE_NODEID:
            return self.device
        return self.nodes.get(nodeid)

    def _add_node(self, nodeid: int) -> ClusterNode:
        """A new table entry, placed as votequorum.c's list insertion places it: before
        the first node with a higher id, or, when there is none, before the *last*
        entry (not after it)."""
        node = self.nodes[nodeid] = ClusterNode()
        order = self.order
        pos = next((i for i, n in enumerate(order) if nodeid < n), max(len(order) - 1, 0))
        order.insert(pos, nodeid)
        return node

    def _set_wfa_status(self, on: bool) -> None:
        self.wait_for_all_status = on
        if on:
            self.us.flags |= NodeFlags.WFASTATUS
        else:
            self.us.flags &= ~NodeFlags.WFASTATUS

    def _members(self) -> Iterable[tuple[int, ClusterNode]]:
        return ((n, s) for n, s in self.nodes.items() if s.state == NodeState.MEMBER)

    def _totals(self) -> tuple[int, int, int]:
        """(total_votes, highest_expected, member_count) over MEMBER nodes."""
        tv = he = cnt = 0
        for _, s in self._members():
            tv += s.votes
            he = max(he, s.expected_votes)
            cnt += 1
        return tv, he, cnt

    def calculate_quorum(self, allow_decrease: bool, max_expected: int) -> tuple[int, int]:
        """Return (new quorum, total_votes); changes no state (logs the node table)."""
        if self.allow_downscale and allow_decrease and max_expected:
            max_expected = max(self.ev_barrier, max_expected)
        for n in self.order:
            s = self.nodes[n]
            self._log("debug", f"node {n} state={int(s.state)}, votes={s.votes}, expected={s.expected_votes}")
        total_votes, highest_expected, total_nodes = self._totals()
        if self.us.flags & NodeFlags.QDEVICE_CAST_VOTE:
            self._log("debug", f"node 0 state=1, votes={self.device.votes}")
            total_votes += self.device.votes
            total_nodes += 1
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
            for _, s in self._members():
                s.expected_votes = n

    def _is_member(self, nodeid: int) -> bool:
        """Whether ``nodeid`` is a known node in MEMBER state."""
        return any(n == nodeid for n, _ in self._members())

    def _atb_allows(self) -> bool:
        if self.atb in (Atb.LOWEST, Atb.HIGHEST):
            low = self.atb == Atb.LOWEST
            res = self._is_member(self.lowest_node_id if low else self.highest_node_id)
            self._log("debug", f"ATB_{'LOWEST' if low else 'HIGHEST'} decision: {int(res)}")
            return res
        members, prev = set(self.quorum_members), set(self.previous_quorum_members)
        for i, cand in enumerate(self.atb_list):
            if cand in members:
                # an earlier list entry that was with us before the split
                # may now be on the other side: we cannot claim the tie
                for e in self.atb_list[:i]:
                    if e in prev:
                        self._log("debug", f"ATB_LIST found node {e} in previous partition but not here, "
                                           "quorum denied")
                        return False
                self._log("debug", f"ATB_LIST found node {cand} in current partition, we can be quorate")
                return True
        self._log("debug", "ATB_LIST found no list nodes in current partition, we cannot be quorate")
        return False

    def _are_we_quorate(self, total_votes: int) -> None:
        us = self.us
        if self.wait_for_all and self.wait_for_all_status:
            if total_votes != us.expected_votes:
                self._log("notice", f"Waiting for all cluster members. Current votes: {total_votes} "
                                    f"expected_votes: {us.expected_votes}")
                assert not self.cluster_is_quorate
                return
            self._set_wfa_status(False)

        quorate = self.quorum <= total_votes
        if quorate:
            live = [n for n, _ in self._members()]
            self.lowest_node_id = min(live + [self.nodeid])
            self._log("debug", f"lowest node id: {self.lowest_node_id} us: {self.nodeid}")
            self.highest_node_id = max(live + [self.nodeid])
            self._log("debug", f"highest node id: {self.highest_node_id} us: {self.nodeid}")

        # votequorum.c compares a signed difference: a grown membership always passes
        shrink = len(self.previous_quorum_members) - len(self.quorum_members)
        if (self.atb != Atb.NONE
                and total_votes == us.expected_votes // 2
                and shrink < self.quorum
                and self._atb_allows()):
            quorate = True

        changed = quorate != self.cluster_is_quorate
        if changed:
            self._log("debug", "quorum regained, resuming activity" if quorate
                      else "quorum lost, blocking activity")
        self.cluster_is_quorate = quorate
        if quorate:
            us.flags |= NodeFlags.QUORATE
        else:
            us.flags &= ~NodeFlags.QUORATE
        if self.wait_for_all:
            self._set_wfa_status(not quorate)
        if changed and not self.in_sync:
            self.notes.append(Note("quorum"))

    def _recalculate(self, allow_decrease: bool, by_current_nodes: bool) -> None:
        us = self.us
        total_votes, _, members = self._totals()
        if self.device.votes:
            total_votes += self.device.votes
            members += 1
        if not by_current_nodes:
            members = 0
        self._log("debug", f"total_votes={total_votes}, expected_votes={us.expected_votes}")
        if total_votes > us.expected_votes:
            us.expected_votes = total_votes
            self.notes.append(Note("expected", us.expected_votes))
        if self.ev_tracking and us.expected_votes > self.ev_tracking_barrier:
            self.ev_tracking_barrier = us.expected_votes
            self.notes.append(Note("ev_tracking", self.ev_tracking_barrier))
        newquorum, total_votes = self.calculate_quorum(allow_decrease, members)
        self.quorum = newquorum & QUORUM_MASK
        self._update_node_expected(members)
        self._are_we_quorate(total_votes)

    # ------------------------------------------------------------ events
    def membership_changed(self, members: Iterable[int], now: float) -> None:
        """A new ring (sync_init): mark departed nodes dead, arm the LMS timer."""
        members = tuple(members)
        self.in_sync = True
        if len(members) > 1:
            self.us.flags &= ~NodeFlags.FIRST
        left = False
        for n in self.quorum_members:
            if n not in members:
                left = True
                node = self.find(n)
                if node is not None:
                    node.state = NodeState.DEAD
        if self.last_man_standing:
            if ((len(members) >= self.quorum and left)
                    or (len(members) <= self.quorum and self.atb != Atb.NONE
                        and self._is_member(self.lowest_node_id))):
                self.lms_deadline = now + self.lms_window
        self.previous_quorum_members = self.quorum_members
        self.quorum_members = members

    def node_info(self, nodeid: int, votes: int, expected_votes: int, flags: int,
                  sender: Optional[int] = None) -> bool:
        """A delivered NODEINFO (including our own), sent by ``sender`` (default: the
        node it describes). False when it cannot be applied: a device-slot NODEINFO
        from a node without an entry (corosync aborts on an assertion there)."""
        sender = nodeid if sender is None else sender
        node = self.find(nodeid)
        new = node is None
        if node is None:
            node = self._add_node(nodeid)
        old = (0, 0, 0, NodeState.DEAD) if new else (
            node.votes, node.expected_votes, node.flags, node.state)
        allow_downgrade = by_node = False

        if nodeid == QDEVICE_NODEID:
            sender_node = self.find(sender)
            if sender_node is None:
                return False
            if not self.cluster_is_quorate and sender_node.flags & NodeFlags.QUORATE:
                node.votes = votes
            else:
                node.votes = max(node.votes, votes)
        else:
            node.flags = flags
            node.votes = votes
            node.state = NodeState.MEMBER
            if flags & NodeFlags.LEAVING:
                node.state = NodeState.LEAVING
                allow_downgrade = by_node = True
            if not self.cluster_is_quorate and flags & NodeFlags.QUORATE:
                allow_downgrade = True
                self.us.expected_votes = expected_votes
            if flags & NodeFlags.QUORATE or self.ev_tracking:
                node.expected_votes = expected_votes
            else:
                node.expected_votes = self.us.expected_votes
            if self.last_man_standing and node.votes > 1:
                # (the missing space is corosync's)
                self._log("warning", "Last Man Standing feature is supported only when all"
                                     "cluster nodes votes are set to 1. Disabling LMS.")
                self.last_man_standing = False
                self.lms_deadline = None

        if (new or nodeid == self.nodeid or node.flags & NodeFlags.FIRST
                or old != (node.votes, node.expected_votes, node.flags, node.state)):
            self._recalculate(allow_downgrade, by_node)

        if (self.wait_for_all and not node.flags & NodeFlags.WFASTATUS
                and node.flags & NodeFlags.QUORATE):
            self._set_wfa_status(False)
        return True

    def sync_activate(self) -> None:
        """The votequorum step completed: recompute, then always publish (``"quorum"``)."""
        self._recalculate(False, False)
        self.notes.append(Note("quorum"))
        self.in_sync = False

    def tick(self, now: float) -> bool:
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

    def lib_set_expected(self, n: int) -> bool:
        """libvotequorum SETEXPECTED on this node: validate, and (as corosync does
        before multicasting the RECONFIGURE) set the members' expected votes at once."""
        if not self.check_set_expected(n):
            return False
        self._update_node_expected(n)
        return True

    def lib_set_votes(self, nodeid: int, votes: int) -> Optional[bool]:
        """libvotequorum SETVOTES on this node: None for an unknown node, False when
        the new votes would make quorum unreachable or trivial. On success the node's
        votes stay changed locally (as in corosync) until the RECONFIGURE arrives."""
        node = self.find(nodeid)
        if node is None:
            return None
        saved, node.votes = node.votes, votes
        newquorum, total = self.calculate_quorum(True, 0)
        if newquorum < total // 2 or newquorum > total:
            node.votes = saved
            return False
        return True

    def set_expected(self, n: int) -> None:
        """Delivered RECONFIGURE(EXPECTED_VOTES)."""
        self._update_node_expected(n)
        self.notes.append(Note("expected", self.us.expected_votes))
        self.ev_barrier = n
        if self.ev_tracking:
            self.us.expected_votes = max(self.us.expected_votes, self.ev_tracking_barrier)
        self._recalculate(True, False)

    def set_votes(self, nodeid: int, n: int) -> None:
        """Delivered RECONFIGURE(NODE_VOTES)."""
        node = self.find(nodeid)
        if node is None:
            return
        node.votes = n
        self._recalculate(True, False)

    def cancel_wait_for_all(self, nodeid: Optional[int] = None) -> None:
        """Delivered RECONFIGURE(CANCEL_WFA), sent by ``nodeid``."""
        self._set_wfa_status(False)
        self._log("info", f"wait_for_all_status reset by user on node {self.nodeid if nodeid is None else nodeid}.")
        self._recalculate(False, False)

    def leave(self) -> Optional[NodeInfoMsg]:
        """Clean shutdown: with allow_downscale, the LEAVING NODEINFO to send."""
        if not self.allow_downscale:
            return None
        self.us.flags |= NodeFlags.LEAVING
        return self.local_nodeinfo()

    # ------------------------------------------------------------ output
    def local_nodeinfo(self) -> NodeInfoMsg:
        us = self.us
        return NodeInfoMsg(self.nodeid, us.votes, us.expected_votes, int(us.flags))

    def device_nodeinfo(self) -> NodeInfoMsg:
        d = self.device
        return NodeInfoMsg(QDEVICE_NODEID, d.votes, d.expected_votes, int(d.flags))

    @property
    def info_flags(self) -> int:
        """The configuration and quorate part of the getinfo flags."""
        flags = 0
        if self.two_node:
            flags |= InfoFlags.TWONODE
        if self.cluster_is_quorate:
            flags |= InfoFlags.QUORATE
        if self.wait_for_all:
            flags |= InfoFlags.WAIT_FOR_ALL
        if self.last_man_standing:
            flags |= InfoFlags.LAST_MAN_STANDING
        if self.atb != Atb.NONE:
            flags |= InfoFlags.AUTO_TIE_BREAKER
        if self.allow_downscale:
            flags |= InfoFlags.ALLOW_DOWNSCALE
        return int(flags)

    def getinfo(self, nodeid: int) -> Optional[QuorumInfo]:
        """votequorum_getinfo for ``nodeid`` (0 = us); None for an unknown node."""
        if nodeid == QDEVICE_NODEID:
            nodeid = self.nodeid
        node = self.find(nodeid)
        if node is None:
            return None
        total_votes, highest_expected, _ = self._totals()
        if node.flags & NodeFlags.QDEVICE_CAST_VOTE:
            total_votes += self.device.votes
        flags = self.info_flags
        for nbit, ibit in _NODE_TO_INFO_QDEVICE:
            if node.flags & nbit:
                flags |= ibit
        return QuorumInfo(
            nodeid=nodeid,
            state=int(node.state),
            members=self.quorum_members,
            node_votes=node.votes,
            expected_votes=node.expected_votes,
            highest_expected=highest_expected,
            total_votes=total_votes,
            quorum=self.quorum,
            quorate=self.cluster_is_quorate,
            flags=flags,
            wait_for_all_status=self.wait_for_all_status,
            ev_barrier=self.ev_barrier,
            ev_tracking_barrier=self.ev_tracking_barrier,
            lms_deadline=self.lms_deadline,
            qdevice_votes=self.device.votes,
        )

    def info(self) -> QuorumInfo:
        """getinfo for this node."""
        info = self.getinfo(self.nodeid)
        assert info is not None
        return info


def partition_sync(instances: Mapping[int, Votequorum], members: Sequence[int],
                   now: float) -> dict[int, QuorumInfo]:
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
        instances[n].take_notes()
    return {n: instances[n].info() for n in members}


def tick_all(instances: Mapping[int, Votequorum], members: Iterable[int],
             now: float) -> dict[int, QuorumInfo]:
    for n in members:
        instances[n].tick(now)
        instances[n].take_notes()
    return {n: instances[n].info() for n in members}
