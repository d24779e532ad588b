"""`screener rules check | test | explain | compile`: tooling for analysts who write rule packs."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

DEFAULT_PACK = "rules/default.toml"


def _fail_with_problems(path: str, problems) -> None:
    click.echo(f"{path}: {len(problems)} problem(s)", err=True)
    for p in problems:
        click.echo(f"  - {p}", err=True)
    sys.exit(1)


def _screener(pack, cache_dir: str | None = None):
    """The pack's compiled screener, or one clear error line (e.g. a kernel cache directory we cannot write)."""
    from screener.rules.screener import PackScreener

    try:
        return PackScreener(pack, cache_dir)
    except OSError as exc:
        raise click.ClickException(f"cannot compile the kernel: {exc.strerror or exc} "
                                   f"({exc.filename or cache_dir or 'kernel cache'})") from exc


def _load(path: str):
    from screener.rules.pack import read_pack

    pack, problems = read_pack(path)
    if problems:
        _fail_with_problems(path, problems)
    return pack


@click.group()
def rules() -> None:
    """Check, test, explain and compile rule packs (see docs/rules.md)."""


@rules.command()
@click.argument("pack", default=DEFAULT_PACK)
def check(pack: str) -> None:
    """Parse, type-check and lint PACK; exit 1 listing every problem."""
    p = _load(pack)
    active = p.active_rules
    keep = 1.0
    for r in active:
        keep *= 1.0 - r.weight
    click.echo(f"ok: pack {p.id} {p.version} (hash {p.hash}): {len(p.rules)} rules, {len(active)} enabled, "
               f"{sum(len(r.examples) for r in p.rules)} examples; thresholds yellow {p.yellow} / red {p.red}, "
               f"highest reachable score {1.0 - keep:.4f}; random {p.random_rate:.2%} seed {p.seed}")


@rules.command()
@click.argument("pack", default=DEFAULT_PACK)
@click.option("--cache-dir", default=None, help="Kernel cache directory (default $SCREENER_KERNEL_CACHE or ~/.cache).")
def test(pack: str, cache_dir: str | None) -> None:
    """Run PACK's examples through the compiled kernel and the reference interpreter; exit 1 on any mismatch."""
    from screener.rules.examples import run_examples

    p = _load(pack)
    screener = _screener(p, cache_dir)
    results = run_examples(p, screener)
    failed = [r for r in results if not r.ok]
    for r in results:
        mark = "ok  " if r.ok else "FAIL"
        what = f"hit={r.kernel_hit} lane={r.kernel_lane} score={r.score:.4f}" if r.score is not None else ""
        click.echo(f"{mark} {r.rule_id}[{r.index}] expect hit={r.expected_hit}"
                   f"{' lane=' + r.expected_lane if r.expected_lane else ''}: {what}"
                   f"{'  # ' + r.note if r.note else ''}")
        for f in r.failures:
            click.echo(f"       {f}")
    without = [r.id for r in p.rules if r.enabled and not r.examples]
    if without:
        click.echo(f"note: rules without examples: {', '.join(without)}")
    click.echo(f"{len(results) - len(failed)}/{len(results)} examples passed "
               f"(kernel compiled/loaded in {screener.compile_seconds:.2f}s)")
    sys.exit(1 if failed else 0)


@rules.command()
@click.argument("pack", default=DEFAULT_PACK)
@click.option("--parcel", "parcel", required=True,
              help="A file (JSON parcel, manifest, list or JSON lines; - for stdin) or inline JSON.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per parcel.")
def explain(pack: str, parcel: str, as_json: bool) -> None:
    """Screen parcels with PACK and show every rule: whether it fired, its contribution, the values."""
    from screener.pipeline.batch import LANE_NAMES
    from screener.rules.explain import noisy_or_contributions, rule_values
    from screener.rules.parcels import ParcelInputError, batch_from_parcels, parcels_from_text
    from screener.rules.reasons import percent

    p = _load(pack)
    if parcel == "-":
        text = sys.stdin.read()
    elif parcel.lstrip().startswith(("{", "[")):
        text = parcel
    else:
        try:
            text = Path(parcel).read_text()
        except OSError as exc:
            raise click.ClickException(f"cannot read {parcel}: {exc.strerror or exc}") from exc
    try:
        parcels = parcels_from_text(text)
        batch = batch_from_parcels(parcels)
    except (ValueError, ParcelInputError) as exc:
        raise click.ClickException(str(exc)) from exc
    screener = _screener(p)
    result = screener.screen(batch)
    for i in range(batch.n):
        fired = screener.fired_rules(result, i)
        shares = dict(zip(fired, noisy_or_contributions([screener.rules[r].weight for r in fired])))
        rows = []
        for r, rule in enumerate(screener.rules):
            hit, trace = screener.interpreter.trace(batch, i, rule)
            active = rule.valid_from <= int(batch.event_time_ms[i]) < rule.valid_until
            values = rule_values(rule, trace, hit)
            rows.append({"rule_id": rule.id, "fired": r in fired, "condition_true": hit, "in_validity": active,
                         "contribution": round(shares.get(r, 0.0), 6), "values": values})
        doc = {"parcel_id": batch.parcel_ids[i], "lane": LANE_NAMES[int(result.lane[i])],
               "score": round(float(result.score[i]), 6), "random": bool(result.random[i]),
               "reasons": [x.as_dict() for x in screener.explain(batch, result, i)], "rules": rows}
        if as_json:
            click.echo(json.dumps(doc, default=str))
            continue
        click.echo(f"parcel {doc['parcel_id']}: lane {doc['lane']}, score {doc['score']}"
                   f"{', randomly selected' if doc['random'] else ''}")
        worded = {x["rule_id"]: x["text"] for x in doc["reasons"]}   # screener/rules/reasons.py
        for row in rows:
            if row["fired"]:
                state = f"FIRED  {percent(row['contribution'])}: {worded[row['rule_id']]}"
            elif row["condition_true"] and not row["in_validity"]:
                state = "off    (outside its validity dates)"
            else:
                state = "-"
            click.echo(f"  {row['rule_id']:<34} {state}")
            for line in row["values"]["because"]:
                click.echo(f"      {line}")
        if "random" in worded:
            click.echo(f"  {'random':<34} {worded['random']}")


@rules.command(name="compile")
@click.argument("pack", default=DEFAULT_PACK)
@click.option("--cache-dir", default=None, help="Kernel cache directory.")
@click.option("--show-source", is_flag=True, help="Print the generated kernel source.")
def compile_(pack: str, cache_dir: str | None, show_source: bool) -> None:
    """Compile PACK's kernel (or load it from the cache) and report the time it took."""
    from screener.rules.compiler import default_cache_dir

    p = _load(pack)
    t0 = time.perf_counter()
    screener = _screener(p, cache_dir)
    click.echo(f"pack {p.id} {p.version} (hash {p.hash}): kernel {screener.source.key} with "
               f"{screener.source.n_rules} rules ({screener.source.shapes} distinct shapes) ready in "
               f"{time.perf_counter() - t0:.2f}s "
               f"(cache {cache_dir or default_cache_dir()})")
    if show_source:
        click.echo(screener.source.text)
