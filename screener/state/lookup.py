"""Consignee state lookups between workers: a batch's requests, one record per state partition, and their answers.

Manifests arrive keyed by manifest and hold many consignees; a consignee's state lives in one state partition
(murmur2 of its normalised id, Kafka's default partitioner, so any client agrees). A stateful worker decodes,
validates, screens and encodes whole manifests where they arrive, and asks the state partitions only for the
six consignee columns (`COLUMNS` of screener/state/consignee.py): per batch, one `state-requests` record per
state partition its parcels reach (more only when the record limit needs it), never one per parcel. The
owner of that partition applies the rows to its store in the record's order, answers with the columns on
`state-answers` (the partition the request names), and writes the entities it changed to its changelog.
Only fixed-width rows and the consignee keys cross the broker a second time, not the parcels.

Request value (little-endian): magic `SRQ1`, client u64, number u64 (the two are the request's token),
reply partition u32, rows n u32, key bytes u32, then event ms int64[n], USD value float64[n], parcel-id
hash uint64[n], key end uint32[n] (cumulative), key bytes (UTF-8 normalised consignee ids, each non-empty).
Answer value: magic `SAN1`, client u64, number u64, status u8 (0 ok, 1 failed), n u32, then
float64[6, n] (ok) or a UTF-8 message (failed).

Replays. The owner applies a request's row r with seq (record offset << 24) + r, so a request replayed after
the owner crashed is recognised by its seq; a request sent again after the asker crashed (a new record)
is recognised by its parcels' hashes (a duplicate changes no aggregate, screener/state/consignee.py).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from screener.kernels.partition import partitions_of_spans
from screener.pipeline.batch import ParcelBatch, PerCode, Vocabulary, grown
from screener.state.consignee import COLUMNS, ConsigneeState

REQUESTS = "state-requests"   # the kind (and topic name) of lookup requests
ANSWERS = "state-answers"     # the kind (and topic name) of their answers
_REQUEST = struct.Struct("<4sQQIII")
_ANSWER = struct.Struct("<4sQQBI")
_ROW_BYTES = 8 + 8 + 8 + 4
MAX_ROWS = (1 << 24) - 1      # rows of one request: its seq keeps the row in 24 bits
OK, FAILED = 0, 1


@dataclass
class Asked:
    """One request record: the state partition it goes to, its token, the batch rows it asks for, its value."""

    partition: int
    token: tuple[int, int]
    rows: np.ndarray
    value: bytes


@dataclass
class Request:
    """A decoded request: token, reply partition, and its rows' columns (keys as spans of `key_buf`)."""

    token: tuple[int, int]
    reply: int
    event_ms: np.ndarray
    value_usd: np.ndarray
    pid_hash: np.ndarray
    key_buf: np.ndarray
    key_start: np.ndarray
    key_len: np.ndarray

    @property
    def n(self) -> int:
        """Rows asked for."""
        return len(self.event_ms)


@dataclass
class Answer:
    """A decoded answer: token and the six columns [6, n], or the owner's failure message."""

    token: tuple[int, int]
    columns: np.ndarray | None
    error: str = ""


class ConsigneeKeys:
    """Normalised consignee ids of a vocabulary's codes in UTF-8 (one arena, no object per key) and their
    state partitions, each computed once per code."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._vocab: Vocabulary | None = None
        self.partition_of = PerCode(self._partitions_of_codes)
        self._reset(None)

    def _reset(self, vocab: Vocabulary | None) -> None:
        self._vocab, self._n = vocab, 0
        self._arena = np.zeros(1 << 16, dtype=np.uint8)
        self._off = np.zeros(1024, dtype=np.int64)

    def _grow(self, vocab: Vocabulary) -> None:
        if self._vocab is not vocab:       # a new generation of vocabularies
            self._reset(vocab)
        have = self._n
        if have < len(vocab):
            new = vocab.normalised[have:]
            text = "".join(new)
            data = text.encode()
            # ASCII (the common case): a key has as many bytes as characters, so only non-ASCII keys are encoded.
            lengths = list(map(len, new)) if len(data) == len(text) else [len(k.encode()) for k in new]
            used = int(self._off[have])
            self._arena = grown(self._arena, used + len(data))
            self._arena[used:used + len(data)] = np.frombuffer(data, np.uint8)
            self._off = grown(self._off, len(vocab) + 1)
            self._off[have + 1:len(vocab) + 1] = used + np.cumsum(lengths, dtype=np.int64)
            self._n = len(vocab)

    def _partitions_of_codes(self, vocab: Vocabulary, codes: np.ndarray) -> np.ndarray:
        self._grow(vocab)
        off = self._off
        return partitions_of_spans(self._arena, off[codes], off[codes + 1] - off[codes], self.partitions)

    def lengths(self, vocab: Vocabulary, codes: np.ndarray) -> np.ndarray:
        """The byte length of each code's key."""
        self._grow(vocab)
        return self._off[codes + 1] - self._off[codes]

    def joined(self, vocab: Vocabulary, codes: np.ndarray) -> bytes:
        """The keys of `codes` laid end to end."""
        self._grow(vocab)
        starts, lengths = self._off[codes], self._off[codes + 1] - self._off[codes]
        ends = np.cumsum(lengths)
        index = np.arange(int(ends[-1]) if len(ends) else 0) + np.repeat(starts - (ends - lengths), lengths)
        return self._arena[index].tobytes()


