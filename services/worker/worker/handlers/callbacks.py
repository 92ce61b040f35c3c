"""`conduit.callback`: POST a finished job's outcome to its callback URL, signed.

Delivery is at least once: a failed POST raises JobError and the worker retries it with backoff,
so receivers get the finished job's id as `Idempotency-Key` to drop duplicates.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import msgspec

from shared.contracts.commands import CALLBACK_JOB_TYPE, Callback
from shared.signing import SIGNATURE_HEADER, sign
from worker.registry import JobContext, JobError, PermanentJobError, Registry
from worker.retry import RetryPolicy

DEFAULT_TIMEOUT_S = 10.0
# Receivers that are down for a while should still get the outcome: waits stretch to an hour.
CALLBACK_RETRY = RetryPolicy(schedule_s=(10.0, 60.0, 300.0, 1800.0, 3600.0))
# Only this much of a receiver's answer is read: enough to quote it in an error message.
MAX_QUOTED_BYTES = 512
MAX_QUOTED_CHARS = 200
# Statuses a receiver may answer when it is busy or slow; every other 4xx is a refusal.
RETRYABLE_CLIENT_STATUSES = frozenset({408, 429})


class CallbackRefusedError(PermanentJobError):
    """The receiver answered in a way no retry changes: a 4xx, or a redirect we do not follow."""


class CallbackFailedError(JobError):
    """The receiver could not be reached or failed for now: the delivery is retried."""


class CallbackSender:
    """Delivers callbacks over one pooled HTTP client, signing each body with the secret."""

    def __init__(
        self,
        secret: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not secret:
            raise ValueError("a callback secret must not be empty")
        try:
            secret.encode()
        except UnicodeEncodeError as exc:
            # Found now rather than at the first delivery: receivers hold the secret as UTF-8.
            raise ValueError("a callback secret must be valid UTF-8 text") from exc
        self._secret = secret
        self._timeout_s = timeout_s
        self._clock = clock
        # A redirect would send the signed outcome to a URL nobody registered.
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            follow_redirects=False,
            headers={"User-Agent": "Conduit-Callbacks/1"},
        )

    async def deliver(self, payload: Callback, ctx: JobContext) -> dict[str, int]:
        """POST the outcome; return the receiver's status, or raise saying why it failed."""
        body = msgspec.json.encode(payload.outcome)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, int(self._clock()), body),
            "Conduit-Job-Id": payload.job_id,
            "Idempotency-Key": payload.job_id,
            "Conduit-Delivery-Attempt": str(ctx.attempt),
        }
        where = _where(payload.url)
        # httpx's timeout bounds each read; this one bounds the whole exchange, so a receiver
        # dripping one byte at a time cannot hold the delivery.
        deadline = asyncio.timeout(self._timeout_s)
        try:
            async with deadline:
                status, location, quoted = await self._post(payload.url, body, headers)
        except httpx.TimeoutException as exc:
            raise self._timed_out(where) from exc
        except TimeoutError as exc:
            if not deadline.expired():
                raise
            raise self._timed_out(where) from exc
        except httpx.InvalidURL as exc:
            raise CallbackRefusedError(f"The callback URL {where} is not valid: {exc}") from exc
        except httpx.TransportError as exc:
            raise CallbackFailedError(
                f"The callback to {where} could not be delivered: {_reason(exc)}."
            ) from exc
        if 200 <= status < 300:
            return {"status": status}
        answer = f"The callback receiver at {where} answered HTTP {status}"
        if 300 <= status < 400:
            raise CallbackRefusedError(
                f"{answer}, a redirect to {location or 'nowhere'}; callbacks do not follow "
                "redirects, so register the final URL."
            )
        if 400 <= status < 500 and status not in RETRYABLE_CLIENT_STATUSES:
            raise CallbackRefusedError(f"{answer} and refused it{quoted}.")
        raise CallbackFailedError(f"{answer}{quoted}.")

    async def _post(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[int, str | None, str]:
        """Send the request; the status, a redirect's Location and a quote of the answer."""
        async with self._client.stream("POST", url, content=body, headers=headers) as response:
            if response.is_success:
                return response.status_code, None, ""
            start = b""
            async for chunk in response.aiter_bytes():
                start += chunk
                if len(start) >= MAX_QUOTED_BYTES:
                    break
            return response.status_code, response.headers.get("Location"), _quote(start)

    def _timed_out(self, where: str) -> CallbackFailedError:
        return CallbackFailedError(
            f"The callback receiver at {where} did not answer within {self._timeout_s:g} s."
        )

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await self._client.aclose()


def _where(url: str) -> str:
    """The URL without its query, fragment or credentials, which may hold secrets."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _quote(start: bytes) -> str:
    """A short, one-line quote of a receiver's answer, or nothing when it said nothing."""
    text = " ".join(start.decode(errors="replace").split())
    if not text:
        return ""
    if len(text) > MAX_QUOTED_CHARS:
        text = text[:MAX_QUOTED_CHARS] + "..."
    return f": {text}"


def _reason(exc: httpx.TransportError) -> str:
    """What went wrong at the transport level, in words the job's owner can act on."""
    detail = str(exc) or "no detail"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect ({detail})"
    return f"{type(exc).__name__} ({detail})"


def register(registry: Registry, sender: CallbackSender) -> None:
    """Add `conduit.callback`, delivered by `sender`."""
    registry.add(CALLBACK_JOB_TYPE, sender.deliver, retry=CALLBACK_RETRY)
