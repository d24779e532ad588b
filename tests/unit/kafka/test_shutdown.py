"""Shutdown deadline: the first signal starts a graceful stop, the deadline or a second signal ends the process."""

from __future__ import annotations

import signal
import threading

from screener.kafka.shutdown import EXIT_FORCED, ShutdownDeadline


def test_first_signal_arms_the_deadline_and_the_deadline_exits():
    exited = threading.Event()
    codes, lines = [], []

    def fake_exit(code: int) -> None:
        codes.append(code)
        exited.set()

    deadline = ShutdownDeadline(0.05, exit=fake_exit, write=lines.append)
    assert deadline.on_signal(signal.SIGTERM) is True
    assert exited.wait(5)
    assert codes == [EXIT_FORCED]
    assert lines[0].startswith("worker: graceful stop did not finish within 0.05s")
    assert "committed offsets stay committed" in lines[0]


def test_second_signal_exits_at_once():
    codes, lines = [], []
    deadline = ShutdownDeadline(3600, exit=codes.append, write=lines.append)
    assert deadline.on_signal(signal.SIGTERM) is True and codes == []
    assert deadline.on_signal(signal.SIGINT) is False
    assert codes == [EXIT_FORCED] and lines[0].startswith("worker: second SIGINT; exiting now")
