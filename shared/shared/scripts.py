"""Loads the Lua scripts in `lua/`, each with the shared steps of `common.lua` before it."""

from __future__ import annotations

from collections.abc import Iterable
from importlib.resources import files

from redis.asyncio import Redis
from redis.commands.core import AsyncScript


def load_scripts(redis: Redis, names: Iterable[str]) -> dict[str, AsyncScript]:
    """Register the named scripts with `redis`; each runs by its SHA, loaded on first use."""
    lua = files("shared") / "lua"
    common = (lua / "common.lua").read_text()
    return {
        name: redis.register_script(common + (lua / f"{name}.lua").read_text()) for name in names
    }
