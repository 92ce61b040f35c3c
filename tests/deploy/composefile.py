"""docker-compose.yml as `docker-compose config` resolves it, run one way by every deploy test."""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# The variables compose refuses to start without.
SECRETS = ("REDIS_PASSWORD", "POSTGRES_PASSWORD", "JWT_SECRET")


def docker_compose() -> str:
    """The docker-compose binary; its absence fails the test, since `make install` provides it."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is missing: run `bash deploy/install-system-packages.sh`")
    return binary


def run_config(
    env: Mapping[str, str], env_file: Path, *profiles: str
) -> subprocess.CompletedProcess[str]:
    """`docker-compose config` with exactly `env` (plus PATH and HOME); no stray .env is read."""
    return subprocess.run(
        [
            docker_compose(),
            "--file",
            str(COMPOSE_FILE),
            "--project-directory",
            str(ROOT),
            "--env-file",
            str(env_file),
            *(arg for profile in profiles for arg in ("--profile", profile)),
            "config",
        ],
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/"), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def compose_services(
    env_file: Path, *profiles: str, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The services compose resolves with these profiles and variables.

    Each secret is `value` unless `env` gives it.
    """
    completed = run_config({**dict.fromkeys(SECRETS, "value"), **(env or {})}, env_file, *profiles)
    assert completed.returncode == 0, completed.stderr
    services: dict[str, Any] = load_yaml(completed.stdout)["services"]
    return services


def load_yaml(text: str) -> Any:
    """YAML text as Python values."""
    # PyYAML ships no type hints; it comes with litestar[standard] and uvicorn[standard].
    yaml = importlib.import_module("yaml")
    return yaml.safe_load(text)
