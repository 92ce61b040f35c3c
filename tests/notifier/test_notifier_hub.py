"""The hub and its frames alone: rooms, fan-out without duplicates, users' and admins' frames."""

from __future__ import annotations

import msgspec

from notifier.frames import EventFrames, TextFrame, for_users
from notifier.hub import Hub
from shared.contracts.events import ErrorInfo, JobDeadLettered, JobQueued
from shared.contracts.ws import EventPush, ServerMessage, Welcome, event_offset


def queued(*rooms: str) -> JobQueued:
    """A `job.queued` event addressed to `rooms`."""
    return JobQueued(
        job_id="job-1", type="demo.echo", queue="default", owner="alice", rooms=rooms, at_ms=1
    )


def dead_lettered(*rooms: str, detail: str = "Traceback: boom") -> JobDeadLettered:
    """A `job.dead_lettered` event with a friendly message and an admin-only detail."""
    return JobDeadLettered(
        job_id="job-2",
        type="demo.fail",
        queue="default",
        owner="alice",
        rooms=rooms,
        at_ms=2,
        attempt=3,
        error=ErrorInfo(message="The job failed.", detail=detail),
    )


class RecordingConnection:
    """A connection that keeps what it is sent, and can play a client that fell behind."""

    def __init__(self, *, admin: bool = False, keeps_up: bool = True) -> None:
        self.sees_error_detail = admin
        self.keeps_up = keeps_up
        self.frames: list[str] = []

    async def push(self, frame: TextFrame, offset: str) -> bool:
        if self.keeps_up:
            self.frames.append(frame.text)
        return self.keeps_up

    def pushes(self) -> list[EventPush]:
        decoded = [msgspec.json.decode(frame, type=ServerMessage) for frame in self.frames]
        assert all(isinstance(message, EventPush) for message in decoded)
        return [message for message in decoded if isinstance(message, EventPush)]


async def test_event_reaches_only_connections_in_its_rooms() -> None:
    hub = Hub()
    alice, bob = RecordingConnection(), RecordingConnection()
    hub.join(alice, ["user:alice", "role:USER"])
    hub.join(bob, ["user:bob", "role:USER"])

    await hub.publish(queued("user:alice"), "default:1-0")

    assert [push.offset for push in alice.pushes()] == ["default:1-0"]
    assert bob.frames == []
    assert hub.messages_sent == 1


async def test_connection_in_several_matching_rooms_gets_the_event_once() -> None:
    hub = Hub()
    root = RecordingConnection(admin=True)
    hub.join(root, ["user:root", "role:ADMIN"])

    await hub.publish(queued("user:root", "role:ADMIN", "user:root"), "default:1-0")

    assert len(root.frames) == 1


async def test_joining_again_adds_rooms_without_duplicating_membership() -> None:
    hub = Hub()
    alice = RecordingConnection()
    hub.join(alice, ["user:alice"])
    hub.join(alice, ["user:alice", "job:42"])

    await hub.publish(queued("job:42"), "default:1-0")
    await hub.publish(queued("user:alice"), "default:2-0")

    assert [push.offset for push in alice.pushes()] == ["default:1-0", "default:2-0"]
    assert hub.connection_count == 1


async def test_leaving_one_room_keeps_the_others() -> None:
    hub = Hub()
    alice = RecordingConnection()
    hub.join(alice, ["user:alice", "entity:order:1"])

    left = hub.leave_room(alice, "entity:order:1")
    left_again = hub.leave_room(alice, "entity:order:1")
    await hub.publish(queued("entity:order:1"), "default:1-0")
    await hub.publish(queued("user:alice"), "default:2-0")

    assert (left, left_again) == (True, False)
    assert hub.rooms_of(alice) == ("user:alice",)
    assert hub.members(["entity:order:1"]) == set()
    assert [push.offset for push in alice.pushes()] == ["default:2-0"]


async def test_a_connection_that_left_gets_nothing_and_leaving_twice_is_harmless() -> None:
    hub = Hub()
    alice, other = RecordingConnection(), RecordingConnection()
    hub.join(alice, ["user:alice", "role:USER"])
    hub.join(other, ["role:USER"])

    hub.leave(alice)
    hub.leave(alice)
    await hub.publish(queued("user:alice", "role:USER"), "default:1-0")

    assert alice.frames == []
    assert len(other.frames) == 1
    assert hub.connection_count == 1
    assert hub.members(["user:alice"]) == set()


