"""The `screener` command: demo, worker, broker, publish, tail, generate (plus rules and status)."""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator

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


class LazyGroup(click.Group):
    """A command group whose heavier subcommands are imported only when they run (or help lists them)."""

    # name -> "module:attribute". `screener worker` must reach its signal handlers quickly, and importing
    # the rule compiler (Numba) for every command took about half a second.
    LAZY = {"rules": "screener.rules.cli:rules", "status": "screener.ops.status:status",
            "inspect": "screener.kafka.inspect_cli:inspect", "backtest": "screener.backtest.cli:backtest",
            "train": "screener.model.cli:train"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Eager and lazy commands, sorted."""
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The named command, importing its module if it is a lazy one."""
        if cmd_name not in self.LAZY:
            return super().get_command(ctx, cmd_name)
        module, attribute = self.LAZY[cmd_name].split(":")
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="parcel-screener")
def main() -> None:
    """Parcel risk screener: Kafka manifests in, one explained decision per parcel out."""


def exit_on_stop_signals() -> None:
    """Until the worker installs its own handlers, SIGINT or SIGTERM ends the process at once."""
    # Nothing is consumed yet, so there is nothing to stop gracefully. Installed explicitly because a worker
    # started in the background by a non-interactive shell inherits SIGINT ignored: a SIGINT during the
    # warm-up was lost, and the worker then ran until stopped again (seen in CI).
    def stop(signum, _frame):
        sys.stderr.write(f"worker: {signal.Signals(signum).name} before the worker started; exiting\n")
        sys.stderr.flush()
        os._exit(128 + signum)

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def load_settings(overrides: dict) -> Settings:
    """Settings from SCREENER_* and flags; a bad variable is a one-line usage error."""
    try:
        return Settings.load(overrides)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def package_version() -> str:
    """Installed version of the screener package."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("parcel-screener")
    except PackageNotFoundError:
        return "unknown"


def pack_refused(exc) -> click.ClickException:
    """One error line for a refused rule pack: its first problems and where to see them all."""
    problems = [str(p) for p in exc.problems]
    more = f"; and {len(problems) - 3} more (screener rules check {exc.path})" if len(problems) > 3 else ""
    return click.ClickException(f"rule pack {exc.path} refused: {'; '.join(problems[:3])}{more}")


def check_pack(pack: str) -> None:
    """Parse and check the rule pack (no compiling): one error line when it is refused."""
    from screener.pipeline.screening import resolve_pack_path
    from screener.rules import load_pack
    from screener.rules.errors import PackError

    try:
        load_pack(resolve_pack_path(pack))
    except PackError as exc:
        raise pack_refused(exc) from None


def load_and_warm_screener(pack: str | None):
    """Load the rule set and compile its kernels on a tiny batch, before joining the consumer group."""
    from screener.generator import GeneratorConfig, ManifestGenerator
    from screener.pipeline.decode import RawMessage
    from screener.pipeline.processor import BatchProcessor
    from screener.pipeline.screening import load_screener
    from screener.rules.errors import PackError

    try:
        screener = load_screener(pack)
    except PackError as exc:
        raise pack_refused(exc) from None
    gen = ManifestGenerator(GeneratorConfig(manifests=1, parcels_per_manifest=5, seed=0))
    raws = [RawMessage(orjson.dumps(m)) for m in gen.manifests()]
    BatchProcessor(screener).process(raws)
    from screener.state.screener import StatefulScreener, needs_state

    if needs_state(screener):    # the state kernels too (a throwaway store)
        BatchProcessor(StatefulScreener(screener)).process(raws)
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
@click.option("--processes", type=click.IntRange(min=0), default=None,
              help="Worker processes of the group on this machine (env SCREENER_PROCESSES; 0 = one per core).")
def worker(**flags) -> None:
    """Run a screening worker (scale out by starting more in the same group)."""
    exit_on_stop_signals()   # first: the imports and the warm-up below take seconds
    from screener.kafka.connectivity import BrokerUnreachable, BrokerWatch
    from screener.kafka.processes import process_count, run_processes
    from screener.kafka.worker import run_worker
    from screener.ops.metrics import PipelineMetrics

    settings = load_settings(flags)
    count = process_count(settings)
    if count > 1:
        # A supervisor of `count` single-process workers (screener/kafka/processes.py): one core each.
        # The pack is checked here once, so a bad one is one error line, not one per child.
        check_pack(settings.pack)
        click.echo(f"worker: starting {count} processes in group {settings.app_id}", err=True)
        sys.exit(run_processes(settings, count))
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    metrics = PipelineMetrics()
    # The pack is parsed first (a bad pack is reported before anything else); then the broker is probed while
    # it compiles (tens of seconds cold on a busy machine), so a wrong address is reported `broker_wait_s`
    # after start, not after the warm-up.
    check_pack(settings.pack)
    watch = BrokerWatch(settings.bootstrap_servers, metrics).start()
    warm: dict = {}

    def warm_up() -> None:
        try:
            warm["screener"] = load_and_warm_screener(settings.pack)
        except BaseException as exc:  # handed to the main thread, which reports it
            warm["error"] = exc

    warming = threading.Thread(target=warm_up, name="warm-up", daemon=True)
    warming.start()
    try:
        watch.wait_until_reachable(settings.broker_wait_s)
    except BrokerUnreachable as exc:
        raise click.ClickException(str(exc)) from None
    warming.join()
    if "error" in warm:
        raise warm["error"]
    screener = warm["screener"]
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
    run_worker(settings, screener, metrics)


@main.command()
@click.option("--port", type=int, default=9092, show_default=True, help="Port to listen on (0 = a free one).")
@click.option("--host", default="127.0.0.1", show_default=True)
def broker(port: int, host: str) -> None:
    """Run the embedded Kafka-compatible broker (memory-only) in the foreground."""
    import os
    import socket

    from screener.kafka.broker import broker_command, free_port

    port = port or free_port(host)
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
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
@click.argument("source", type=click.Path(allow_dash=True, dir_okay=False, exists=True))
@broker_option
@topic_prefix_option
@click.option("--rate", type=click.FloatRange(min=0), default=0.0, help="Parcels per second (0 = as fast as possible).")
@click.option("--topic", default=None, help="Topic to publish to (default: the manifests topic).")
def publish(source: str, broker: str | None, topic_prefix: str | None, rate: float, topic: str | None) -> None:
    """Publish JSON manifests or parcels from FILE (or - for stdin): JSONL, pretty-printed documents or an array.

    A file is checked whole before anything is sent; stdin is published as it arrives and stops at
    the first document that is not JSON.
    """
    from collections import Counter

    from aiokafka.errors import KafkaConnectionError
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from screener.kafka.connectivity import quiet_client_logs, unreachable_message
    from screener.kafka.publisher import FeedError, describe, documents, publish_documents

    settings = load_settings({"broker": broker, "topic_prefix": topic_prefix})
    name = "stdin" if source == "-" else source
    shapes: Counter = Counter()
    total = None
    if source != "-":
        try:
            with open(source, "rb") as fh:
                for doc in documents(fh):
                    shapes[doc.shape] += 1
        except FeedError as exc:
            raise click.ClickException(f"{name}: {exc}; nothing was published") from None
        total = sum(shapes.values())
        if not total:
            raise click.ClickException(f"{name}: no JSON documents; nothing was published")
        click.echo(f"read {describe(shapes)} from {name}", err=True)
        shapes.clear()

    def counted(fh) -> Iterator:
        for doc in documents(fh):
            shapes[doc.shape] += 1
            yield doc

    columns = [TextColumn("publishing"), BarColumn(), MofNCompleteColumn()] if total else [TextColumn("publishing")]
    quiet_client_logs()
    with Progress(*columns, TextColumn("{task.completed:,} messages, {task.fields[parcels]:,} parcels"),
                  TimeElapsedColumn(), transient=False, console=Console(stderr=True)) as progress:
        task = progress.add_task("publish", total=total, parcels=0)

        def on_progress(messages: int, parcels: int) -> None:
            if messages % 50 == 0:
                progress.update(task, completed=messages, parcels=parcels)

        t0 = time.monotonic()
        fh = sys.stdin.buffer if source == "-" else open(source, "rb")
        try:
            messages, parcels = asyncio.run(publish_documents(settings.bootstrap_servers,
                                                              topic or settings.manifests_topic,
                                                              counted(fh), rate, on_progress))
        except FeedError as exc:
            raise click.ClickException(f"{name}: {exc}") from None
        except KafkaConnectionError:
            raise click.ClickException(asyncio.run(unreachable_message(settings.bootstrap_servers))
                                       + "; nothing was published") from None
        progress.update(task, completed=messages, parcels=parcels)
    el = time.monotonic() - t0
    if source == "-":
        click.echo(f"read {describe(shapes)} from stdin", err=True)
    click.echo(f"published {messages:,} messages, {parcels:,} parcels in {el:.1f}s "
               f"({parcels / max(el, 1e-9):,.0f} parcels/s) to {topic or settings.manifests_topic}", err=True)


@main.command("replay-dead-letter")
@broker_option
@topic_prefix_option
@click.option("--reason", "reasons", multiple=True, help="Replay dead letters with this reason code (repeatable).")
@click.option("--all", "replay_all", is_flag=True, help="Replay every dead letter, whatever its reason.")
@click.option("--dry-run", is_flag=True, help="Count what would be replayed; publish nothing.")
def replay_dead_letter(broker: str | None, topic_prefix: str | None, reasons: tuple[str, ...], replay_all: bool,
                       dry_run: bool) -> None:
    """Publish the originals of dead letters to the manifests topic again, after the cause was fixed."""
    from aiokafka.errors import KafkaConnectionError

    from screener.kafka.connectivity import quiet_client_logs, unreachable_message
    from screener.kafka.replay import replay
    from screener.kafka.tail import TailError

    if bool(reasons) == replay_all:
        raise click.UsageError("give --reason CODE (repeatable) or --all")
    settings = load_settings({"broker": broker, "topic_prefix": topic_prefix})
    quiet_client_logs()
    try:
        count = asyncio.run(replay(settings.bootstrap_servers, settings.dead_letter_topic, settings.manifests_topic,
                                   None if replay_all else reasons, dry_run))
    except TailError as exc:
        raise click.ClickException(str(exc)) from None
    except KafkaConnectionError:
        raise click.ClickException(asyncio.run(unreachable_message(settings.bootstrap_servers))) from None

    def by_reason(c) -> str:
        return ", ".join(f"{r} {n:,}" for r, n in c.most_common()) or "none"

    verb = "would replay" if dry_run else "replayed"
    click.echo(f"{verb} {sum(count.replayed.values()):,} dead letters to {settings.manifests_topic} "
               f"({by_reason(count.replayed)})")
    if count.truncated:
        click.echo(f"not replayable (original truncated): {by_reason(count.truncated)}")
    if count.other_reasons:
        click.echo(f"left alone (other reasons): {by_reason(count.other_reasons)}")


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
    settings = load_settings({"broker": broker, "topic_prefix": topic_prefix})
    since_ms = calendar.timegm(since.timetuple()) * 1000 if since else None
    request = TailRequest(last=10 if last is None else last, from_beginning=from_beginning, offset=offset,
                          follow=follow, as_json=as_json, keep=Filter(set(lanes) or None, key, since_ms))
    try:
        run_tail(settings.bootstrap_servers, settings.topic(which), which, request)
    except TailError as exc:
        raise click.ClickException(str(exc)) from None


@main.command()
@click.option("--parcels", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Parcels to screen before the summary.")
@click.option("--parcels-per-manifest", type=click.IntRange(min=1), default=500, show_default=True)
@click.option("--rate", type=float, default=5000.0, show_default=True,
              help="Publish rate in parcels/s, about twice the 20M/day peak: inspection outcomes come back while "
                   "parcels still arrive, so later parcels of offenders are judged with them (0 = as fast as "
                   "possible).")
@click.option("--forever", is_flag=True, help="Keep publishing and screening until Ctrl-C.")
@click.option("--partitions", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--metrics-port", type=int, default=9100, show_default=True, help="Worker's /metrics port (0 = off).")
@click.option("--pack", default=None, help="Rule pack (default rules/default-stateful.toml: default + stateful rules).")
@click.option("--seed", type=int, default=7, show_default=True)
def demo(**opts) -> None:
    """Start broker, worker and publisher, show the live view, end with a summary."""
    from screener.demo import run_demo

    sys.exit(run_demo(**opts))


if __name__ == "__main__":
    main()
