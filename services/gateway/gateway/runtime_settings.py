"""`/v1/settings`: list, read, change and reset runtime settings; admins only."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, delete, get, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, PathParameter
from litestar.security.jwt import Token
from litestar.status_codes import HTTP_200_OK

from gateway.auth import Principal, admin_only
from gateway.openapi import problem_response
from gateway.problems import problem
from shared.runtime.catalog import CATALOG, InvalidSettingError, Setting
from shared.runtime.store import NotAnnouncedError, RuntimeSettingsStore, StoredSetting

SettingKey = Annotated[str, PathParameter(max_length=100)]


class SettingView(msgspec.Struct, frozen=True, kw_only=True):
    """A setting as the API shows it; `updated_by` and `updated_at` are null while unset."""

    key: str
    value: Any
    default: Any
    description: str
    schema: dict[str, Any]
    updated_by: str | None
    updated_at: datetime | None


class SettingUpdate(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A new value for one setting, checked against its schema."""

    value: Any


def _setting(key: str) -> Setting[Any]:
    setting = CATALOG.get(key)
    if setting is None:
        raise problem(404, f"no runtime setting {key!r}", known_keys=sorted(CATALOG))
    return setting


def _view(setting: Setting[Any], stored: StoredSetting | None) -> SettingView:
    default = setting.to_json(setting.default)
    return SettingView(
        key=setting.key,
        value=default if stored is None else stored.value,
        default=default,
        description=setting.description,
        schema=setting.schema(),
        updated_by=None if stored is None else stored.updated_by,
        updated_at=None if stored is None else stored.updated_at,
    )


def _not_announced(exc: NotAnnouncedError) -> Exception:
    return problem(
        503,
        f"{exc.key} is stored, but running services were not told; they apply it when they "
        "reconnect to Redis, or at once when the request is repeated",
        slug="setting-not-announced",
        key=exc.key,
    )


class RuntimeSettingsController(Controller):
    """Settings applied by running services without a restart; a stored value wins over env."""

    path = "/v1/settings"
    tags = ("settings",)
    guards = (admin_only,)

    @get(summary="List runtime settings")
    async def list_all(
        self, runtime_settings: NamedDependency[RuntimeSettingsStore]
    ) -> list[SettingView]:
        """Every setting the catalog knows, with its value, default and schema."""
        stored = await runtime_settings.stored()
        return [_view(setting, stored.get(key)) for key, setting in CATALOG.items()]

    @get("/{key:str}", summary="Read a runtime setting")
    async def read(
        self, key: SettingKey, runtime_settings: NamedDependency[RuntimeSettingsStore]
    ) -> SettingView:
        """One setting."""
        setting = _setting(key)
        return _view(setting, await runtime_settings.get(key))

    @put(
        "/{key:str}",
        status_code=HTTP_200_OK,
        summary="Change a runtime setting",
        responses={503: problem_response(503)},
    )
    async def change(
        self,
        request: Request[Principal, Token, Any],
        key: SettingKey,
        data: JSONBody[SettingUpdate],
        runtime_settings: NamedDependency[RuntimeSettingsStore],
    ) -> SettingView:
        """Validate the value against the setting's schema, store it and tell every service."""
        setting = _setting(key)
        try:
            stored = await runtime_settings.put(setting, data.value, request.user.sub)
        except InvalidSettingError as exc:
            raise problem(
                422, str(exc), slug="invalid-setting", key=key, schema=setting.schema()
            ) from exc
        except NotAnnouncedError as exc:
            raise _not_announced(exc) from exc
        return _view(setting, stored)

    @delete(
        "/{key:str}",
        status_code=HTTP_200_OK,
        summary="Reset a runtime setting",
        responses={503: problem_response(503)},
    )
    async def reset(
        self,
        request: Request[Principal, Token, Any],
        key: SettingKey,
        runtime_settings: NamedDependency[RuntimeSettingsStore],
    ) -> SettingView:
        """Delete the stored value: each service returns to its environment's value or default."""
        setting = _setting(key)
        try:
            await runtime_settings.reset(setting, request.user.sub)
        except NotAnnouncedError as exc:
            raise _not_announced(exc) from exc
        return _view(setting, None)
