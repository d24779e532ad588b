"""`screener train`: a LightGBM model on stream-computable features, written as node arrays + manifest."""

from __future__ import annotations

import click

from screener.backtest.cli import DATA_FORMATS, load_rules, read_data


@click.command()
@click.option("--data", "data", multiple=True, required=True, type=click.Path(exists=True, dir_okay=False),
              help="Training history (repeat for several files).")
@click.option("--valid", "valid", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="Validation history, replayed after the training data (reported, never tuned on).")
@click.option("--format", "fmt", type=DATA_FORMATS, default="jsonl", show_default=True)
@click.option("--labels", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Inspection outcomes for jsonl data (JSONL: parcel_id, illicit[, revenue]).")
@click.option("--label-delay-days", type=float, default=14.0, show_default=True,
              help="Outcomes feed the entity statistics this long after the parcel, as in the stream.")
@click.option("--pack", default=None, help="Rule pack replayed alongside (default rules/default.toml).")
@click.option("--trees", type=int, default=200, show_default=True, help="Boosting rounds (trees).")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Model directory to write.")
def train(data, valid, fmt, labels, label_delay_days, pack, trees, out) -> None:
    """Train a gradient-boosted tree model on features the stream computes (needs the `train` extra)."""
    try:
        import lightgbm  # noqa: F401

        from screener.model.train import train as run_train
    except ImportError:
        raise click.ClickException("training needs LightGBM: pip install 'parcel-screener[train]'") from None
    from screener.backtest.cli import _console

    rules = load_rules(pack)
    source = read_data(data, fmt, labels)
    if not source.outcomes:
        raise click.ClickException("no outcomes to learn from: pass --labels (jsonl) or KCS files")
    valid_source = read_data(valid, fmt, labels) if valid else None
    if trees < 1:
        raise click.ClickException("--trees must be at least 1")
    console = _console()
    try:
        with console.status("replaying history and training"):
            manifest = run_train(source, rules, out, valid_source, label_delay_days, num_trees=trees)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    for split in ("training", "validation"):
        q = manifest.get(split)
        if q:
            console.print(f"{split}: {q['rows']:,} parcels, precision@5% {q['precision_at_pct']['5']:.3f}, "
                          f"recall@5% {q['recall_at_pct']['5']:.3f}, AUC {q['auc']:.4f}")
    console.print(f"model {manifest['version']} ({manifest['lightgbm']['num_trees']} trees, "
                  f"{len(manifest['features'])} features) written to {out}")
