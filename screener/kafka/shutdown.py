"""Shutdown with a deadline: SIGTERM or SIGINT stops a worker within seconds, broker or not.

Faust stops gracefully on the first signal (stop the agent, commit acknowledged offsets, flush the
producer), but every one of those steps waits on the broker: with the broker gone, an idle worker
took 62 s to stop and a busy one did not stop at all, and further signals were ignored. Here the
first signal starts Faust's graceful stop and a timer; if the process is still alive when the timer
fires, or a second signal arrives, it exits at once. That loses nothing: offsets are committed only
for batches whose output the broker acknowledged, so what was committed stays committed and what
was not is screened again by the next worker (at-least-once, deterministic decisions).

The handlers are plain `signal.signal` handlers, which run in the main thread between bytecodes,
so they fire even while Faust's event loop is busy or waiting on a broker that never answers.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from faust.worker import Worker

SHUTDOWN_DEADLINE_S = 8.0
EXIT_FORCED = 128 + signal.SIGTERM


class ShutdownDeadline:
    """Counts stop signals: the first arms a timer, the timer or a second signal ends the process."""

    def __init__(self, deadline_s: float = SHUTDOWN_DEADLINE_S, exit: Callable[[int], None] = os._exit,
                 write: Callable[[str], None] | None = None) -> None:
        self.deadline_s = deadline_s
        self.exit = exit
        self.write = write or _write_stderr
        self.signals = 0
        self._timer: threading.Timer | None = None

    def on_signal(self, signum: int) -> bool:
        """Record a stop signal; True for the first one (the caller then starts the graceful stop)."""
        self.signals += 1
        if self.signals == 1:
            self._timer = threading.Timer(self.deadline_s, self.expire)
            self._timer.daemon = True
            self._timer.start()
            return True
        self.force(f"worker: second {signal.Signals(signum).name}; exiting now")
        return False

    def expire(self) -> None:
        """The graceful stop took longer than the deadline."""
        self.force(f"worker: graceful stop did not finish within {self.deadline_s:g}s (broker unreachable?); "
                   "exiting now")

    def force(self, why: str) -> None:
        """Exit the process at once, saying why and what that means for offsets."""
        self.write(f"{why}: committed offsets stay committed; batches not yet committed are screened again "
                   "on restart")
        self.exit(EXIT_FORCED)


def _write_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class DeadlineWorker(Worker):
    """Faust's worker whose SIGINT/SIGTERM handling is bounded by a `ShutdownDeadline`."""

    def __init__(self, *args: Any, deadline: ShutdownDeadline | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.deadline = deadline or ShutdownDeadline()

    def execute_from_commandline(self) -> Any:
        """Install the handlers first: a worker still waiting for its broker must stop on a signal too."""
        self._install_deadline_handlers()
        return super().execute_from_commandline()

    def install_signal_handlers(self) -> None:
        """Faust's handlers (SIGUSR1 and friends), then ours for SIGINT and SIGTERM on top."""
        super().install_signal_handlers()
        self._install_deadline_handlers()

    def _install_deadline_handlers(self) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._on_stop_signal)

    def _on_stop_signal(self, signum: int, _frame: Any) -> None:
        if self.deadline.on_signal(signum):
            stop = self._on_sigint if signum == signal.SIGINT else self._on_sigterm
            self.loop.call_soon_threadsafe(stop)
