"""The `screener` command: demo, worker, broker, publish, tail, generate (plus rules and status)."""

from __future__ import annotations

import asyncio
import logging
import sys
import time

import click
import orjson

from screener.settings import Settings

BROKER_HELP = "Kafka bootstrap servers, kafka://host:port[,host:port] (env SCREENER_BROKER)."


def broker_option(f):
    """--broker flag shared by every command that talks to Kafka."""
    return click.option("--broker", default=None, help=BROKER_HELP)(f)


def topic_prefix_option(f):
    """--topic-prefix flag shared by every command that names topics."""
    return click.option("--topic-prefix", default=None, help="Prefix of all topic names (env SCREENER_TOPIC_PREFIX).")(f)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="parcel-screener")
def main() -> None:
    """Parcel risk screener: Kafka manifests in, one explained decision per parcel out."""


def package_version() -> str:
    """Installed version of the screener package."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("parcel-screener")
    except PackageNotFoundError:
        return "unknown"


def load_and_warm_screener(pack: str | None):
    """Load the rule set and compile its kernels on a tiny batch, before joining the consumer group."""
    from screener.generator import GeneratorConfig, ManifestGenerator
    from screener.pipeline.decode import RawMessage
    from screener.pipeline.processor import BatchProcessor
    from screener.pipeline.screening import load_screener

    screener = load_screener(pack)
    gen = ManifestGenerator(GeneratorConfig(manifests=1, parcels_per_manifest=5, seed=0))
    BatchProcessor(screener).process([RawMessage(orjson.dumps(m)) for m in gen.manifests()])
    return screener


@main.command()
@broker_option
@topic_prefix_option
@click.option("--partitions", type=click.IntRange(min=1), default=None, help="Partitions of topics the worker creates.")
@click.option("--pack", default=None, help="Rule pack (default rules/default.toml).")
@click.option("--model", default=None, help="Model directory from `screener train` (env SCREENER_MODEL).")
@click.option("--metrics-port", type=int, default=None, help="Serve Prometheus /metrics on this port (0 = off).")
@click.option("--broker-wait", "broker_wait_s", type=click.FloatRange(min=0), default=None,
              help="Seconds a starting worker waits for a reachable broker before it exits (0 = forever; "
                   "default 20).")
@click.option("--web-port", type=int, default=None, help="Enable Faust's web server on this port (0 = off).")
@click.option("--batch-max-messages", type=int, default=None, help="Messages per batch at most.")
@click.option("--daily-volume", type=int, default=None,
              help="Parcels per day to size for; headroom is measured against it (default 20,000,000).")
@click.option("--peak-factor", type=float, default=None, help="Peak-day rate over the average rate (default 10).")
@click.option("--log-level", default=None, help="Log level (WARNING, INFO, DEBUG).")
@click.option("--data-dir", default=None, help="Faust's local data directory.")
def worker(**flags) -> None:
    """Run a screening worker (scale out by starting more in the same group)."""
    from screener.kafka.connectivity import BrokerUnreachable, BrokerWatch
    from screener.kafka.worker import run_worker
    from screener.ops.metrics import PipelineMetrics

    settings = Settings.load(flags)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics = PipelineMetrics()
    # Probing starts before the slow rule-pack warm-up, so a wrong address is reported within seconds.
    watch = BrokerWatch(settings.bootstrap_servers, metrics).start()
    screener = load_and_warm_screener(settings.pack)
    if settings.model:  # rules + learned model (docs/model.md)
        from screener.model.artifact import ModelError
        from screener.model.screener import load_model_screener
        try:
            screener = load_model_screener(settings.model, screener)
        except ModelError as exc:
            raise click.ClickException(str(exc)) from None
    metrics.set_build_info(version=package_version(), ruleset=screener.ruleset_id, ruleset_version=str(screener.version))
    if settings.metrics_port:
        metrics.serve(settings.metrics_port)
    click.echo(f"worker: broker={settings.broker} topics={settings.manifests_topic}->{settings.decisions_topic} "
               f"ruleset={screener.ruleset_id}@{screener.version} metrics_port={settings.metrics_port or 'off'}",
               err=True)
    try:
        watch.wait_until_reachable(settings.broker_wait_s)
    except BrokerUnreachable as exc:
        raise click.ClickException(str(exc)) from None
    run_worker(settings, screener, metrics)


@main.command()
@click.option("--port", type=int, default=9092, show_default=True, help="Port to listen on (0 = a free one).")
@click.option("--host", default="127.0.0.1", show_default=True)
def broker(port: int, host: str) -> None:
    """Run the embedded Kafka-compatible broker (memory-only) in the foreground."""
    import os

    from screener.kafka.broker import broker_command, free_port

    port = port or free_port(host)
    click.echo(f"embedded broker on kafka://{host}:{port} (memory only; Ctrl-C stops it)", err=True)
    cmd = broker_command(port, host)
    os.execv(cmd[0], cmd)


@main.command()
@click.option("--manifests", type=int, default=10, show_default=True)
@click.option("--parcels-per-manifest", type=int, default=500, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--bare", is_flag=True, help="Write single-parcel messages (bare parcel records) instead of manifests.")
@click.option("--labels", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the ground truth as inspection outcomes (JSONL) to this file.")
def generate(manifests: int, parcels_per_manifest: int, seed: int, bare: bool, labels: str | None) -> None:
    """Write synthetic manifests (JSONL) with planted fraud to stdout."""
    from screener.generator import GeneratorConfig, ManifestGenerator

    gen = ManifestGenerator(GeneratorConfig(manifests=manifests, parcels_per_manifest=parcels_per_manifest, seed=seed))
    out = sys.stdout.buffer
    for m in gen.manifests():
        if bare:
            for p in m["parcels"]:
                out.write(orjson.dumps({"schema_version": m["schema_version"], "carrier_code": m["carrier_code"],
                                        "master_bill_no": m["master_bill_no"], **p}) + b"\n")
        else:
            out.write(orjson.dumps(m) + b"\n")
    out.flush()
    if labels:
        with open(labels, "wb") as f:
            for o in gen.outcomes(inspected_at=gen.config.start.isoformat()):
                f.write(orjson.dumps(o) + b"\n")


@main.command()
@click.argument("source", type=click.Path(allow_dash=True))
@broker_option
@topic_prefix_option
@click.option("--rate", type=float, default=0.0, help="Parcels per second (0 = as fast as possible).")
@click.option("--topic", default=None, help="Topic to publish to (default: the manifests topic).")
def publish(source: str, broker: str | None, topic_prefix: str | None, rate: float, topic: str | None) -> None:
    """Publish JSONL manifests or parcels from FILE (or - for stdin)."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from screener.kafka.publisher import publish_lines

    settings = Settings.load({"broker": broker, "topic_prefix": topic_prefix})
    fh = sys.stdin.buffer if source == "-" else open(source, "rb")
    total = None if source == "-" else sum(1 for _ in open(source, "rb"))
    with Progress(TextColumn("publishing"), BarColumn(), TextColumn("{task.completed}/{task.total} messages"),
                  TextColumn("{task.fields[parcels]} parcels"), TimeElapsedColumn(),
                  transient=False) as progress:
        task = progress.add_task("publish", total=total, parcels=0)

        def on_progress(messages: int, parcels: int) -> None:
            if messages % 50 == 0:
                progress.update(task, completed=messages, parcels=parcels)

        t0 = time.monotonic()
        messages, parcels = asyncio.run(publish_lines(settings.bootstrap_servers, topic or settings.manifests_topic,
                                                      fh, rate, on_progress))
        progress.update(task, completed=messages, parcels=parcels)
    el = time.monotonic() - t0
    click.echo(f"published {messages} messages, {parcels} parcels in {el:.1f}s ({parcels / max(el, 1e-9):,.0f} parcels/s)",
               err=True)


