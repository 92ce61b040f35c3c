"""The git-ignored `.run/` folder of the repository: data and secrets of the local stack."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path

RUN_DIR_NAME = ".run"


def repo_root(start: Path | None = None) -> Path:
    """The nearest folder at or above `start` (default: cwd) with the uv workspace pyproject."""
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and "[tool.uv.workspace]" in pyproject.read_text(encoding="utf-8"):
            return folder
    return here


def default_run_dir() -> Path:
    """`<repo>/.run`."""
    return repo_root() / RUN_DIR_NAME


def read_secret(path: Path) -> str | None:
    """The secret kept in `path`, or None when there is none."""
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return value or None


def kept_secret(path: Path, environ: Mapping[str, str], variable: str) -> str:
    """The secret from `variable` when set, else the one kept in `path`, made once (mode 0600)."""
    if environ.get(variable):
        return environ[variable]
    existing = read_secret(path)
    if existing is not None:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # Created with its final mode, so the secret is never readable by others, even briefly.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(value + "\n")
    return value
