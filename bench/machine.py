"""The machine and the code a run measured: CPU, cores, RAM, versions, date, commit, load."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def _first(path: str, key: str) -> str | None:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    return _first("/proc/cpuinfo", "model name") or platform.processor() or platform.machine()


def ram_gb() -> float | None:
    total = _first("/proc/meminfo", "MemTotal")  # "24576000 kB"
    return int(total.split()[0]) / 1024**2 if total else None


def git_commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        return commit + (" with uncommitted changes" if git("status", "--porcelain") else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"


def load_average() -> str:
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def machine_lines() -> list[str]:
    ram = ram_gb()
    return [
        f"- Machine: {cpu_model()}, {os.cpu_count()} cores, "
        f"{f'{ram:.0f} GB RAM' if ram else 'RAM unknown'}, {platform.system()} "
        f"{platform.machine()}",
        f"- Software: Python {platform.python_version()}, torch {package_version('torch')}, "
        f"symusic {package_version('symusic')}, discord.py {package_version('discord.py')}",
        f"- Code: commit {git_commit()}",
        f"- Started {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC; load average "
        f"(1 / 5 / 15 min) at the start {load_average()}",
    ]


def resident_mb(pid: int | str = "self") -> dict[str, float]:
    """Resident memory of a process now and at its peak (Linux /proc), in MB."""
    out = {}
    for key, name in (("VmRSS", "now"), ("VmHWM", "peak")):
        value = _first(f"/proc/{pid}/status", key)  # "123456 kB"
        if value:
            out[name] = int(value.split()[0]) / 1024
    return out


def cpu_seconds(pid: int | str = "self") -> float:
    """CPU time a process has used so far, user and system (Linux /proc), in seconds."""
    with open(f"/proc/{pid}/stat") as stat:
        # The command name (field 2) may hold spaces: count the fields after its ")".
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
