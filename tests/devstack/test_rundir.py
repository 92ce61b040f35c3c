"""Secrets of the local stack: from the environment, else made once and kept private."""

from __future__ import annotations

from pathlib import Path

from devstack.rundir import kept_secret, read_secret, repo_root


def test_secret_is_made_once_kept_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / ".run" / "jwt-secret"
    first = kept_secret(path, {}, "JWT_SECRET")
    assert len(first) >= 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert kept_secret(path, {}, "JWT_SECRET") == first
    assert read_secret(path) == first


def test_secret_from_the_environment_wins_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "jwt-secret"
    assert kept_secret(path, {"JWT_SECRET": "from-env"}, "JWT_SECRET") == "from-env"
    assert not path.exists()


def test_repo_root_is_the_uv_workspace_above_a_subfolder() -> None:
    here = Path(__file__).resolve()
    root = repo_root(here.parent)
    assert (root / "pyproject.toml").is_file()
    assert here.is_relative_to(root)
    assert (root / "deploy" / "devstack").is_dir()
