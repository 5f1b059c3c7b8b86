"""The table of a study's trials that both CLIs print (the study at its end, the report rebuilt)."""
from __future__ import annotations


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "-" if v is None else str(v)


def format_table(summary: dict, keys: list[str]) -> str:
    """Trials sorted by the metric: id, status, kimg, metric and the searched values."""
    metric = summary["metric"]
    header = ["trial", "status", "kimg", metric, *keys]
    rows = [[t["trial_id"], t["status"], t["metrics"].get("kimg"), t["metrics"].get(metric),
             *((t["config"] or {}).get(k) for k in keys)] for t in summary["trials"]]
    cells = [header] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
