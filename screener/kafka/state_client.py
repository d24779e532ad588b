"""Asks the state partitions for a batch's consignee columns over the broker, and waits for their answers.

Requests go to `state-requests` (one record per state partition per batch, screener/state/lookup.py); the
owners answer on `state-answers`, on the partition each request names: this worker's reply partition,
picked at start from its random client id. The worker reads that partition with its own consumer, outside
the consumer group, from where it ended when the worker started (the fetch high-water mark: the embedded
broker answers ListOffsets wrongly), and keeps the answers whose token it awaits; the answers of another
worker that picked the same partition are skipped.

Waiting outside the group matters: Faust pauses every partition on a rebalance and, by default, waits for
every event taken to be acknowledged first; a batch waiting for answers from a partition being moved
would hold that rebalance up until it timed out. The stateful worker therefore does not wait
(`stream_wait_empty=False`): a batch still waiting finishes when the new owner answers, and its input, no
longer this worker's to commit, is screened again by its new owner (the state recognises the parcels).
A request unanswered after ANSWER_WAIT_S is sent again (the same token; a duplicate changes no state).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from screener.kafka.tail import TailError, highwaters, start_consumer
from screener.state.lookup import REQUESTS, Answer, ConsigneeKeys, Lookup, ask, decode_answer, fill

log = logging.getLogger(__name__)

ANSWER_WAIT_S = 30.0
RETRY_S = 1.0


class StateClient:
    """Fills prepared batches' consignee columns from the state partitions' answers."""

    def __init__(self, bootstrap: list[str], answers_topic: str, partitions: int, max_record_bytes: int,
                 screener, sender, fetch_max_wait_ms: int = 100, metrics=None) -> None:
        """`screener`: the worker's StatefulScreener (USD values); `sender`: the worker's BulkSender;
        `fetch_max_wait_ms`: as the worker's own consumer (an answer waits for the fetch that brings it);
        `metrics`: PipelineMetrics for the lookups' round trips and resends."""
        self.bootstrap = bootstrap
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.client = int.from_bytes(os.urandom(8), "little") >> 1
        self.reply = self.client % partitions      # made sure of once the topic's partitions are known
        self.tp = TopicPartition(answers_topic, self.reply)
        self.max_record_bytes = max_record_bytes
        self.screener = screener
        self.sender = sender
        self.keys = ConsigneeKeys(partitions)
        self._number = 0
        self._pending: dict[tuple[int, int], asyncio.Future] = {}
        self._ready = asyncio.Event()
        self.metrics = metrics

    async def run(self) -> None:
        """Read the reply partition from its current end (before any request is sent) until cancelled; a
        broker error restarts the reading where it stopped (requests wait meanwhile, or are sent again)."""
        position = None
        while True:
            try:
                consumer = await start_consumer(self.bootstrap, fetch_max_wait_ms=self.fetch_max_wait_ms)
            except TailError as exc:
                log.warning("state answers: %s; trying again", exc)
                await asyncio.sleep(RETRY_S)
                continue
            try:
                if position is None:    # first: which partition (of those the topic has), and where it ends
                    await consumer.topics()
                    self.reply = self.client % max(len(consumer.partitions_for_topic(self.tp.topic) or ()), 1)
                    self.tp = TopicPartition(self.tp.topic, self.reply)
                    position = (await highwaters(self.bootstrap, [self.tp]))[self.tp]   # 0 if unknown: skipped
                consumer.assign([self.tp])
                consumer.seek(self.tp, position)
                self._ready.set()
                log.info("state answers: client %x reads %s[%d] from %d", self.client, self.tp.topic, self.reply,
                         position)
                while True:
                    got = await consumer.getmany(self.tp, timeout_ms=500)
                    for msg in got.get(self.tp, []):
                        self._answered(msg)
                        position = msg.offset + 1
            except KafkaError as exc:
                log.warning("state answers: reading %s[%d] failed (%s); reading again", self.tp.topic, self.reply, exc)
                await asyncio.sleep(RETRY_S)
            finally:
                await consumer.stop()

    def _answered(self, msg) -> None:
        try:
            answer = decode_answer(msg.value)
        except ValueError:
            log.warning("skipped an unreadable state answer at %s[%d]@%d", self.tp.topic, self.reply, msg.offset)
            return
        waiting = self._pending.pop(answer.token, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(answer)

    async def request(self, batches) -> Ticket:
        """Send the requests for the consignee columns of `batches` (in the order of the calls: the state
        applies them in that order); `answers` waits for them."""
        await self._ready.wait()
        lookup: Lookup = ask(batches, self.screener, self.keys, self.client, self._number, self.reply,
                             self.max_record_bytes)
        self._number += len(lookup.asked)
        loop = asyncio.get_running_loop()
        waiting = {a.token: loop.create_future() for a in lookup.asked}
        self._pending.update(waiting)
        sent_at = time.monotonic()
        sent = await self.sender.send([(REQUESTS, None, a.value, a.partition) for a in lookup.asked])
        return Ticket(batches, lookup, waiting, sent, sent_at)

    async def answers(self, ticket: Ticket) -> dict[int, str]:
        """Wait for a ticket's answers and set its batches' columns; the batches whose lookup failed, with why."""
        lookup, waiting, sent = ticket.lookup, ticket.waiting, ticket.sent
        answers: dict[tuple[int, int], Answer] = {}
        todo = list(lookup.asked)
        try:
            while todo:
                await asyncio.gather(*(fut for _, fut in sent))   # a broker refusing them stops the agent
                await asyncio.wait([waiting[a.token] for a in todo], timeout=ANSWER_WAIT_S)
                answers.update((a.token, waiting[a.token].result()) for a in todo if waiting[a.token].done())
                todo = [a for a in todo if a.token not in answers]
                if todo:
                    if self.metrics is not None:
                        self.metrics.requests_resent.inc(len(todo))
                    log.warning("%d state requests unanswered after %.0f s: sending them again", len(todo), ANSWER_WAIT_S)
                    sent = await self.sender.send([(REQUESTS, None, a.value, a.partition) for a in todo])
        finally:
            for token in waiting:
                self._pending.pop(token, None)
        if self.metrics is not None:
            self.metrics.lookup_seconds.observe(time.monotonic() - ticket.sent_at)
        return fill(ticket.batches, lookup, answers)


@dataclass
class Ticket:
    """Requests sent for a prepared batch: what `StateClient.answers` waits for."""

    batches: list
    lookup: Lookup
    waiting: dict[tuple[int, int], asyncio.Future]
    sent: list
    sent_at: float
