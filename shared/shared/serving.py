"""How every service process starts, serves and stops: one way, the same for all four."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any, NoReturn

import uvicorn
import uvloop

from shared.logging import configure_logging
from shared.settings import HttpSettings, LogSettings, SettingsError, from_env
from shared.telemetry import configure_tracing


def serve(
    service: str,
    default_port: int,
    build_app: Callable[[], Callable[..., Any]],
    **uvicorn_options: Any,
) -> None:
    """Read the settings, log JSON, serve the app until SIGTERM or SIGINT, then exit 0.

    A bad setting ends the process at once with a message naming it.
    """
    configure_tracing(service)
    try:
        http = from_env(HttpSettings, defaults={"HTTP_PORT": str(default_port)})
        level = from_env(LogSettings).level
        app = build_app()
    except SettingsError as exc:
        raise SystemExit(f"{service}: {exc}") from exc
    # After the app is built: a framework that sets up logging of its own must not undo ours.
    configure_logging(service, level)
    config = uvicorn.Config(
        app, host=http.host, port=http.port, log_config=None, lifespan="on", **uvicorn_options
    )
    # After its graceful shutdown uvicorn restores these handlers and raises the signal again;
    # they turn that into a normal exit (status 0) rather than death by signal.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, _exit_cleanly)
    # uvloop, the loop uvicorn itself picks when it runs an app: in the worker's drain profile,
    # asyncio's pure-Python selector loop and transports were a tenth of the samples.
    uvloop.run(uvicorn.Server(config).serve())


def _exit_cleanly(signum: int, frame: FrameType | None) -> NoReturn:
    raise SystemExit(0)
