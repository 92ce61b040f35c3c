"""Every Redis key, stream, group and room name Conduit uses, in one place.

All keys of one queue share the hash tag `{queue}`, so every Lua script touches one Redis Cluster
slot and queues are the unit of scale-out across shards.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from shared.contracts.jobs import PRIORITIES, Priority

PREFIX = "conduit"
WORKER_GROUP = "workers"
# The stream field that carries an encoded message; FastStream reads this field as the body.
DATA_FIELD = "__data__"
# Pub/sub channel announcing each runtime settings change (shared.runtime). Unlike a stream it
# keeps nothing: a listener that was away reloads every setting from PostgreSQL on return.
SETTINGS_CHANNEL = f"{PREFIX}:settings"


class QueueKeys(msgspec.Struct, frozen=True):
    """The keys of one queue."""

    queue: str

    @property
    def tag(self) -> str:
        """`conduit:{queue}`: the hash-tagged stem of every key of this queue."""
        return f"{PREFIX}:{{{self.queue}}}"

    @property
    def stream(self) -> str:
        """Jobs ready to run, read by the worker group."""
        return f"{self.tag}:stream"

    def stream_of(self, priority: Priority) -> str:
        """The stream of this queue's jobs of one priority; normal ones use the plain stream."""
        return self.stream if priority == "normal" else f"{self.stream}:{priority}"

    @property
    def delayed(self) -> str:
        """Sorted set of job ids waiting for a retry or a due time, scored by due ms."""
        return f"{self.tag}:delayed"

    @property
    def dead(self) -> str:
        """Dead-letter stream: jobs whose attempts ran out or that could not be run."""
        return f"{self.tag}:dead"

    @property
    def events(self) -> str:
        """Lifecycle events of this queue's jobs, read by the notifiers."""
        return f"{self.tag}:events"

    def job(self, job_id: str) -> str:
        """Hash holding one job's record."""
        return f"{self.tag}:job:{job_id}"

    def idempotency(self, owner: str, key: str) -> str:
        """Maps an owner's Idempotency-Key to the job it created."""
        return f"{self.tag}:idem:{owner}:{key}"

    @property
    def repeatables(self) -> str:
        """Hash of this queue's repeatable job definitions, by name, as JSON."""
        return f"{self.tag}:repeatables"

    @property
    def repeat_marks(self) -> str:
        """Hash of the tick in ms each repeatable definition is done up to, by name."""
        return f"{self.tag}:repeat:marks"

    @property
    def jobs(self) -> str:
        """Sorted set of every job id with a record, scored by creation ms: the listing index."""
        return f"{self.tag}:jobs"

    def owner_jobs(self, owner: str) -> str:
        """Sorted set of one owner's job ids, scored by creation ms."""
        return f"{self.tag}:owner:{owner}:jobs"

    @property
    def expiring(self) -> str:
        """Sorted set of finished job ids, scored by the ms their record expires at."""
        return f"{self.tag}:expiring"

    @property
    def counts(self) -> str:
        """Hash of counters: `completed` and `failed` (attempts) in all, and per minute as
        `completed:<minute>` and `failed:<minute>`, where minute is epoch ms // 60000."""
        return f"{self.tag}:counts"

    @property
    def paused(self) -> str:
        """Present while the queue is paused: workers start none of its jobs."""
        return f"{self.tag}:paused"

    @property
    def audit(self) -> str:
        """Stream of who replayed or purged which dead letters, and when."""
        return f"{self.tag}:audit"

    def rate(self, name: str) -> str:
        """A rate limit's state (its theoretical arrival time): a job type's, or `*` for all."""
        return f"{self.tag}:rate:{name}"


class Lane(msgspec.Struct, frozen=True):
    """One stream a worker consumes: a queue's jobs of one priority."""

    queue: str
    priority: Priority = "normal"

    @property
    def stream(self) -> str:
        """This lane's stream."""
        return QueueKeys(self.queue).stream_of(self.priority)


def lanes_of(queues: Iterable[str]) -> tuple[Lane, ...]:
    """Every lane of these queues, highest priority first."""
    return tuple(Lane(queue, priority) for queue in queues for priority in PRIORITIES)


def user_job_rate(sub: str) -> str:
    """One user's job-creation rate limit state. No queue's hash tag: the limit spans queues,
    and its script touches this one key, so any cluster slot will do."""
    return f"{PREFIX}:user:{sub}:rate:jobs"


def log_stream(service: str) -> str:
    """The capped stream of a service's latest log lines, from all its instances."""
    return f"{PREFIX}:logs:{service}"


# Sorted set of worker ids, scored by their last heartbeat (ms): the index of every heartbeat
# key, so that readers need no SCAN. No queue's hash tag: a worker serves several queues, and
# each heartbeat command touches one key (shared.heartbeats).
WORKERS_KEY = f"{PREFIX}:workers"


def worker_heartbeat(worker_id: str) -> str:
    """One worker's latest heartbeat; it expires unless the worker renews it."""
    return f"{PREFIX}:workers:{worker_id}:heartbeat"


def user_room(sub: str) -> str:
    """The room of one user's connections."""
    return f"user:{sub}"


def role_room(role: str) -> str:
    """The room of every connection with this role."""
    return f"role:{role}"


def entry_order(entry_id: str | bytes) -> tuple[int, int]:
    """A stream entry id as a value that sorts as Redis orders the entries (not as text)."""
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    milliseconds, _, sequence = text.partition("-")
    return int(milliseconds), int(sequence or 0)
