"""`screener backtest`: replay history through the worker's batch code and report detection quality."""

from __future__ import annotations

import sys

import click
import orjson

DATA_FORMATS = click.Choice(["jsonl", "kcs"])


def load_rules(pack: str | None):
    """The rule pack's screener (default rules/default.toml); a bad pack is one error line."""
    from screener.pipeline.screening import load_screener
    from screener.settings import Settings
    from screener.state.screener import StatefulScreener, needs_state

    try:
        rules = load_screener(pack or Settings().pack)
    except Exception as exc:  # PackError lists every problem; anything else is still one line
        raise click.ClickException(f"rule pack {pack or Settings().pack}: {exc}") from None
    # History replays in event order through one store: consignee state is whole, as a worker's will be.
    return StatefulScreener(rules) if needs_state(rules) else rules


def read_data(data: tuple[str, ...], fmt: str, labels: str | None = None):
    """Read data files as a Source, turning read errors into one error line."""
    from screener.backtest.sources import SourceError, read_source

    try:
        return read_source(list(data), fmt, labels)
    except (OSError, SourceError, UnicodeDecodeError) as exc:
        raise click.ClickException(str(exc)) from None


def replay_with_progress(replay, source, label: str) -> None:
    """Run a replay under a rich progress bar (messages)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console(), transient=False) as progress:
        task = progress.add_task(label, total=len(source.messages))
        replay.run(source, lambda k: progress.advance(task, k))


def _console():
    from rich.console import Console

    return Console(stderr=True)


@click.command()
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="History to replay (repeat for several files; replayed together in event-time order).")
@click.option("--format", "fmt", type=DATA_FORMATS, default="jsonl", show_default=True)
@click.option("--pack", default=None, help="Rule pack (default rules/default.toml).")
@click.option("--model", default=None, type=click.Path(exists=True, file_okay=False), help="Model directory (screener train).")
@click.option("--labels", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Inspection outcomes (JSONL: parcel_id, illicit, revenue), e.g. from `screener generate --labels`.")
@click.option("--label-delay-days", type=float, default=14.0, show_default=True,
              help="An outcome becomes visible this long after its parcel's event time.")
@click.option("--report-from", default=None, help="Report parcels from this date/time on (earlier ones warm up state).")
@click.option("--batch-messages", type=int, default=64, show_default=True, help="Messages per replayed batch.")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False, writable=True),
              help="Write the report as JSON.")
@click.option("--html", "html_path", default=None, type=click.Path(dir_okay=False, writable=True),
              help="Write a self-contained HTML report (charts need the `train` extra: plotly).")
def backtest(data, fmt, pack, model, labels, label_delay_days, report_from, batch_messages, json_path, html_path) -> None:
    """Replay history through the worker's screening code and report precision/recall at n% inspection."""
    from screener.backtest.replay import Replay
    from screener.backtest.report import build_report, print_report, source_summary, write_html
    from screener.backtest.sources import parse_time_ms
    from screener.features.builder import FeatureBuilder
    from screener.model.artifact import ModelError, load_model
    from screener.model.screener import ModelScreener, builder_for

    since = None
    if report_from:
        since = parse_time_ms(report_from if "T" in report_from else f"{report_from}T00:00:00")
        if since is None:
            raise click.ClickException(f"--report-from {report_from!r} is not a date or ISO 8601 time")
    if label_delay_days < 0:
        raise click.ClickException("--label-delay-days must be zero or more")
    rules = load_rules(pack)
    source = read_data(data, fmt, labels)
    if not source.outcomes:
        raise click.ClickException("no outcomes to measure against: pass --labels (jsonl) or KCS files")
    try:
        saved = load_model(model) if model else None
        builder = builder_for(saved, retain=True) if saved else FeatureBuilder()
    except ModelError as exc:
        raise click.ClickException(str(exc)) from None
    screener = ModelScreener(rules, builder, saved)
    replay = Replay(screener, label_delay_days, batch_messages)
    console = _console()
    console.print(f"backtest: {source_summary(source)}; ruleset {screener.ruleset_id} {screener.version}")
    replay_with_progress(replay, source, "replaying")
    report = build_report(replay, source.outcomes, since)
    report["label_delay_days"] = label_delay_days
    report["report_from"] = report_from
    print_report(report, console)
    if json_path:
        with open(json_path, "wb") as f:
            f.write(orjson.dumps({k: v for k, v in report.items() if k != "curves"}, option=orjson.OPT_INDENT_2))
    if html_path:
        try:
            write_html(report, html_path, f"Backtest: {', '.join(data)}")
        except ImportError:
            raise click.ClickException("--html needs plotly: pip install 'parcel-screener[train]'") from None
    if report["parcels_reported"] == 0:
        click.echo("no parcels with outcomes in the reported window", err=True)
        sys.exit(1)
