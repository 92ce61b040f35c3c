"""A queue's dead letters: list and filter them, replay them as fresh jobs, purge them, and the
audit trail of who replayed or purged what, and when.

Dead letters live on the queue's dead-letter stream (newest last); the audit trail is a capped
stream beside it. A replay is one Lua step (shared/lua/revive.lua): the job is queued again
with a fresh round of attempts, keeping its errors, the dead letter goes and the audit record is
written.
"""

from __future__ import annotations

import enum
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
from redis.asyncio import Redis

from shared.contracts.codec import dead_letter_decoder, encoder
from shared.contracts.jobs import AttemptError, DeadLetter
from shared.jobstore import JobStore
from shared.streams import DATA_FIELD, QueueKeys

# About how many audit records each queue keeps.
AUDIT_MAXLEN = 10_000
# How many dead letters one bulk replay or purge handles: a bigger backlog takes several calls.
BULK_LIMIT = 1_000
_CHUNK = 200
_DATA = DATA_FIELD.encode()
# A time as stream entry ids carry it: epoch ms, never negative.
EpochMs = Annotated[int, msgspec.Meta(ge=0, le=2**53)]
# How many entry ids one audit record lists; the count is always complete.
_AUDITED_IDS = 100


class DeadLetterFilter(msgspec.Struct, frozen=True, kw_only=True):
    """Which dead letters a listing, replay or purge takes; None matches anything."""

    type: Annotated[str, msgspec.Meta(max_length=100)] | None = None
    # Matches when the reason contains it, case-insensitively.
    reason: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    owner: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    # Dead-lettered at or after / before, epoch ms.
    since_ms: EpochMs | None = None
    until_ms: EpochMs | None = None

    def matches(self, letter: DeadLetter) -> bool:
        """Whether the letter passes the filters a stream range cannot apply."""
        job = letter.job
        return (
            (self.type is None or (job is not None and job.type == self.type))
            and (self.owner is None or (job is not None and job.owner == self.owner))
            and (self.reason is None or self.reason.casefold() in letter.reason.casefold())
        )


class DeadLetterView(msgspec.Struct, frozen=True, kw_only=True):
    """One dead letter as the API shows it; job fields are absent for an entry that was not a
    readable job (`raw` holds what it was)."""

    id: str
    queue: str
    reason: str
    at_ms: int
    job_id: str | None = None
    type: str | None = None
    owner: str | None = None
    attempt: int | None = None
    max_attempts: int | None = None
    payload: Any = None
    errors: tuple[AttemptError, ...] = ()
    raw: str | None = None


class DeadLetterPage(msgspec.Struct, frozen=True, kw_only=True):
    """Dead letters newest first, and the cursor of the next page (None: no more)."""

    items: tuple[DeadLetterView, ...]
    next: str | None = None


class AuditRecord(msgspec.Struct, frozen=True, kw_only=True):
    """Who replayed or purged which dead letters, and when."""

    action: Literal["replay", "purge"]
    by: str
    at_ms: int
    count: int
    # The first entry ids affected (all of them for up to 100).
    entries: tuple[str, ...] = ()
    filter: DeadLetterFilter | None = None


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """An audit record and its position in the audit stream."""

    id: str
    record: AuditRecord


class Replayed(enum.Enum):
    """What replaying one dead letter did."""

    REPLAYED = "replayed"
    GONE = "gone"
    """No such dead letter (any more)."""
    LIVE = "live"
    """Its job runs again already: replayed before."""
    NOT_A_JOB = "not_a_job"
    """The entry was never a readable job; it can only be purged."""


class BulkOutcome(msgspec.Struct, frozen=True, kw_only=True):
    """What a bulk replay or purge did; `more` when matching letters remain past the limit."""

    matched: int
    done: int
    skipped: int = 0
    more: bool = False


_audit_decoder = msgspec.json.Decoder(AuditRecord)
_ENTRY_ID = re.compile(r"\d{1,20}-\d{1,20}")


