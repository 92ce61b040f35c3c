"""deploy/Dockerfile's uv steps, replayed without Docker: each service installs from the lock
alone, with only `shared` and its own sources present, and its app module imports."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"


def uv_binary() -> str:
    """The uv running this session (`uv run` exports UV), or the one on PATH."""
    binary = os.environ.get("UV") or shutil.which("uv")
    if binary is None:
        pytest.fail("uv is missing: run `make install`")
    return binary


def uv_sync_steps() -> list[list[str]]:
    """The Dockerfile's `uv sync` commands, in order, as argument lists."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    steps = [
        match.split() for match in re.findall(r"^RUN .*?(uv sync [^\n]*)$", text, re.MULTILINE)
    ]
    assert len(steps) == 2, steps
    return steps


@pytest.mark.parametrize("service", ["gateway", "notifier", "health", "worker"])
def test_dockerfile_installs_each_service_from_the_lock_with_only_its_sources(
    service: str, tmp_path: Path
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    env = {**os.environ, "UV_PROJECT_ENVIRONMENT": str(tmp_path / "venv"), "UV_NO_PROGRESS": "1"}
    env.pop("VIRTUAL_ENV", None)
    dependencies, project = (
        [uv_binary(), *(arg.replace("${SERVICE}", service).strip('"') for arg in step[1:])]
        for step in uv_sync_steps()
    )
    # As in the image: first the lock and the root manifest only, then the sources.
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(dependencies, cwd=source, env=env, check=True, capture_output=True, timeout=300)
    shutil.copytree(
        ROOT / "shared", source / "shared", ignore=shutil.ignore_patterns("__pycache__")
    )
    shutil.copytree(
        ROOT / "services" / service,
        source / "services" / service,
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    subprocess.run(project, cwd=source, env=env, check=True, capture_output=True, timeout=300)
    python = tmp_path / "venv" / "bin" / "python"
    completed = subprocess.run(
        [str(python), "-c", f"import {service}.app, {service}.__main__, shared.migrations"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
