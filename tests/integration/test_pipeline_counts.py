"""End to end on the embedded broker: good and bad input mixed, every item accounted for exactly."""

from __future__ import annotations

import asyncio
import itertools

import orjson
import pytest

from screener.generator import BAD_MESSAGES, PARCEL_DEFECTS, GeneratorConfig, ManifestGenerator, break_parcel
from screener.schemas import validator

from .helpers import WorkerProcess, committed_offsets, consume_until, high_watermarks, produce

PARTITIONS = 2


def build_input(seed: int = 11):
    """Manifests (some with a damaged parcel), bare parcels, and bad messages; plus what each must yield."""
    gen = ManifestGenerator(GeneratorConfig(manifests=0, parcels_per_manifest=200, seed=seed))
    values, valid_ids, expected_dead = [], set(), []
    defects = itertools.cycle(PARCEL_DEFECTS)
    for m in range(15):
        manifest = gen.manifest(m)
        broken = None
        if m % 3 == 0:
            broken = manifest["parcels"][m]
            expected_dead.append((break_parcel(broken, next(defects)), broken["parcel_id"]))
        valid_ids.update(p["parcel_id"] for p in manifest["parcels"] if p is not broken)
        if m == 4:  # the same parcel twice in one manifest: the first is screened, the copy refused
            dup = dict(manifest["parcels"][0])
            manifest["parcels"].append(dup)
            expected_dead.append(("duplicate_parcel_id", dup["parcel_id"]))
        values.append(orjson.dumps(manifest))
    # Single-parcel messages: bare parcel records are manifests of one.
    single = gen.manifest(99)
    for p in single["parcels"][:50]:
        values.append(orjson.dumps({"schema_version": 1, **p}))
        valid_ids.add(p["parcel_id"])
    for raw, reason in BAD_MESSAGES.values():
        values.append(raw)
        expected_dead.append((reason, None))
    values.append(b"{" + b'"x":' + b"1" * (1 << 20) + b"}")  # over the 1 MiB default limit
    expected_dead.append(("too_large", None))
    return values, valid_ids, expected_dead


@pytest.mark.timeout(240)
def test_every_parcel_is_decided_or_dead_lettered_exactly(broker, tmp_path):
    values, valid_ids, expected_dead = build_input()
    worker = WorkerProcess(broker.url, tmp_path, partitions=PARTITIONS).start()
    try:
        asyncio.run(produce(broker.bootstrap, worker.topic("manifests"), values))

        def done(out):
            decided = {d["parcel_id"] for rec in out[worker.topic("decisions")] for d in rec["decisions"]}
            return decided >= valid_ids and len(out[worker.topic("dead-letter")]) >= len(expected_dead)

        out = asyncio.run(consume_until(broker.bootstrap, [worker.topic(t) for t in ("decisions", "flagged",
                                                                                        "dead-letter")], done, 150))
        # Let a second of extra output arrive, so duplicates or strays would be seen too.
        out = asyncio.run(consume_until(broker.bootstrap, [worker.topic(t) for t in ("decisions", "flagged",
                                                                                        "dead-letter")],
                                        lambda o: False, 2))
    finally:
        worker.stop()

    decisions = [d for rec in out[worker.topic("decisions")] for d in rec["decisions"]]
    decided_ids = {d["parcel_id"] for d in decisions}
    assert decided_ids == valid_ids, worker.log()[-3000:]
    assert len(decisions) == len(valid_ids), "a parcel was decided twice without a restart"

    dead = out[worker.topic("dead-letter")]
    def by_reason(pairs):
        return sorted(pairs, key=lambda t: (t[0], t[1] or ""))

    assert by_reason((d["reason"], d["parcel_id"]) for d in dead) == by_reason(expected_dead)
    for d in dead:
        assert d["message"] and d["source"]["topic"] == worker.topic("manifests")
        assert d["original_size"] > 0
    binary = [d for d in dead if d["original_encoding"] == "base64"]
    assert len(binary) == 1  # the non-UTF-8 message keeps its bytes, base64-encoded

    flagged = out[worker.topic("flagged")]
    flagged_ids = {f["parcel_id"] for f in flagged}
    assert flagged_ids == {d["parcel_id"] for d in decisions if d["lane"] != "green"}
    assert all(f["reasons"] for f in flagged), "every flagged parcel says why"

    check_decision = validator("decision")
    for rec in out[worker.topic("decisions")]:
        check_decision(rec)
    check_dead = validator("dead-letter")
    for d in dead:
        check_dead(d)

    # At-least-once bookkeeping: everything read was committed (after its output was acknowledged).
    hw = asyncio.run(high_watermarks(broker.bootstrap, worker.topic("manifests")))
    committed = asyncio.run(committed_offsets(broker.bootstrap, worker.app_id, worker.topic("manifests")))
    assert sum(hw.values()) == len(values)
    assert committed == hw
