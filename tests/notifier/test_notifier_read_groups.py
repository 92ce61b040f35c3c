"""Which events streams one XREAD reads together: all on one node, one slot's on a cluster."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from notifier.source import read_groups
from shared.streams import QueueKeys

QUEUE_NAMES = st.lists(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=64),
    min_size=1,
    max_size=30,
    unique=True,
)


def streams_of(queues: list[str]) -> list[bytes]:
    """The events streams of the queues, as the source names them."""
    return [QueueKeys(queue).events.encode() for queue in queues]


@given(QUEUE_NAMES)
def test_on_one_node_every_stream_is_read_by_one_xread(queues: list[str]) -> None:
    streams = streams_of(queues)
    assert read_groups(streams, cluster=False) == [tuple(streams)]


@given(QUEUE_NAMES)
def test_on_a_cluster_each_xread_reads_the_streams_of_one_slot(queues: list[str]) -> None:
    streams = streams_of(queues)
    groups = read_groups(streams, cluster=True)
    # Every stream is read, by exactly one group: its events stay in order.
    assert sorted(stream for group in groups for stream in group) == sorted(streams)
    for group in groups:
        assert len({key_slot(stream) for stream in group}) == 1
    # As few reads as the slots allow.
    assert len(groups) == len({key_slot(stream) for stream in streams})


def test_queues_whose_tags_share_a_slot_are_read_together() -> None:
    # q19 and q2902 hash to one slot (16102); `default` to another.
    streams = streams_of(["q19", "default", "q2902"])
    assert key_slot(streams[0]) == key_slot(streams[2])
    assert read_groups(streams, cluster=True) == [(streams[0], streams[2]), (streams[1],)]
