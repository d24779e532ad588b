"""`screener worker --processes N`: N worker processes of one consumer group, one per core by default.

One Python process screens on one core, so a machine scales up the way the cluster scales out: more
members of the same group, each owning some partitions. The parent only supervises: it starts the
children with the same settings (as SCREENER_* variables), gives each its own Faust data directory and
metrics port (`metrics_port + i`), forwards SIGTERM/SIGINT, and exits when they have; if one child
dies, it stops the others and exits with that child's code, so the orchestrator restarts the lot.
Children die with the parent (Linux parent-death signal), so a SIGKILLed supervisor leaves no orphans.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from screener.settings import ENV_PREFIX, Settings

_PR_SET_PDEATHSIG = 1


def process_count(settings: Settings) -> int:
    """Worker processes to run: the setting, or one per available core when it is 0."""
    if settings.processes > 0:
        return settings.processes
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def child_environment(settings: Settings, index: int) -> dict[str, str]:
    """Environment of child `index`: every setting spelled out, one process each, its own data dir and port."""
    env = dict(os.environ)
    for f in dataclasses.fields(settings):
        env[ENV_PREFIX + f.name.upper()] = str(getattr(settings, f.name))
    env[ENV_PREFIX + "PROCESSES"] = "1"
    env[ENV_PREFIX + "DATA_DIR"] = str(Path(settings.data_dir) / f"worker-{index}")
    if settings.metrics_port:
        env[ENV_PREFIX + "METRICS_PORT"] = str(settings.metrics_port + index)
    if settings.web_port:
        env[ENV_PREFIX + "WEB_PORT"] = str(settings.web_port + index)
    return env


def _die_with_parent() -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:  # not glibc Linux: children then outlive a SIGKILLed parent
        pass


def run_processes(settings: Settings, count: int) -> int:
    """Run `count` worker children until they stop; the exit code of the first that failed, else 0."""
    envs = [child_environment(settings, i) for i in range(count)]
    for env in envs:
        Path(env[ENV_PREFIX + "DATA_DIR"]).mkdir(parents=True, exist_ok=True)   # Faust makes only the last level
    children = [subprocess.Popen([sys.executable, "-m", "screener.cli", "worker"], env=env,
                                 preexec_fn=_die_with_parent) for env in envs]
    stopping = False
    first_failure = None

    def forward(signum, _frame):
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            codes = [c.poll() for c in children]
            # A failure is recorded before "all exited" is checked: children that die between two polls
            # (a broker that is not there, a bad pack) must not make the supervisor exit 0.
            failed = next((code for code in codes if code), None)
            if failed is not None and first_failure is None and not stopping:
                first_failure = failed
                forward(signal.SIGTERM, None)   # one member died: stop the group's others too
            if all(code is not None for code in codes):
                return first_failure if first_failure is not None else next((c for c in codes if c), 0)
            time.sleep(0.2)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
