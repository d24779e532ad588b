"""State partitions are rebuilt from the changelog on the broker: every assigned one at once, each its own."""

from __future__ import annotations

import asyncio
import uuid

import numpy as np
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from screener.kafka.state_shards import StateShards
from screener.state.changelog import encode_entities
from screener.state.consignee import ConsigneeState

PARTITIONS = 4


def store_of(keys: list[str]) -> ConsigneeState:
    store = ConsigneeState()
    n = len(keys)
    store.apply(store.slots_of(keys), np.arange(1, n + 1), np.full(n, 1_750_000_000_000), np.full(n, 10.0),
                np.arange(n, dtype=np.uint64))
    return store


async def write_changelog(bootstrap: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    entities = {}
    try:
        for p in range(PARTITIONS):
            store = store_of([f"c-{p}-{i}" for i in range(10 * (p + 1))])
            keys, values = encode_entities(store, store.live_slots())
            await asyncio.gather(*[await producer.send(topic, v, key=k, partition=p) for k, v in zip(keys, values)])
            entities[p] = len(keys)
    finally:
        await producer.stop()
    return entities


def test_assigned_partitions_are_rebuilt_side_by_side_each_from_its_own_changelog_partition(broker):
    topic = f"changelog-{uuid.uuid4().hex[:8]}"
    entities = asyncio.run(write_changelog(broker.bootstrap, topic))

    async def scenario():
        shards = StateShards([broker.bootstrap], topic)
        shards.assign(range(PARTITIONS))
        assert len(shards._restoring) == PARTITIONS          # every rebuild started at assignment, none awaited
        got = {p: (await shards.get(p)).store.live_entities for p in reversed(range(PARTITIONS))}
        first = await shards.get(0)
        assert await shards.get(0) is first                  # rebuilt once
        shards.revoke([0])
        again = await shards.get(0)                          # owned again: rebuilt afresh from the changelog
        return got, shards.recovered_entities, again is first, again.store.live_entities

    got, recovered, same, again = asyncio.run(scenario())
    assert got == entities and recovered == sum(entities.values()) + entities[0]
    assert not same and again == entities[0]