async def test_admins_see_the_error_detail_and_users_only_the_message() -> None:
    hub = Hub()
    alice, root = RecordingConnection(), RecordingConnection(admin=True)
    hub.join(alice, ["user:alice"])
    hub.join(root, ["role:ADMIN"])

    await hub.publish(dead_lettered("user:alice", "role:ADMIN"), "default:7-0")

    [user_push] = alice.pushes()
    [admin_push] = root.pushes()
    assert user_push.event == dead_lettered("user:alice", "role:ADMIN", detail="")
    assert admin_push.event == dead_lettered("user:alice", "role:ADMIN")


async def test_each_variant_is_encoded_once_per_event_not_per_connection() -> None:
    hub = Hub()
    users = [RecordingConnection() for _ in range(3)]
    admins = [RecordingConnection(admin=True) for _ in range(2)]
    for connection in users:
        hub.join(connection, ["role:USER"])
    for connection in admins:
        hub.join(connection, ["role:ADMIN"])

    await hub.publish(dead_lettered("role:USER", "role:ADMIN"), "default:1-0")

    # One frame object shared by all users, another by all admins.
    assert len({id(connection.frames[0]) for connection in users}) == 1
    assert len({id(connection.frames[0]) for connection in admins}) == 1
    assert users[0].frames[0] != admins[0].frames[0]


async def test_event_without_error_detail_sends_users_and_admins_the_same_frame() -> None:
    hub = Hub()
    alice, root = RecordingConnection(), RecordingConnection(admin=True)
    hub.join(alice, ["user:alice"])
    hub.join(root, ["role:ADMIN"])

    await hub.publish(queued("user:alice", "role:ADMIN"), "default:1-0")

    assert alice.frames[0] is root.frames[0]


async def test_a_connection_that_cannot_keep_up_is_dropped_and_others_still_get_events() -> None:
    hub = Hub()
    slow, fast = RecordingConnection(keeps_up=False), RecordingConnection()
    hub.join(slow, ["role:USER"])
    hub.join(fast, ["role:USER"])

    await hub.publish(queued("role:USER"), "default:1-0")
    slow.keeps_up = True
    await hub.publish(queued("role:USER"), "default:2-0")

    assert slow.frames == []
    assert [push.offset for push in fast.pushes()] == ["default:1-0", "default:2-0"]
    assert hub.connection_count == 1
    assert hub.connections_dropped == 1
    assert hub.messages_sent == 2


def test_users_get_the_friendly_message_without_the_detail() -> None:
    event = dead_lettered("user:alice")

    redacted = for_users(event)

    assert redacted == dead_lettered("user:alice", detail="")


def test_events_without_an_error_detail_are_not_copied_for_users() -> None:
    event = queued("user:alice")
    assert for_users(event) is event
    empty_detail = dead_lettered("user:alice", detail="")
    assert for_users(empty_detail) is empty_detail


def test_event_frame_is_a_tagged_push_with_offset_and_event() -> None:
    frame = EventFrames(queued("user:alice"), event_offset("default", "5-1")).for_user()

    raw = msgspec.json.decode(frame.text)
    assert raw["type"] == "event"
    assert raw["offset"] == "default:5-1"
    assert raw["event"]["event"] == "job.queued"
    assert msgspec.json.decode(frame.text, type=ServerMessage) == EventPush(
        offset="default:5-1", event=queued("user:alice")
    )


def test_a_frames_wire_form_is_one_unmasked_final_text_frame_built_once() -> None:
    short, long = TextFrame("é" * 10), TextFrame("x" * 300)

    # FIN + text opcode; no mask bit; the length in 7 bits, or 126 and 16 bits (RFC 6455, 5.2).
    assert short.wire == b"\x81\x14" + ("é" * 10).encode()
    assert long.wire == b"\x81\x7e\x01\x2c" + b"x" * 300
    assert long.wire is long.wire


def test_welcome_round_trips_as_a_server_message() -> None:
    welcome = Welcome(sub="alice", role="USER", rooms=("user:alice", "role:USER"))

    encoded = msgspec.json.encode(welcome)

    assert msgspec.json.decode(encoded)["type"] == "welcome"
    assert msgspec.json.decode(encoded, type=ServerMessage) == welcome
