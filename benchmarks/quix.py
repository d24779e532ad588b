"""The obvious Quix Streams app over manifests: JSON to dicts, the default rules in Python, `to_topic`.

One manifest per message, deserialised by Quix into a dict; each parcel decided by the same plain
Python rules as the Faust contenders (benchmarks/plainrules.py); one dict of the manifest's
decisions per input manifest produced with `to_topic`. Quix Streams runs on librdkafka
(confluent-kafka). Its consumer takes ~23 s to join a group on the embedded broker, which the
harness reports as start-up: throughput is counted from the first output record to the last.

Quix stamps an output record with its input record's timestamp; the app sets the processing time
instead (`set_timestamp`, once per manifest), so the harness can read the rate off the output
timestamps as it does for every other contender.

Run as a worker: `python -m benchmarks.quix --broker H:P --in-topic T --out-topic U --group G`
(needs the `bench` extra).
"""

from __future__ import annotations

import argparse
import datetime as dt
import time

from .plainrules import DefaultRules


def decide_manifest(rules: DefaultRules, manifest: dict) -> dict:
    """The decisions of one manifest dict, as a dict."""
    decided_at = dt.datetime.now(dt.UTC).isoformat()
    decisions = []
    for p in manifest["parcels"]:
        items = p["items"]
        lane, score, reasons = rules.decide(
            p["parcel_id"], p.get("event_time", ""), p.get("net_weight_kg", 0.0), p["gross_weight_kg"],
            p["declared_value"], p["currency"], p.get("freight", 0.0), p.get("tax_withheld", 0.0),
            p.get("paid_amount", 0.0), p["origin_country"], p.get("departure_country", ""),
            (("consignee_id", p["consignee_id"]), ("consignee_phone", p.get("consignee_phone", "")),
             ("seller_id", p["seller_id"])),
            [it["hs_code"] for it in items], [it["description"] for it in items])
        decisions.append({"parcel_id": p["parcel_id"], "lane": lane, "score": score, "reasons": reasons,
                          "decided_at": decided_at})
    return {"manifest_id": manifest["manifest_id"], "decisions": decisions}


def main(argv: list[str] | None = None) -> None:
    """Run the app until SIGTERM."""
    from quixstreams import Application

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--broker", required=True, help="host:port")
    ap.add_argument("--in-topic", required=True)
    ap.add_argument("--out-topic", required=True)
    ap.add_argument("--group", required=True)
    args = ap.parse_args(argv)
    # Output of a 500-parcel manifest is ~60 KB; the defaults of both clients already allow 1 MB records.
    app = Application(broker_address=args.broker, consumer_group=args.group, auto_offset_reset="earliest",
                      loglevel="WARNING", auto_create_topics=False, use_changelog_topics=False)
    manifests = app.topic(args.in_topic, value_deserializer="json")
    decisions = app.topic(args.out_topic, value_serializer="json")
    rules = DefaultRules()
    sdf = app.dataframe(manifests)
    sdf = sdf.apply(lambda manifest: decide_manifest(rules, manifest))
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: int(time.time() * 1000))
    sdf.to_topic(decisions)
    app.run()


if __name__ == "__main__":
    main()
