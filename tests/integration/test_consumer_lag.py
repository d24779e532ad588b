"""Consumer lag as the worker measures it, checked against records actually published to the broker."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from screener.ops.observability import read_offsets


async def _lag_after_partial_consumption(bootstrap: str) -> tuple[dict, dict]:
    topic, group = f"lag-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        await admin.close()
    # 600 records to partition 0 and 400 to partition 1.
    p = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await p.start()
    try:
        futs = [await p.send(topic, b"r%d" % i, partition=0 if i < 600 else 1) for i in range(1000)]
        await asyncio.gather(*futs)
    finally:
        await p.stop()

    c = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                         auto_offset_reset="earliest", max_poll_records=150)
    await c.start()
    tps = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
    c.assign(tps)
    try:
        # Before any commit: a new group counts from the earliest offset, so everything is lag.
        for _ in range(50):
            await c.getmany(*tps, timeout_ms=200, max_records=1)
            if all(c.highwater(tp) is not None for tp in tps):
                break
        before = await read_offsets(c, tps, {})
        # Screen (consume) 150 records of partition 0 and commit them, as the worker does after a batch.
        taken = []
        await c.seek_to_beginning(tps[0])
        while len(taken) < 150:
            got = await c.getmany(tps[0], timeout_ms=500, max_records=150 - len(taken))
            taken.extend(got.get(tps[0], []))
        await c.commit({tps[0]: taken[-1].offset + 1})
        after = await read_offsets(c, tps, {})
    finally:
        await c.stop()
    return ({k[1]: v for k, v in before.items()}, {k[1]: v for k, v in after.items()})


def test_lag_is_published_minus_committed_from_fetch_highwater(broker):
    before, after = asyncio.run(_lag_after_partial_consumption(broker.bootstrap))
    # (highwater, committed) per partition; the high-water marks equal the records published.
    assert before == {0: (600, 0), 1: (400, 0)}
    assert after == {0: (600, 150), 1: (400, 0)}
    assert sum(hw - committed for hw, committed in after.values()) == 1000 - 150

