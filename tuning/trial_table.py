"""The tables that both CLIs print (the study at its end, the report rebuilt): the study's trials,
and its confirmed configurations with their per-seed values beside the baseline's."""
from __future__ import annotations


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def format_table(summary: dict, keys: list[str]) -> str:
    """Trials sorted by the objective: id, status, kimg, the metric (and its best so far, when that
    ranks them) and the searched values."""
    metrics = list(dict.fromkeys([summary["metric"], summary.get("objective", summary["metric"])]))
    header = ["trial", "status", "kimg", *metrics, *keys]
    rows = [[t["trial_id"], t["status"], t["metrics"].get("kimg"), *(t["metrics"].get(m) for m in metrics),
             *((t["config"] or {}).get(k) for k in keys)] for t in summary["trials"]]
    return _columns(header, rows)


def _columns(header: list[str], rows: list[list]) -> str:
    cells = [header] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_confirmation(entries: list[dict], metric: str) -> str:
    """One row per confirmed configuration (the λ = 0 baseline first): mean ± std, the difference
    from the baseline with its Holm-corrected p, and every seed's value."""
    rows = []
    for e in entries:
        vs = e.get("vs_baseline") or {}
        spread = "-" if e["mean"] is None else f"{e['mean']:.4g}" + (f" ± {e['std']:.2g}" if e["std"] is not None else "")
        rows.append([e["label"] + (" (baseline)" if e["baseline"] else ""), spread, vs.get("delta"), vs.get("p_value"),
                     "yes" if e.get("beats_baseline") else ("" if e["baseline"] else "no"),
                     " ".join(f"{v:.4g}" for v in e["values"]) + (f" (+{e['failed']} failed)" if e.get("failed") else "")])
    return _columns(["configuration", metric, "Δ vs λ=0", "p (Holm)", "beats", f"{metric} per seed"], rows)
