"""Why Faust's `confluent://` transport driver (librdkafka) cannot carry the screener: a reproducible probe.

Quix Streams' librdkafka I/O sometimes beat the aiokafka ceiling, so Faust on librdkafka was worth
a try. Run `python -m benchmarks.faust_confluent` (about 2 minutes): it starts an embedded broker,
publishes 1,000 single-parcel messages and runs the bare acknowledging agent of
benchmarks/baseline.py with `--broker confluent://...` three times, each time with one more of the
driver's defects patched in the worker process, and prints what stopped each attempt. Seen with
faust-streaming 0.15.3 and confluent-kafka 2.12:

1. As shipped, the worker joins the group and then waits forever: librdkafka hands over a
   partition assignment only inside `poll()`/`consume()` (the rebalance callback runs there), and
   Faust's fetcher only calls `consume()` once partitions are assigned. Nothing is ever polled.
2. With the rebalance callback served (poll while unassigned), partitions arrive in ~5 s, then
   recovery crashes: `_seek_to_committed` awaits `Consumer.seek`, which is synchronous in
   confluent-kafka (`TypeError: object NoneType can't be used in 'await' expression`).
3. With that fixed too, the consumer crashes within seconds: `ConfluentConsumerThread` has no
   `verify_event_path`, which Faust's consumer calls on every partition it watches.

So the driver is unfinished, not slowed by the embedded broker: relying on it would mean carrying
patches to Faust's internals. It is ruled out; librdkafka is measured instead through the
librdkafka ceiling (benchmarks/ceiling.py) and the Quix Streams app.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVE_REBALANCE = '''
import asyncio
from faust.transport.drivers import confluent as c
_subscribe = c.ConfluentConsumerThread.subscribe
async def subscribe(self, topics):
    await _subscribe(self, topics)
    async def serve():  # librdkafka runs the rebalance callback (on_assign) only inside poll()/consume()
        while not self._assigned:
            await self.call_thread(self._ensure_consumer().consumer.poll, 0.2)
    asyncio.ensure_future(serve())
c.ConfluentConsumerThread.subscribe = subscribe
'''
SYNC_SEEK = '''
async def _seek_to_committed(self):
    consumer = self._ensure_consumer()
    committed = consumer.consumer.committed(consumer.assignment())
    for tp in committed:
        if tp.offset >= 0:
            consumer.consumer.seek(tp)  # synchronous in confluent-kafka
    return {c.ensure_TP(tp): tp.offset for tp in committed}
c.ConfluentConsumerThread._seek_to_committed = _seek_to_committed
'''
WORKER = '''
from benchmarks.baseline import create_app
from faust.worker import Worker
app = create_app("bare", {url!r}, "probe-in", {out!r}, {app_id!r}, 4, {data!r})
app.finalize()
Worker(app, loglevel="INFO", quiet=True, redirect_stdouts=False).execute_from_commandline()
'''
ATTEMPTS = (("as shipped", ""), ("rebalance callback served", SERVE_REBALANCE),
            ("rebalance served + synchronous seek", SERVE_REBALANCE + SYNC_SEEK))


async def attempt(bootstrap: str, patches: str, n: int, workdir: Path, seconds: float) -> dict:
    """Run the bare agent on confluent:// with `patches`; how far it got and the first error in its log."""
    from .kafka import watch
    from .procs import REPO

    out = f"probe-out-{n}"
    code = patches + WORKER.format(url="confluent://" + bootstrap, out=out, app_id=f"probe-{n}-{time.time_ns()}",
                                   data=str(workdir / f"data-{n}"))
    log_path = workdir / f"worker-{n}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            seen = await watch(bootstrap, out, 4, 1000, timeout=seconds, idle_timeout=seconds, count=int)
        finally:
            proc.terminate()
            proc.wait(15)
    text = log_path.read_text(errors="replace")
    errors = [ln for ln in text.splitlines() if "[ERROR]" in ln or "Error:" in ln]
    return {"events_acknowledged": seen.parcels, "partitions_assigned": "_on_partitions_assigned" in text,
            "first_error": errors[0][-220:] if errors else None}


async def probe(seconds: float = 40.0) -> list[dict]:
    """Every attempt on one embedded broker."""
    from screener.kafka.broker import EmbeddedBroker

    from .kafka import create_topics, publish
    from .workload import make_pool

    workdir = Path(tempfile.mkdtemp(prefix="faust-confluent-"))
    broker = EmbeddedBroker.start(log_path=str(workdir / "broker.log"))
    try:
        await create_topics(broker.bootstrap, ["probe-in"] + [f"probe-out-{n}" for n in range(len(ATTEMPTS))], 4)
        await publish(broker.bootstrap, "probe-in", make_pool(1, 1000, 73).stream(1000), 4, 1)
        return [{"attempt": name, **await attempt(broker.bootstrap, patches, n, workdir, seconds)}
                for n, (name, patches) in enumerate(ATTEMPTS)]
    finally:
        broker.stop()


def main() -> None:
    """Print one JSON line per attempt."""
    for row in asyncio.run(probe()):
        print(json.dumps(row))


if __name__ == "__main__":
    main()
