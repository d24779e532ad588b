"""The backtest report: detection at n% inspection, AUC, per-rule figures and lane mix; JSON, a rich table, HTML."""

from __future__ import annotations

import math

import numpy as np

from screener.backtest import metrics
from screener.backtest.replay import Replay
from screener.backtest.sources import Source
from screener.pipeline.batch import LANE_NAMES


def build_report(replay: Replay, source_outcomes: dict, report_from_ms: int | None = None) -> dict:
    """Figures over the screened parcels from `report_from_ms` on that have an outcome (others are counted only)."""
    s = replay.screened
    times = s.concat("time_ms").astype(np.int64)
    in_window = times >= report_from_ms if report_from_ms is not None else np.ones(len(times), dtype=bool)
    pids = s.parcel_ids
    has = np.array([p in source_outcomes for p in pids], dtype=bool)
    rows = np.flatnonzero(in_window & has)
    y = np.array([source_outcomes[pids[i]].illicit for i in rows.tolist()], dtype=bool)
    revenue = np.array([source_outcomes[pids[i]].revenue for i in rows.tolist()], dtype=np.float64)
    with_revenue = bool(len(revenue)) and not np.isnan(revenue).all()
    score = s.concat("score")[rows]
    lane = s.concat("lane")[rows].astype(np.int64)
    hits = np.concatenate(s.hits)[rows] if s.hits else np.zeros((0, 0), dtype=bool)
    random = s.concat("random")[rows].astype(bool)

    at = metrics.at_percent(score, y, revenue if with_revenue else None)
    illicit = int(y.sum())
    rules = {}
    names = list(replay.screener.rule_ids)
    columns = [hits[:, r] for r in range(len(names))] + [random]
    for name, fired in zip([*names, "random"], columns):
        n_hit = int(fired.sum())
        caught = int((fired & y).sum())
        rules[name] = {"hits": n_hit, "precision": caught / n_hit if n_hit else None,
                       "share_of_caught": caught / illicit if illicit else None}
    flagged = lane > 0
    counts = np.bincount(lane, minlength=len(LANE_NAMES)) if len(lane) else np.zeros(len(LANE_NAMES), dtype=int)
    report = {
        "parcels_screened": int(len(times)),
        "parcels_reported": int(len(rows)),
        "illicit": illicit,
        "dead_letters": replay.stats.dead_letters,
        "precision_at_pct": at["precision"],
        "recall_at_pct": at["recall"],
        "auc": metrics.roc_auc(score, y),
        "flagged": {"parcels": int(flagged.sum()),
                    "precision": float(y[flagged].mean()) if flagged.any() else None,
                    "recall": float((flagged & y).sum() / illicit) if illicit else None},
        "lanes": {name: {"parcels": int(c), "share": float(c / max(len(lane), 1))} for name, c in zip(LANE_NAMES, counts)},
        "rules": rules,
        "ruleset": {"id": replay.screener.ruleset_id, "version": str(replay.screener.version)},
        "curves": metrics.curves(score, y),
    }
    if with_revenue:
        report["revenue_at_pct"] = at["revenue"]
    return report


def print_report(report: dict, console) -> None:
    """The report as rich tables."""
    from rich.table import Table

    def pct(x):
        return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"

    t = Table(title=f"detection at n% inspection ({report['parcels_reported']:,} parcels, "
                    f"{report['illicit']:,} illicit; AUC {report['auc'] if report['auc'] is None else round(report['auc'], 4)})")
    t.add_column("n%")
    t.add_column("precision", justify="right")
    t.add_column("recall", justify="right")
    if "revenue_at_pct" in report:
        t.add_column("revenue", justify="right")
    for k in report["precision_at_pct"]:
        row = [f"{k}%", pct(report["precision_at_pct"][k]), pct(report["recall_at_pct"][k])]
        if "revenue_at_pct" in report:
            row.append(pct(report["revenue_at_pct"][k]))
        t.add_row(*row)
    console.print(t)
    r = Table(title="rules")
    for c in ("rule", "hits", "precision", "share of caught"):
        r.add_column(c, justify="left" if c == "rule" else "right")
    for name, v in report["rules"].items():
        r.add_row(name, f"{v['hits']:,}", pct(v["precision"]), pct(v["share_of_caught"]))
    console.print(r)
    lanes = ", ".join(f"{k} {v['parcels']:,} ({pct(v['share'])})" for k, v in report["lanes"].items())
    f = report["flagged"]
    console.print(f"lanes: {lanes}; flagged precision {pct(f['precision'])}, recall {pct(f['recall'])}; "
                  f"dead letters {report['dead_letters']:,}")


def write_html(report: dict, path: str, title: str) -> None:
    """One self-contained HTML file: precision/recall at k and the lift curve (plotly, its JS inlined), and tables."""
    import plotly.graph_objects as go

    c = report["curves"]
    share = [100 * x for x in c["share"]]
    pr = go.Figure()
    pr.add_scatter(x=share, y=c["precision"], name="precision@k")
    pr.add_scatter(x=share, y=c["recall"], name="recall@k")
    pr.update_layout(title="Precision and recall when inspecting the top k%", xaxis_title="inspected (% of parcels)",
                     yaxis_title="share", yaxis_range=[0, 1.02])
    lift = go.Figure()
    lift.add_scatter(x=share, y=c["lift"], name="lift")
    lift.add_hline(y=1.0, line_dash="dot", annotation_text="random selection")
    lift.update_layout(title="Lift: precision@k over the illicit base rate", xaxis_title="inspected (% of parcels)",
                       yaxis_title="lift")
    rows = "".join(f"<tr><td>{k}%</td><td>{report['precision_at_pct'][k]:.3f}</td><td>{report['recall_at_pct'][k]:.3f}</td>"
                   + (f"<td>{report['revenue_at_pct'][k]:.3f}</td>" if "revenue_at_pct" in report else "") + "</tr>"
                   for k in report["precision_at_pct"])
    rule_rows = "".join(f"<tr><td>{name}</td><td>{v['hits']}</td><td>{_cell(v['precision'])}</td>"
                        f"<td>{_cell(v['share_of_caught'])}</td></tr>" for name, v in report["rules"].items())
    revenue_head = "<th>revenue</th>" if "revenue_at_pct" in report else ""
    html = f"""<!doctype html><html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}</style>
</head><body><h1>{title}</h1>
<p>{report['parcels_reported']:,} parcels reported, {report['illicit']:,} illicit; ROC AUC {report['auc']}; ruleset
{report['ruleset']['id']} {report['ruleset']['version']}</p>
<table><tr><th>n%</th><th>precision</th><th>recall</th>{revenue_head}</tr>{rows}</table>
{pr.to_html(full_html=False, include_plotlyjs=True)}
{lift.to_html(full_html=False, include_plotlyjs=False)}
<h2>Rules</h2><table><tr><th>rule</th><th>hits</th><th>precision</th><th>share of caught</th></tr>{rule_rows}</table>
</body></html>"""
    with open(path, "w", encoding="utf-8") as f:
        f.write(html)


def _cell(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def source_summary(source: Source) -> str:
    """One line about what is being replayed."""
    parcels = sum(len(m.parcel_times) for m in source.messages)
    return f"{len(source.messages):,} messages, {parcels:,} parcels, {len(source.outcomes):,} outcomes"