@main.command()
@click.argument("which", type=click.Choice(["decisions", "flagged", "dead-letter"]))
@broker_option
@topic_prefix_option
@click.option("-n", "--last", type=click.IntRange(min=0), default=None,
              help="Print the N most recent parcels (default 10; with -f, then follow).")
@click.option("--from-beginning", is_flag=True, help="Print every parcel from the start of the topic.")
@click.option("--offset", "-o", type=int, default=None,
              help="Start at this offset of every partition; negative counts back from the end (like kcat -o).")
@click.option("--since", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%d %H:%M:%S",
                                              "%Y-%m-%d"]),
              default=None, help="Only parcels published at or after this UTC time.")
@click.option("--key", default=None, help="Only records whose key, parcel_id or manifest_id is KEY.")
@click.option("--lane", "lanes", multiple=True, type=click.Choice(["green", "yellow", "red"]),
              help="Only decisions in these lanes (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per parcel instead of text.")
@click.option("--follow", "-f", is_flag=True, help="Keep printing new parcels (after the last N, not the whole topic).")
@click.option("--exit-at-end", "-e", is_flag=True, help="Exit at the end of the topic (the default without -f).")
def tail(which: str, broker: str | None, topic_prefix: str | None, last: int | None, from_beginning: bool,
         offset: int | None, since, key: str | None, lanes, as_json: bool, follow: bool, exit_at_end: bool) -> None:
    """Print the parcels of a topic (decisions, flagged or dead-letter), newest last, like kcat."""
    import calendar

    from screener.kafka.tail import Filter, TailError, TailRequest
    from screener.kafka.tail import tail as run_tail

    if follow and exit_at_end:
        raise click.UsageError("-f (follow) and -e (exit at end) contradict each other")
    starts = [name for name, given in (("-n", last is not None), ("--from-beginning", from_beginning),
                                       ("--offset", offset is not None), ("--since", since is not None)) if given]
    if len(starts) > 1:
        raise click.UsageError(f"choose one start: {' or '.join(starts)}")
    settings = Settings.load({"broker": broker, "topic_prefix": topic_prefix})
    since_ms = calendar.timegm(since.timetuple()) * 1000 if since else None
    request = TailRequest(last=10 if last is None else last, from_beginning=from_beginning, offset=offset,
                          follow=follow, as_json=as_json, keep=Filter(set(lanes) or None, key, since_ms))
    try:
        run_tail(settings.bootstrap_servers, settings.topic(which), which, request)
    except TailError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--parcels", type=int, default=100_000, show_default=True, help="Parcels to screen before the summary.")
@click.option("--parcels-per-manifest", type=int, default=500, show_default=True)
@click.option("--rate", type=float, default=0.0, help="Publish rate in parcels/s (0 = as fast as possible).")
@click.option("--forever", is_flag=True, help="Keep publishing and screening until Ctrl-C.")
@click.option("--partitions", type=int, default=4, show_default=True)
@click.option("--metrics-port", type=int, default=9100, show_default=True, help="Worker's /metrics port (0 = off).")
@click.option("--pack", default=None, help="Rule pack (default rules/default.toml).")
@click.option("--seed", type=int, default=7, show_default=True)
def demo(**opts) -> None:
    """Start broker, worker and publisher, show the live view, end with a summary."""
    from screener.demo import run_demo

    sys.exit(run_demo(**opts))


def _register_optional_commands() -> None:
    # Command groups owned by other modules; the CLI works without them while they are being built.
    try:
        from screener.rules.cli import rules
        main.add_command(rules)
    except ImportError:
        pass
    try:
        from screener.ops.status import status
        main.add_command(status)
    except ImportError:
        pass
    from screener.backtest.cli import backtest
    from screener.model.cli import train
    main.add_command(backtest)
    main.add_command(train)


_register_optional_commands()

if __name__ == "__main__":
    main()