def is_entry_id(text: str) -> bool:
    """Whether `text` is a stream entry id (`<ms>-<seq>`), as dead letters are named."""
    return _ENTRY_ID.fullmatch(text) is not None


class DeadLetters:
    """Reads and acts on the dead letters of the queues, through the job store's scripts."""

    def __init__(self, redis: Redis, store: JobStore) -> None:
        self._redis = redis
        self._store = store

    async def page(
        self,
        queue: str,
        query: DeadLetterFilter,
        *,
        limit: int,
        cursor: str | None = None,
        scan_budget: int = 5_000,
    ) -> DeadLetterPage:
        """The next `limit` dead letters matching `query`, newest first. The cursor is the id of
        the last entry examined; a rare filter yields a short page with a cursor to go on."""
        found: list[DeadLetterView] = []
        examined = 0
        position = cursor
        async for entry_id, letter in self._scan(queue, query, cursor):
            examined += 1
            position = entry_id
            if letter is not None:
                found.append(_view(queue, entry_id, letter))
                if len(found) == limit:
                    return DeadLetterPage(items=tuple(found), next=entry_id)
            if examined >= scan_budget:
                return DeadLetterPage(items=tuple(found), next=position)
        return DeadLetterPage(items=tuple(found))

    async def get(self, queue: str, entry_id: str) -> DeadLetterView | None:
        """One dead letter by its entry id."""
        letter = await self._read(queue, entry_id)
        return None if letter is None else _view(queue, entry_id, letter)

    async def replay(
        self, queue: str, entry_id: str, by: str, now_ms: int
    ) -> tuple[Replayed, str | None]:
        """Queue the dead letter's job again, with a fresh round of attempts; what happened,
        and the id of the letter's job (None when there is no such letter or job)."""
        letter = await self._read(queue, entry_id)
        if letter is None:
            return Replayed.GONE, None
        job_id = None if letter.job is None else letter.job.id
        return await self._replay(entry_id, letter, by, now_ms), job_id

    async def replay_matching(
        self, queue: str, query: DeadLetterFilter, by: str, now_ms: int
    ) -> BulkOutcome:
        """Replay up to BULK_LIMIT matching dead letters, oldest first; each replay is audited."""
        letters = await self._matching(queue, query)
        replayed = 0
        for entry_id, letter in letters[:BULK_LIMIT]:
            if await self._replay(entry_id, letter, by, now_ms) is Replayed.REPLAYED:
                replayed += 1
        taken = min(len(letters), BULK_LIMIT)
        return BulkOutcome(
            matched=len(letters),
            done=replayed,
            skipped=taken - replayed,
            more=len(letters) > BULK_LIMIT,
        )

    async def purge(self, queue: str, query: DeadLetterFilter, by: str, now_ms: int) -> BulkOutcome:
        """Delete every matching dead letter, and record the purge in the audit trail."""
        keys = QueueKeys(queue)
        ids = [entry_id for entry_id, _ in await self._matching(queue, query, limit=None)]
        deleted = 0
        for start in range(0, len(ids), BULK_LIMIT):
            deleted += int(await self._redis.xdel(keys.dead, *ids[start : start + BULK_LIMIT]))
        record = AuditRecord(
            action="purge",
            by=by,
            at_ms=now_ms,
            count=deleted,
            entries=tuple(ids[:_AUDITED_IDS]),
            filter=query,
        )
        await self._redis.xadd(
            keys.audit,
            {DATA_FIELD: encoder.encode(record)},
            maxlen=AUDIT_MAXLEN,
            approximate=True,
        )
        return BulkOutcome(matched=len(ids), done=deleted)

    async def audit(self, queue: str, *, limit: int) -> tuple[AuditEntry, ...]:
        """The latest audit records of a queue, newest first."""
        entries: Any = await self._redis.xrevrange(QueueKeys(queue).audit, count=limit)
        return tuple(
            AuditEntry(id=entry_id.decode(), record=_audit_decoder.decode(fields[_DATA]))
            for entry_id, fields in entries
        )

    async def _replay(self, entry_id: str, letter: DeadLetter, by: str, now_ms: int) -> Replayed:
        job = letter.job
        if job is None:
            return Replayed.NOT_A_JOB
        # A fresh round of `max_attempts` attempts, numbered on from the last one, so that
        # the history reads in order and a job whose cause was fixed meanwhile can succeed.
        again = msgspec.structs.replace(
            job,
            attempt=job.attempt + 1,
            max_attempts=job.attempt + job.max_attempts,
            enqueued_at_ms=now_ms,
            due_at_ms=now_ms,
            errors=letter.errors,
        )
        record = AuditRecord(action="replay", by=by, at_ms=now_ms, count=1, entries=(entry_id,))
        outcome = await self._store.revive(
            entry_id, again, audit=encoder.encode(record), audit_maxlen=AUDIT_MAXLEN
        )
        if outcome == 1:
            return Replayed.REPLAYED
        if outcome == 0:
            return Replayed.LIVE
        # Another replay or a purge took it between the read and the script.
        return Replayed.GONE

    async def _read(self, queue: str, entry_id: str) -> DeadLetter | None:
        entries = _letters(await self._redis.xrange(QueueKeys(queue).dead, entry_id, entry_id))
        return entries[0][1] if entries else None

    async def _matching(
        self, queue: str, query: DeadLetterFilter, *, limit: int | None = BULK_LIMIT + 1
    ) -> list[tuple[str, DeadLetter]]:
        """Matching dead letters, oldest first, up to `limit` (None: all)."""
        found: list[tuple[str, DeadLetter]] = []
        start = "-" if query.since_ms is None else str(query.since_ms)
        end = "+" if query.until_ms is None else f"({query.until_ms}"
        while True:
            entries = _letters(
                await self._redis.xrange(QueueKeys(queue).dead, start, end, count=_CHUNK)
            )
            for entry_id, letter in entries:
                if query.matches(letter):
                    found.append((entry_id, letter))
                    if limit is not None and len(found) >= limit:
                        return found
            if len(entries) < _CHUNK:
                return found
            start = "(" + entries[-1][0]

    async def _scan(
        self, queue: str, query: DeadLetterFilter, cursor: str | None
    ) -> AsyncIterator[tuple[str, DeadLetter | None]]:
        """Every dead letter below the cursor, newest first: (id, letter or None if filtered)."""
        end = "+" if query.until_ms is None else f"({query.until_ms}"
        if cursor is not None:
            end = f"({cursor}"
        start = "-" if query.since_ms is None else str(query.since_ms)
        while True:
            entries = _letters(
                await self._redis.xrevrange(QueueKeys(queue).dead, end, start, count=_CHUNK)
            )
            for entry_id, letter in entries:
                yield entry_id, (letter if query.matches(letter) else None)
            if len(entries) < _CHUNK:
                return
            end = "(" + entries[-1][0]


def _letters(entries: Any) -> list[tuple[str, DeadLetter]]:
    """Stream entries (XRANGE's answer) as (entry id, dead letter) pairs."""
    return [
        (entry_id.decode(), dead_letter_decoder.decode(fields[_DATA]))
        for entry_id, fields in entries
    ]


def _view(queue: str, entry_id: str, letter: DeadLetter) -> DeadLetterView:
    job = letter.job
    if job is None:
        return DeadLetterView(
            id=entry_id, queue=queue, reason=letter.reason, at_ms=letter.at_ms, raw=letter.raw
        )
    return DeadLetterView(
        id=entry_id,
        queue=queue,
        reason=letter.reason,
        at_ms=letter.at_ms,
        job_id=job.id,
        type=job.type,
        owner=job.owner,
        attempt=job.attempt,
        max_attempts=job.max_attempts,
        payload=msgspec.json.decode(job.payload),
        errors=letter.errors,
    )