def encode_requests(client: int, first_number: int, reply: int, partition: np.ndarray, key_len: np.ndarray,
                    keys_of, event_ms: np.ndarray, value_usd: np.ndarray, pid_hash: np.ndarray,
                    max_record_bytes: int) -> list[Asked]:
    """Request records of a batch's rows (`partition` -1: not asked; `keys_of(rows)`: their keys laid end to
    end), numbered from `first_number`, in partition order, each under `max_record_bytes` (rows never split)."""
    key_len = np.asarray(key_len, dtype=np.int64)
    asked: list[Asked] = []
    order = np.argsort(partition, kind="stable")
    order = order[partition[order] >= 0]
    bounds = np.searchsorted(partition[order], np.arange(int(partition.max(initial=-1)) + 2))
    room = max(max_record_bytes - _REQUEST.size, 1)
    for p in range(len(bounds) - 1):
        rows_p = order[bounds[p]:bounds[p + 1]]
        sizes = np.cumsum(_ROW_BYTES + key_len[rows_p])
        lo = 0
        while lo < len(rows_p):
            base = sizes[lo - 1] if lo else 0
            hi = min(max(int(np.searchsorted(sizes, base + room, side="right")), lo + 1), lo + MAX_ROWS)
            rows = rows_p[lo:hi]
            number = first_number + len(asked)
            kb = keys_of(rows)
            head = _REQUEST.pack(b"SRQ1", client, number, reply, len(rows), len(kb))
            value = b"".join((head, np.ascontiguousarray(event_ms[rows], "<i8").tobytes(),
                              np.ascontiguousarray(value_usd[rows], "<f8").tobytes(),
                              np.ascontiguousarray(pid_hash[rows], "<u8").tobytes(),
                              np.cumsum(key_len[rows], dtype="<u4").tobytes(), kb))
            asked.append(Asked(p, (client, number), rows, value))
            lo = hi
    return asked


def decode_request(value: bytes) -> Request:
    """A request record's rows; ValueError when it is not exactly one well-formed request."""
    if value is None or len(value) < _REQUEST.size:
        raise ValueError("state request: shorter than its header")
    magic, client, number, reply, n, nkeys = _REQUEST.unpack_from(value)
    if magic != b"SRQ1":
        raise ValueError("state request: unknown magic or version")
    if len(value) != _REQUEST.size + _ROW_BYTES * n + nkeys:
        raise ValueError("state request: its length does not match its header")
    at = _REQUEST.size
    event_ms = np.frombuffer(value, "<i8", n, at)
    value_usd = np.frombuffer(value, "<f8", n, at + 8 * n)
    pid_hash = np.frombuffer(value, "<u8", n, at + 16 * n)
    ends = np.frombuffer(value, "<u4", n, at + 24 * n).astype(np.int64)
    starts = np.concatenate(([0], ends[:-1])) if n else ends
    lengths = ends - starts
    if n and (lengths.min() <= 0 or ends[-1] != nkeys):
        raise ValueError("state request: key ends are not increasing up to the key bytes")
    key_buf = np.frombuffer(value, np.uint8, nkeys, at + 28 * n)
    return Request((client, number), reply, event_ms, value_usd, pid_hash, key_buf, starts, lengths)


