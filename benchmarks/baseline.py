"""The obvious Faust agents the screener is measured against (nothing here is deliberately slow).

Three agents, one per `--mode`, each how the Faust documentation suggests writing it:

- `parcels`: one parcel per event deserialised into a `faust.Record`, the default rules as plain
  Python (benchmarks/plainrules.py), one `Decision` record sent per parcel;
- `manifests`: one manifest per event deserialised into a `faust.Record` holding a `Parcel` record
  per parcel, the same rules per parcel, one record of the manifest's decisions sent per manifest;
- `bare`: raw bytes, no decoding, no output per event: the agent only iterates, so Faust
  acknowledges each event. The per-event floor of Faust itself. So that its rate can be read off
  the broker like the others', it sends one tiny progress record (`b"100"`) per 100 events.

Run as a worker: `python -m benchmarks.baseline --mode manifests --broker kafka://h:p --in-topic T
--out-topic U --app-id A`.
"""

from __future__ import annotations

import argparse
import datetime as dt

import faust

from .plainrules import DefaultRules

PROGRESS_EVERY = 100  # events per progress record of the bare agent


class Item(faust.Record, serializer="json"):
    """One line of a parcel."""

    hs_code: str
    description: str
    quantity: float
    line_value: float
    unit: str = ""
    unit_price: float = 0.0
    origin_country: str = ""


class Parcel(faust.Record, serializer="json"):
    """One parcel event (a bare parcel record on the wire)."""

    parcel_id: str
    declaration_type: str
    seller_id: str
    consignee_id: str
    origin_country: str
    currency: str
    gross_weight_kg: float
    declared_value: float
    items: list[Item]
    event_time: str = ""
    departure_country: str = ""
    net_weight_kg: float = 0.0
    freight: float = 0.0
    paid_amount: float = 0.0
    tax_withheld: float = 0.0
    consignee_phone: str = ""
    manifest_id: str = ""


class Manifest(faust.Record, serializer="json"):
    """One manifest event: many parcels."""

    manifest_id: str
    parcels: list[Parcel]


class Decision(faust.Record, serializer="json"):
    """One decision per parcel."""

    parcel_id: str
    lane: str
    score: float
    reasons: list[str]
    decided_at: str


class ManifestDecisions(faust.Record, serializer="json"):
    """The decisions of one manifest, one output record per input manifest."""

    manifest_id: str
    decisions: list[Decision]


def screen(rules: DefaultRules, p: Parcel) -> Decision:
    """Decide one parcel record."""
    lane, score, reasons = rules.decide(
        p.parcel_id, p.event_time, p.net_weight_kg, p.gross_weight_kg, p.declared_value, p.currency, p.freight,
        p.tax_withheld, p.paid_amount, p.origin_country, p.departure_country,
        (("consignee_id", p.consignee_id), ("consignee_phone", p.consignee_phone), ("seller_id", p.seller_id)),
        [it.hs_code for it in p.items], [it.description for it in p.items])
    return Decision(parcel_id=p.parcel_id, lane=lane, score=score, reasons=reasons,
                    decided_at=dt.datetime.now(dt.UTC).isoformat())


def create_app(mode: str, broker: str, in_topic: str, out_topic: str, app_id: str, partitions: int,
               data_dir: str = ".baseline-data") -> faust.App:
    """The Faust app of `mode` (group timings as the screener's, so start-up is comparable)."""
    app = faust.App(app_id, broker=broker, web_enabled=False, datadir=data_dir, topic_partitions=partitions,
                    consumer_auto_offset_reset="earliest", broker_session_timeout=6.0,
                    broker_heartbeat_interval=1.0, broker_rebalance_timeout=10.0)
    rules = DefaultRules()
    if mode == "parcels":
        parcels = app.topic(in_topic, value_type=Parcel, partitions=partitions)
        decisions = app.topic(out_topic, value_type=Decision, partitions=partitions)

        @app.agent(parcels, name="baseline-screen")
        async def screen_parcels(stream: faust.StreamT[Parcel]) -> None:
            async for parcel in stream:
                await decisions.send(key=parcel.parcel_id, value=screen(rules, parcel))

    elif mode == "manifests":
        manifests = app.topic(in_topic, value_type=Manifest, partitions=partitions)
        manifest_decisions = app.topic(out_topic, value_type=ManifestDecisions, partitions=partitions)

        @app.agent(manifests, name="baseline-screen-manifests")
        async def screen_manifests(stream: faust.StreamT[Manifest]) -> None:
            async for manifest in stream:
                value = ManifestDecisions(manifest_id=manifest.manifest_id,
                                          decisions=[screen(rules, p) for p in manifest.parcels])
                await manifest_decisions.send(key=manifest.manifest_id, value=value)

    elif mode == "bare":
        events = app.topic(in_topic, value_type=bytes, value_serializer="raw", partitions=partitions)
        progress = app.topic(out_topic, value_type=bytes, value_serializer="raw", partitions=partitions)

        @app.agent(events, name="baseline-bare")
        async def acknowledge(stream: faust.StreamT[bytes]) -> None:
            seen = 0
            async for _ in stream:
                seen += 1
                if seen % PROGRESS_EVERY == 0:
                    await progress.send(value=b"%d" % PROGRESS_EVERY)

    else:
        raise ValueError(f"unknown mode {mode!r}")
    return app


def main(argv: list[str] | None = None) -> None:
    """Run one baseline worker until SIGTERM."""
    from faust.worker import Worker

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=("parcels", "manifests", "bare"), default="parcels")
    ap.add_argument("--broker", required=True, help="kafka://h:p (aiokafka driver) or confluent://h:p (librdkafka)")
    ap.add_argument("--in-topic", required=True)
    ap.add_argument("--out-topic", required=True)
    ap.add_argument("--app-id", required=True)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--data-dir", default=".baseline-data")
    args = ap.parse_args(argv)
    app = create_app(args.mode, args.broker, args.in_topic, args.out_topic, args.app_id, args.partitions,
                     args.data_dir)
    app.finalize()
    Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False).execute_from_commandline()


if __name__ == "__main__":
    main()
