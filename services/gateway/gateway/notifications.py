"""`/v1/notifications`: the calling user's own notifications, stored in PostgreSQL by notifiers.

Every route is scoped to the caller, admins included: another user's notification answers 404
exactly like an unknown id, so ids reveal nothing about other users.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import PathParameter, QueryParameter
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_200_OK, HTTP_204_NO_CONTENT

from gateway.auth import Principal
from gateway.problems import problem
from shared.notifications import (
    DEFAULT_PAGE_SIZE,
    MAX_NOTIFICATION_ID,
    MAX_PAGE_SIZE,
    MarkedRead,
    NotificationPage,
    NotificationRepository,
    StoredNotification,
    UnreadCount,
)

NotificationId = Annotated[int, PathParameter(ge=1, le=MAX_NOTIFICATION_ID)]
Limit = Annotated[
    int,
    QueryParameter(ge=1, le=MAX_PAGE_SIZE, description="How many to return, at most."),
]
Before = Annotated[
    int | None,
    QueryParameter(
        ge=1,
        le=MAX_NOTIFICATION_ID,
        description="The `next` of the previous page: only notifications older than it.",
    ),
]
UnreadOnly = Annotated[bool, QueryParameter(description="Only notifications not yet read.")]


class NotificationController(Controller):
    """The caller's notifications: list, count unread, mark read, dismiss."""

    path = "/v1/notifications"
    tags = ("notifications",)

    @get(summary="List notifications")
    async def list_page(
        self,
        request: Request[Principal, Token, Any],
        notifications: NamedDependency[NotificationRepository],
        limit: Limit = DEFAULT_PAGE_SIZE,
        before: Before = None,
        unread: UnreadOnly = False,
    ) -> NotificationPage:
        """The newest `limit` not dismissed, then older pages with `before` set to `next`."""
        return await notifications.page_for(
            request.user.sub, limit=limit, before_id=before, unread_only=unread
        )

    @get("/unread-count", summary="Count unread notifications")
    async def unread_count(
        self,
        request: Request[Principal, Token, Any],
        notifications: NamedDependency[NotificationRepository],
    ) -> UnreadCount:
        """How many are unread and not dismissed: the badge on the bell."""
        return UnreadCount(unread=await notifications.unread_count(request.user.sub))

    @post("/read-all", status_code=HTTP_200_OK, summary="Mark every notification read")
    async def read_all(
        self,
        request: Request[Principal, Token, Any],
        notifications: NamedDependency[NotificationRepository],
    ) -> MarkedRead:
        """Mark every unread one read; how many that was (0 on a repeat)."""
        return MarkedRead(marked=await notifications.mark_read(request.user.sub))

    @post("/{notification_id:int}/read", status_code=HTTP_200_OK, summary="Mark one read")
    async def read_one(
        self,
        request: Request[Principal, Token, Any],
        notification_id: NotificationId,
        notifications: NamedDependency[NotificationRepository],
    ) -> StoredNotification:
        """Mark it read and return it; a repeat keeps the first read time. 404 if not yours."""
        notification = await notifications.mark_one_read(request.user.sub, notification_id)
        if notification is None:
            raise problem(404, f"no notification {notification_id}")
        return notification

    @post(
        "/{notification_id:int}/dismiss",
        status_code=HTTP_204_NO_CONTENT,
        summary="Dismiss one",
    )
    async def dismiss(
        self,
        request: Request[Principal, Token, Any],
        notification_id: NotificationId,
        notifications: NamedDependency[NotificationRepository],
    ) -> None:
        """Hide it from the list and the unread count (a repeat is a no-op); 404 if not yours."""
        if not await notifications.dismiss(request.user.sub, notification_id):
            raise problem(404, f"no notification {notification_id}")