def encode_answer(token: tuple[int, int], columns: np.ndarray) -> bytes:
    """An answer with the six columns [6, n] of a request's rows."""
    columns = np.ascontiguousarray(columns, "<f8")
    return _ANSWER.pack(b"SAN1", token[0], token[1], OK, columns.shape[1]) + columns.tobytes()


def encode_failure(token: tuple[int, int], message: str) -> bytes:
    """An answer saying the owner could not apply the request (the asker dead-letters its parcels)."""
    return _ANSWER.pack(b"SAN1", token[0], token[1], FAILED, 0) + message.encode()[:2048]


def decode_answer(value: bytes) -> Answer:
    """An answer record; ValueError when it is not exactly one well-formed answer."""
    if value is None or len(value) < _ANSWER.size:
        raise ValueError("state answer: shorter than its header")
    magic, client, number, status, n = _ANSWER.unpack_from(value)
    if magic != b"SAN1" or status not in (OK, FAILED):
        raise ValueError("state answer: unknown magic, version or status")
    if status == FAILED:
        return Answer((client, number), None, value[_ANSWER.size:].decode("utf-8", "replace"))
    if len(value) != _ANSWER.size + 8 * len(COLUMNS) * n:
        raise ValueError("state answer: its length does not match its header")
    return Answer((client, number), np.frombuffer(value, "<f8", len(COLUMNS) * n, _ANSWER.size).reshape(len(COLUMNS), n))


def serve(store: ConsigneeState, request: Request, offset: int) -> np.ndarray:
    """Apply a request's rows to the store (seq from the record's offset) and return their columns [6, n]."""
    slots = store.slots_of_spans(request.key_buf, request.key_start, request.key_len)
    seq = (np.int64(max(offset, 0)) << np.int64(24)) + np.arange(request.n, dtype=np.int64)
    cols = store.apply(slots, seq, request.event_ms, request.value_usd, request.pid_hash)
    return np.stack([cols[name] for name in COLUMNS])


@dataclass
class Lookup:
    """The requests of one prepared batch: rows of its batches laid end to end (`bounds[k]` is batch k's first)."""

    asked: list[Asked]
    bounds: np.ndarray


def ask(batches: list[ParcelBatch], screener, keys: ConsigneeKeys, client: int, first_number: int, reply: int,
        max_record_bytes: int) -> Lookup:
    """Requests for the consignee columns of every parcel of `batches` (a prepared batch's, one vocabulary
    generation); `screener` gives the USD values (StatefulScreener.value_usd)."""
    bounds = np.cumsum([0] + [b.n for b in batches])
    live = [b for b in batches if b.n]
    if not live:
        return Lookup([], bounds)
    vocab = live[0].vocab["consignee_id"]
    codes = np.concatenate([b.strings["consignee_id"] for b in live])    # reading the column interns it
    key_len = keys.lengths(vocab, codes)
    partition = np.where(key_len > 0, keys.partition_of(vocab, codes), -1)
    asked = encode_requests(client, first_number, reply, partition, key_len, lambda rows: keys.joined(vocab, codes[rows]),
                            np.concatenate([b.event_time_ms for b in live]),
                            np.concatenate([screener.value_usd(b) for b in live]),
                            np.concatenate([b.parcel_hash for b in live]), max_record_bytes)
    return Lookup(asked, bounds)


def fill(batches: list[ParcelBatch], lookup: Lookup, answers: dict[tuple[int, int], Answer]) -> dict[int, str]:
    """Set the consignee columns of `batches` from the answers to `lookup` (a parcel with no consignee: NaN);
    returns the batches whose answer failed, by index, with the owner's message."""
    cols = np.full((len(COLUMNS), int(lookup.bounds[-1])), np.nan)
    failed: dict[int, str] = {}
    for asked in lookup.asked:
        answer = answers[asked.token]
        if answer.columns is None or answer.columns.shape[1] != len(asked.rows):
            why = answer.error or "the answer has another number of rows than the request"
            for k in np.unique(np.searchsorted(lookup.bounds, asked.rows, side="right") - 1).tolist():
                failed.setdefault(k, f"state lookup failed: {why}")
            continue
        cols[:, asked.rows] = answer.columns
    for k, batch in enumerate(batches):
        lo, hi = int(lookup.bounds[k]), int(lookup.bounds[k + 1])
        for j, name in enumerate(COLUMNS):
            batch.numbers[name] = cols[j, lo:hi]
    return failed
