"""Publishes manifests (or bare parcels) to the manifests topic with aiokafka, optionally rate-limited.

Input is JSON documents, one message each, in any of the shapes people have at hand: JSONL (one
document per line), a pretty-printed document (the way the docs show a manifest), several of those
one after another, or a JSON array of documents. `documents` splits the input without guessing per
file: a line that parses on its own is a document; a line opening `{` or `[` that does not starts
a multi-line document, which ends at a line starting with the matching `}` or `]` and must parse
as a whole. Anything else is a `FeedError` naming the line, raised before the document is sent.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaProducer

from screener.kafka.worker import PRODUCER_MAX_REQUEST_BYTES


def parcels_in_line(line: bytes) -> int:
    """Cheap parcel count of one JSONL line (for rate limiting and progress), without decoding it."""
    n = line.count(b'"parcel_id"')
    return n or 1


MAX_DOCUMENT_BYTES = 64 << 20


class FeedError(ValueError):
    """Input that is not JSON documents; the message names the line."""


@dataclass(frozen=True)
class Document:
    """One message to publish, where it started in the input, and how it was written."""

    data: bytes
    line: int
    shape: str  # "line", "pretty" or "array element"


def documents(lines: Iterable[bytes], max_bytes: int = MAX_DOCUMENT_BYTES) -> Iterator[Document]:
    """The JSON documents of the input, in order; FeedError at the first line that is not part of one."""
    buffer: list[bytes] = []
    size = start = 0
    first_error = ""
    for number, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        if not buffer:
            if not line.strip():
                continue
            try:
                yield from _split(orjson.loads(line), line.strip(), number, "line")
                continue
            except orjson.JSONDecodeError as exc:
                if line[:1] not in (b"{", b"["):
                    raise FeedError(f"line {number}: not JSON ({exc})") from None
                first_error = f"line {number}: not JSON ({exc})"
            buffer, size, start = [line], len(line), number
            continue
        if line[:1] in (b"{", b"["):
            raise FeedError(first_error if len(buffer) == 1 else
                            f"line {start}: the JSON document starting here never ends (line {number} starts "
                            "another)")
        buffer.append(line)
        size += len(line) + 1
        if size > max_bytes:
            raise FeedError(f"line {start}: a JSON document larger than {max_bytes:,} bytes")
        if line[:1] in (b"}", b"]"):
            data = b"\n".join(buffer)
            try:
                value = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise FeedError(f"line {start}: the JSON document on lines {start}-{number} is not valid "
                                f"({exc})") from None
            yield from _split(value, data, start, "pretty")
            buffer = []
    if buffer:
        raise FeedError(first_error if len(buffer) == 1 else
                        f"line {start}: the JSON document starting here is cut off at the end of the input")


def _split(value: object, data: bytes, line: int, shape: str) -> Iterator[Document]:
    # A top-level array is a list of documents, one message each.
    if isinstance(value, list):
        for item in value:
            yield Document(orjson.dumps(item), line, "array element")
    else:
        yield Document(data, line, shape)


def describe(shapes: Counter) -> str:
    """What the input was, in words: 'JSONL (4 lines)', 'a pretty-printed JSON document', ..."""
    n = sum(shapes.values())
    if not n:
        return "no JSON documents"
    if shapes["line"] == n:
        return "a one-line JSON document" if n == 1 else f"JSONL ({n:,} lines)"
    if shapes["pretty"] == n:
        return "a pretty-printed JSON document" if n == 1 else f"{n:,} pretty-printed JSON documents"
    if shapes["array element"] == n:
        return f"a JSON array of {n:,} documents"
    return "JSON documents (" + ", ".join(f"{k}: {v:,}" for k, v in shapes.items() if v) + ")"


class Publisher:
    """One producer; `send` paces messages to `rate` parcels/s and `flush` waits for every acknowledgement."""

    def __init__(self, bootstrap: list[str], topic: str, rate: float = 0.0) -> None:
        self.topic = topic
        self.rate = rate
        self.messages = 0
        self.parcels = 0
        self._producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all",
                                          max_request_size=PRODUCER_MAX_REQUEST_BYTES)
        self._pending: list[asyncio.Future] = []
        self._start = 0.0

    async def __aenter__(self) -> Publisher:
        try:
            await self._producer.start()
        except BaseException:
            await self._producer.stop()
            raise
        self._start = time.monotonic()
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                await self.flush()
        finally:
            await self._producer.stop()

    async def send(self, value: bytes, key: bytes | None = None) -> None:
        """Queue one message (waiting first when ahead of the rate)."""
        n = parcels_in_line(value)
        if self.rate > 0:
            ahead = self.parcels / self.rate - (time.monotonic() - self._start)
            if ahead > 0:
                await asyncio.sleep(ahead)
        self._pending.append(await self._producer.send(self.topic, value, key=key))
        self.messages += 1
        self.parcels += n
        if len(self._pending) >= 1000:
            await self.flush()

    async def flush(self) -> None:
        """Wait until the broker acknowledged everything sent so far."""
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)


async def publish_documents(bootstrap: list[str], topic: str, docs: Iterable[Document], rate: float = 0.0,
                            on_progress: Callable[[int, int], None] | None = None) -> tuple[int, int]:
    """Send each document as one message; returns (messages, parcels), all acknowledged.

    A FeedError raised while iterating (a stream with a bad document) propagates after everything
    sent before it was acknowledged; `Publisher.messages` then says how many that was.
    """
    async with Publisher(bootstrap, topic, rate) as pub:
        try:
            for doc in docs:
                await pub.send(doc.data)
                if on_progress:
                    on_progress(pub.messages, pub.parcels)
        except FeedError as exc:
            await pub.flush()
            raise FeedError(f"{exc}; {pub.messages:,} messages before it were published") from None
    return pub.messages, pub.parcels
