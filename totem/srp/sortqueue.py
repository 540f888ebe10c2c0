"""Sequence-number arithmetic and the sort queue that holds a ring's messages by seq."""

from __future__ import annotations

from typing import Generic, TypeVar

SEQ_MASK = 0xFFFFFFFF
ROLLOVER_POINT = 0x80000000
ROLLOVER_VALUE = 0x10000
QUEUE_SIZE = 16384
"""Messages a sort queue can hold: the window between the released point and the newest seq."""


def seq_lt(a: int, b: int) -> bool:
    """``a < b`` for 32-bit sequence numbers, with corosync's rollover window."""
    if a > ROLLOVER_POINT or b > ROLLOVER_POINT:
        return (a - ROLLOVER_VALUE) & SEQ_MASK < (b - ROLLOVER_VALUE) & SEQ_MASK
    return a < b


def seq_lte(a: int, b: int) -> bool:
    """``a <= b`` for 32-bit sequence numbers, with corosync's rollover window."""
    if a > ROLLOVER_POINT or b > ROLLOVER_POINT:
        return (a - ROLLOVER_VALUE) & SEQ_MASK <= (b - ROLLOVER_VALUE) & SEQ_MASK
    return a <= b


T = TypeVar("T")


class SortQueue(Generic[T]):
    """Messages of one ring keyed by seq, from ``head`` (oldest not yet released) on.

    A seq below ``head`` counts as present, so that released messages are never
    stored again; ``miss_count`` counts the token visits on which a seq was missing.
    """

    __slots__ = ("head", "items", "misses")

    def __init__(self, head: int = 0) -> None:
        self.head = head
        self.items: dict[int, T] = {}
        self.misses: dict[int, int] = {}

    def reinit(self, head: int) -> None:
        self.head = head
        self.items.clear()
        self.misses.clear()

    def copy_from(self, other: "SortQueue[T]") -> None:
        self.head = other.head
        self.items = dict(other.items)
        self.misses = dict(other.misses)

    def in_range(self, seq: int) -> bool:
        head = self.head
        if head > ROLLOVER_POINT:
            s = (seq - ROLLOVER_VALUE) & SEQ_MASK
            h = (head - ROLLOVER_VALUE) & SEQ_MASK
            return h <= s < h + QUEUE_SIZE
        return head <= seq < head + QUEUE_SIZE

    def inuse(self, seq: int) -> bool:
        if seq_lt(seq, self.head):
            return True
        return seq in self.items

    def get(self, seq: int) -> T | None:
        return self.items.get(seq)

    def add(self, seq: int, item: T) -> None:
        self.items[seq] = item
        self.misses.pop(seq, None)

    def miss_count(self, seq: int) -> int:
        n = self.misses.get(seq, 0) + 1
        self.misses[seq] = n
        return n

    def release(self, upto: int) -> None:
        """Forget every message up to and including ``upto``."""
        seq = self.head
        end = (upto + 1) & SEQ_MASK
        items, misses = self.items, self.misses
        if len(items) + len(misses) < 64:
            for s in [s for s in items if seq_lt(s, end)]:
                del items[s]
            for s in [s for s in misses if seq_lt(s, end)]:
                del misses[s]
        else:
            while seq != end:
                items.pop(seq, None)
                misses.pop(seq, None)
                seq = (seq + 1) & SEQ_MASK
        self.head = end
