"""Key rotation as pure code (totem.crypto.keyring): announcements in agreed order,
the switch to the new key once every member holds it, fallback for a node outside the
ring, and the old key dropped only when nobody seals with it."""

from __future__ import annotations

import pytest

from totem.crypto.envelope import Drop, EnvelopeError
from totem.crypto.keyfile import key_id
from totem.crypto.keyring import Announcement, KeyRing

K1 = bytes(range(128))
K2 = bytes(range(100, 228))
K3 = bytes(range(50, 178))
ID1, ID2, ID3 = key_id(K1), key_id(K2), key_id(K3)


class Cluster:
    """KeyRings of a few nodes with an agreed-order 'ring': what one announces, all
    receive in the same order (as totempg delivers it)."""

    def __init__(self, ids, primary=K1, next_key=None):
        self.rings = {n: KeyRing(n, "aes256", "sha256", primary, next_key) for n in ids}

    def install(self, members, joined=()):
        for n in members:
            self.rings[n].configuration(members, joined)
        self.settle(members)

    def settle(self, members):
        """Deliver announcements until none is due (each node multicasts its own)."""
        for _ in range(20):
            sent = False
            for n in members:
                body = self.rings[n].announcement()
                if body is not None:
                    self.rings[n].announced()
                    sent = True
                    for m in members:
                        self.rings[m].receive_announcement(n, body)
            if not sent:
                return
        raise AssertionError("announcements never settle")

    def sending(self, members=None):
        return {n: r.send_id for n, r in self.rings.items() if members is None or n in members}

    def can_talk(self, a, b):
        """b can open what a seals."""
        try:
            self.rings[b].open(self.rings[a].seal(b"totem"))
            return True
        except EnvelopeError:
            return False


def test_announcement_layout_round_trip():
    a = Announcement(ID2, frozenset({ID1, ID2}))
    body = a.pack()
    assert body[:4] == b"PTK1" and len(body) == 4 + 8 + 1 + 16
    assert Announcement.parse(body) == a
    with pytest.raises(ValueError):
        Announcement.parse(b"PTK2" + body[4:])
    with pytest.raises(ValueError):
        Announcement.parse(body[:-3])


def test_full_rotation_keeps_every_pair_talking_at_every_step():
    c = Cluster([1, 2, 3])
    c.install((1, 2, 3))
    assert c.sending() == {1: ID1, 2: ID1, 3: ID1}

    def all_talk():
        assert all(c.can_talk(a, b) for a in (1, 2, 3) for b in (1, 2, 3))

    # step 1: the new key is added node by node (reload with keyfile_next)
    c.rings[1].reload(K1, K2)
    c.settle((1, 2, 3))
    assert c.sending() == {1: ID1, 2: ID1, 3: ID1}, "2 and 3 do not hold K2 yet"
    assert c.rings[1].rotation() == f"adding key {ID2}: members [2, 3] do not hold it yet"
    all_talk()
    c.rings[2].reload(K1, K2)
    c.settle((1, 2, 3))
    assert set(c.sending().values()) == {ID1}
    all_talk()
    c.rings[3].reload(K1, K2)
    c.settle((1, 2, 3))
    assert c.sending() == {1: ID2, 2: ID2, 3: ID2}, "every member holds K2: all switch"
    all_talk()
    assert c.rings[1].status()["rotation"].startswith(f"done: every member seals with key {ID2}")
    # step 2: K2 becomes the primary key, K1 leaves the configuration node by node
    c.rings[2].reload(K2)
    c.settle((1, 2, 3))
    assert not c.rings[2].holds(ID1), "nobody seals with K1 any more: dropped at once"
    all_talk()
    c.rings[1].reload(K2)
    c.rings[3].reload(K2)
    c.settle((1, 2, 3))
    assert all(not r.holds(ID1) for r in c.rings.values())
    assert all(r.status()["rotation"] == "none" for r in c.rings.values())
    all_talk()
    old = KeyRing(9, "aes256", "sha256", K1).seal(b"old key")
    with pytest.raises(EnvelopeError) as info:
        c.rings[1].open(old)
    assert info.value.reason is Drop.WRONG_KEY


