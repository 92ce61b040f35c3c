"""Where a service's time goes during a scenario's load: py-spy samples, summarised.

With `--profile`, the busiest service of each load is sampled by `py-spy record` (non-blocking,
so the service is not paused; it still costs some CPU, so a profiled run's figures are not the
ones to compare). The samples are written as collapsed stacks, which speedscope and
flamegraph tools read, and the frames that hold most samples go into the scenario's notes.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

_RATE_HZ = 100
_STOP_TIMEOUT_S = 30.0
_TOP = 6
# Conduit's own packages, as py-spy names their files (`worker/runner.py`).
CONDUIT_PACKAGES = frozenset({"shared", "gateway", "worker", "notifier", "health"})
# Frames that only start a process: below them, no Conduit code is running.
_ENTRY_FILES = ("shared/serving.py", "/__main__.py")
OUTSIDE = "(no Conduit frame: framework, libraries, event loop)"


class Profile:
    """The samples of one process over one block, once the block has ended."""

    def __init__(self, name: str, path: Path | None) -> None:
        self.name = name
        self.path = path

    def summaries(self) -> list[str]:
        """A note naming the busiest frames and their share of the samples; none without."""
        if self.path is None or not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        top = busiest_frames(lines, _TOP)
        if not top:
            return []
        own = ", ".join(f"{share:.0%} {frame}" for frame, share in top)
        inner = ", ".join(
            f"{share:.0%} {frame}" for frame, share in innermost_conduit_frames(lines, _TOP)
        )
        return [
            f"profile {self.path.name}: busiest frames by own samples: {own}; "
            f"by innermost Conduit frame: {inner}"
        ]


def busiest_frames(collapsed: Iterable[str], count: int) -> list[tuple[str, float]]:
    """The `count` frames most often at the top of the stack, with their share of all samples.

    `collapsed` holds py-spy's raw lines: `frame;frame;...;frame samples`, where a frame is
    `function (file:line)`; the line number is dropped, so a function counts as one frame.
    """
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed:
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        leaf = stack.rsplit(";", 1)[-1]
        function, _, where = leaf.partition(" (")
        source = where.rsplit(":", 1)[0].rsplit("/", 1)[-1]
        own[f"{function} ({source})" if source else function] += int(samples)
        total += int(samples)
    return [(frame, samples / total) for frame, samples in own.most_common(count)]


def innermost_conduit_frames(collapsed: Iterable[str], count: int) -> list[tuple[str, float]]:
    """The `count` Conduit functions whose calls (with all they call) hold most samples.

    Each sample counts for the innermost frame of Conduit's own code on its stack, or for
    `OUTSIDE` when only frameworks, libraries and the event loop are running.
    """
    inner: Counter[str] = Counter()
    total = 0
    for line in collapsed:
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        total += int(samples)
        found = OUTSIDE
        for frame in reversed(stack.split(";")):
            function, _, where = frame.partition(" (")
            source = where.rsplit(":", 1)[0]
            if source.split("/", 1)[0] in CONDUIT_PACKAGES:
                if not source.endswith(_ENTRY_FILES):
                    found = f"{function} ({source})"
                break
        inner[found] += int(samples)
    return [(frame, samples / total) for frame, samples in inner.most_common(count)]


@contextlib.asynccontextmanager
async def profiled(name: str, pid: int, directory: Path | None) -> AsyncIterator[Profile]:
    """Sample process `pid` with py-spy for the block into `directory/<name>.txt`; with no
    directory (profiling off) do nothing."""
    if directory is None:
        yield Profile(name, None)
        return
    binary = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    await asyncio.to_thread(directory.mkdir, parents=True, exist_ok=True)
    path = directory / f"{name}.txt"
    recorder = await asyncio.create_subprocess_exec(
        binary,
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(_RATE_HZ),
        "--nonblocking",
        "--format",
        "raw",
        "--output",
        str(path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield Profile(name, path)
    finally:
        # py-spy writes its output when interrupted, as on Ctrl-C.
        recorder.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(recorder.wait(), _STOP_TIMEOUT_S)
        except TimeoutError:
            recorder.kill()
            await recorder.wait()
