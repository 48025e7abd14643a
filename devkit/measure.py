"""What the benchmarks record about a run: the machine, and a process's memory."""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def proc_status_mb(field: str) -> float:
    """VmHWM (peak) or VmRSS (now) of this process, in MiB.

    On Linux ``ru_maxrss`` survives fork+exec (a child reports at least its
    parent's peak); VmHWM belongs to the process's own address space, so it is
    read first, and ``ru_maxrss`` is the fallback where /proc is missing.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # macOS: bytes, Linux: KiB


def peak_rss_mb() -> float:
    """This process's peak RSS, in MiB."""
    return proc_status_mb("VmHWM")


def machine(**extra: Any) -> dict[str, Any]:
    """The machine, the versions and the commit a benchmark ran on, plus ``extra``."""
    import boto3
    import orjson
    import pyarrow

    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as info:
            models = [
                line.split(":", 1)[1].strip() for line in info if line.startswith("model name")
            ]
        cpu = models[0] if models else cpu
    except OSError:
        pass

    def git(*command: str) -> str:
        done = subprocess.run(
            ["git", *command], cwd=ROOT, capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no")),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "pyarrow": pyarrow.__version__,
        "orjson": orjson.__version__,
        "boto3": boto3.__version__,
        "tmpdir": tempfile.gettempdir(),
        "load_average_at_start": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        **extra,
    }