def test_a_retiring_key_stays_while_a_member_still_seals_with_it():
    c = Cluster([1, 2], primary=K1)
    c.install((1, 2))
    c.rings[1].reload(K1, K2)
    c.settle((1, 2))
    # node 1 is told to drop K1 before node 2 even has K2: it must keep sealing and
    # opening with K1, or the ring would be lost
    c.rings[1].reload(K2)
    c.settle((1, 2))
    assert c.rings[1].send_id == ID1 and c.rings[1].holds(ID1)
    assert c.can_talk(1, 2) and c.can_talk(2, 1)
    st = c.rings[1].status()
    assert {k["id"]: k["role"] for k in st["keys"]} == {ID2: "primary", ID1: "retiring"}
    c.rings[2].reload(K1, K2)
    c.settle((1, 2))
    assert c.sending() == {1: ID2, 2: ID2}
    assert not c.rings[1].holds(ID1), "dropped once node 2 announced sealing with K2"
    assert c.rings[2].holds(ID1), "still configured on node 2"


def test_no_switch_before_every_member_has_announced():
    c = Cluster([1, 2, 3], next_key=K2)
    # before any ring: the primary key
    assert c.sending() == {1: ID1, 2: ID1, 3: ID1}
    for n in (1, 2, 3):
        c.rings[n].configuration((1, 2, 3))
    # only node 1 has announced so far
    body = c.rings[1].announcement()
    for n in (1, 2, 3):
        c.rings[n].receive_announcement(1, body)
    assert c.sending() == {1: ID1, 2: ID1, 3: ID1}
    c.settle((1, 2, 3))
    assert c.sending() == {1: ID2, 2: ID2, 3: ID2}


def test_a_newcomer_with_the_old_key_only_can_still_join():
    c = Cluster([1, 2], next_key=K2)
    c.install((1, 2))
    assert c.sending() == {1: ID2, 2: ID2}
    c.rings[3] = KeyRing(3, "aes256", "sha256", K1)  # restarted with the old config
    assert not c.can_talk(1, 3)
    # node 3's join, sealed with K1, reaches 1 and 2: they fall back to K1
    for n in (1, 2):
        plain, kid = c.rings[n].open(c.rings[3].seal(b"join"))
        c.rings[n].heard(3, kid)
    assert c.sending() == {1: ID1, 2: ID1, 3: ID1}
    assert c.can_talk(1, 3) and c.can_talk(3, 2)
    c.install((1, 2, 3), joined=(3,))
    assert c.sending() == {1: ID1, 2: ID1, 3: ID1}, "node 3 does not hold K2"
    c.rings[3].reload(K1, K2)
    c.settle((1, 2, 3))
    assert c.sending() == {1: ID2, 2: ID2, 3: ID2}


def test_no_fallback_for_a_member_that_announced_the_new_key():
    c = Cluster([1, 2], next_key=K2)
    c.install((1, 2))
    # a late datagram of node 2 sealed with K1 (before it switched) changes nothing
    c.rings[1].heard(2, ID1)
    assert c.rings[1].send_id == ID2
    # nor does a better-ranked key, or our own datagrams
    c.rings[1].heard(1, ID1)
    assert c.rings[1].send_id == ID2


def test_a_single_node_switches_alone():
    c = Cluster([1], next_key=K2)
    c.install((1,))
    assert c.sending() == {1: ID2}


def test_receivers_try_the_sources_last_key_first_and_report_which_key():
    r = KeyRing(1, "aes256", "sha256", K1, K2)
    sealed = KeyRing(2, "aes256", "sha256", K2).seal(b"x")
    assert r.open(sealed) == (b"x", ID2)
    assert r.open(sealed, first=ID2) == (b"x", ID2)
    assert r.open(KeyRing(2, "aes256", "sha256", K1).seal(b"y"), first=ID2) == (b"y", ID1)
    with pytest.raises(EnvelopeError):
        r.open(KeyRing(2, "aes256", "sha256", K3).seal(b"z"))


def test_other_hash_tells_a_misconfigured_peer():
    r = KeyRing(1, "aes256", "sha256", K1)
    assert r.other_hash(KeyRing(2, "aes256", "sha1", K1).seal(b"x")) == "sha1"
    assert r.other_hash(KeyRing(2, "aes256", "sha512", K1).seal(b"x")) == "sha512"
    assert r.other_hash(KeyRing(2, "aes256", "sha1", K3).seal(b"x")) is None


def test_reverting_a_rotation_by_reload():
    c = Cluster([1, 2], next_key=K2)
    c.install((1, 2))
    assert c.sending() == {1: ID2, 2: ID2}
    for n in (1, 2):
        c.rings[n].reload(K1)
    c.settle((1, 2))
    assert c.sending() == {1: ID1, 2: ID1}
    assert all(not r.holds(ID2) for r in c.rings.values())
