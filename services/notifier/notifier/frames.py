"""How one job event becomes the text frames its recipients get: one for users, one for admins."""

from __future__ import annotations

import msgspec
from websockets.frames import Frame, Opcode

from shared.contracts.codec import encoder
from shared.contracts.events import ErrorInfo, JobDeadLettered, JobEvent, JobRetrying
from shared.contracts.ws import EventPush


def for_users(event: JobEvent) -> JobEvent:
    """The event without the error detail that only admins may see."""
    if isinstance(event, JobRetrying | JobDeadLettered) and event.error.detail:
        return msgspec.structs.replace(event, error=ErrorInfo(message=event.error.message))
    return event


class TextFrame:
    """One text message for every socket it goes to: its text, and its frame as on the wire.

    The wire frame (unmasked, as a server's are) is built once, when first asked for, however many
    sockets it is then written to.
    """

    __slots__ = ("_wire", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._wire: bytes | None = None

    @property
    def wire(self) -> bytes:
        """The whole WebSocket frame."""
        if self._wire is None:
            self._wire = Frame(Opcode.TEXT, self.text.encode()).serialize(mask=False)
        return self._wire


class EventFrames:
    """The frames of one event, each encoded at most once however many connections get it."""

    __slots__ = ("_admin", "_event", "_offset", "_recovered", "_user")

    def __init__(self, event: JobEvent, offset: str, *, recovered: bool = False) -> None:
        self._event = event
        self._offset = offset
        self._recovered = recovered
        self._admin: TextFrame | None = None
        self._user: TextFrame | None = None

    def for_admin(self) -> TextFrame:
        """The frame with the full error."""
        if self._admin is None:
            self._admin = self._encode(self._event)
        return self._admin

    def for_user(self) -> TextFrame:
        """The frame with the friendly error only."""
        if self._user is None:
            redacted = for_users(self._event)
            self._user = self.for_admin() if redacted is self._event else self._encode(redacted)
        return self._user

    def _encode(self, event: JobEvent) -> TextFrame:
        push = EventPush(offset=self._offset, event=event, recovered=self._recovered)
        return TextFrame(encoder.encode(push).decode())
