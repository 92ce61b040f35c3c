"""Coverage: which events a connection had through its rooms, so a room's catch-up skips them."""

from __future__ import annotations

from notifier.coverage import Coverage
from tests.notifier.wire import queued


def test_an_event_after_a_rooms_start_was_had_through_it() -> None:
    had = Coverage()
    had.add("user:alice", {"default": (10, 0), "emails": None})

    both = queued("user:alice", "entity:order:1")

    assert had.has("default", (10, 1), both)
    assert not had.has("default", (10, 0), both), "the start itself came before the room"
    assert not had.has("default", (11, 0), queued("entity:order:1")), "not in the room"
    assert not had.has("emails", (99, 0), both), "no start known: nothing counts as had"
    assert not had.has("reports", (99, 0), both), "a queue the room has no start for"


def test_a_left_room_no_longer_counts() -> None:
    had = Coverage()
    had.add("entity:order:1", {"default": (1, 0)})
    had.add("user:alice", {"default": (50, 0)})
    event = queued("entity:order:1", "user:alice")

    before = had.has("default", (20, 0), event)
    had.remove("entity:order:1")
    had.remove("entity:order:1")

    assert before
    assert not had.has("default", (20, 0), event)
    assert had.has("default", (60, 0), event)
