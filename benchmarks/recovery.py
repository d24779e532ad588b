"""Recovery of a state partition from the broker: N consignees' changelog records read and restored.

A store of N distinct consignees (one window event each, as benchmarks/state_memory.py fills it) is
encoded to changelog records and produced to one partition of a topic on the embedded broker; then a
fresh `StateShards` rebuilds that partition as a worker does when the partition is assigned to it
(`read_partition` to the fetch high-water mark, then `restore`), and the columns of a following parcel
of a sample of keys are compared with the original store's.

Run: `python -m benchmarks.recovery --entities 1000000` prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

from aiokafka import AIOKafkaProducer

from screener.kafka.broker import EmbeddedBroker
from screener.kafka.state_shards import StateShards
from screener.state.changelog import encode_entities
from screener.state.consignee import ConsigneeState

from .kafka import create_topics
from .state_memory import _batch, same_columns_after

TOPIC = "bench-state-changelog"


async def _produce(bootstrap: str, keys: list[bytes], values: list[bytes]) -> float:
    """Produce the records to partition 0 in order; seconds taken."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=20, max_batch_size=1 << 20,
                                max_request_size=4 << 20)
    await producer.start()
    t0 = time.perf_counter()
    try:
        for lo in range(0, len(keys), 20_000):
            futures = [await producer.send(TOPIC, value=v, key=k, partition=0)
                       for k, v in zip(keys[lo:lo + 20_000], values[lo:lo + 20_000])]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return time.perf_counter() - t0


async def measure(entities: int) -> dict:
    """Fill, produce, recover and compare; the figures."""
    store = ConsigneeState()
    for lo in range(0, entities, 32_000):
        keys, seq, t, v, pid = _batch(lo, min(entities, lo + 32_000))
        store.apply(store.slots_of(keys), seq, t, v, pid)
    keys, values = encode_entities(store, store.live_slots())
    broker = EmbeddedBroker.start()
    try:
        await create_topics(broker.bootstrap, [TOPIC], 1)
        produce_s = await _produce(broker.bootstrap, keys, values)
        shards = StateShards([broker.bootstrap], TOPIC)
        t0 = time.perf_counter()
        shard = await shards.get(0)
        recover_s = time.perf_counter() - t0
    finally:
        broker.stop()
    same = same_columns_after(store, shard.store, keys, entities)
    return {"command": f"python -m benchmarks.recovery --entities {entities}", "entities": entities,
            "changelog_mb": round(sum(map(len, values)) / 2**20, 1), "produce_s": round(produce_s, 2),
            "recover_s": round(recover_s, 2), "recovered_entities": shards.recovered_entities,
            "recovered_columns_identical": same}


def main() -> None:
    """Command line: prints the measurements as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entities", type=int, default=1_000_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.entities)), indent=2))


if __name__ == "__main__":
    main()
