"""The study report, from what MLflow holds: REPORT_DIR/report.html (index; led by the verdict and a
strip plot of the confirmed configurations' seeds when the study had a confirmation stage),
trials.csv, the plots as PNG (FID vs λ, vs t-range, over kimg, importances, parallel coordinates,
λ = 0 baseline vs best) and interactive HTML. Needs MLflow, matplotlib, Optuna and SciPy only:
never Ray or torch.

A report is a function of the study's MLflow record and of this code, so a report directory keeps
the digest of both (BUILT_FROM): rebuilding an unchanged study reads the record and stops there,
without importing matplotlib, Optuna's fANOVA, scikit-learn or SciPy."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import html
import importlib.util
import json
import os
import shutil
import tempfile

from mlflow.tracking import MlflowClient

from tuning.report_data import StudyRecord, last_snapshot, load_study_record
from tuning.tracking import SNAPSHOT_DIR

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in a report
REPORT_DIR = "report"
INDEX = "report.html"
BUILT_FROM = "built_from.json"  # the digest of the record and code a report was made from, and what it made


def _table_rows(record: StudyRecord) -> tuple[list[str], list[list]]:
    keys = list(dict.fromkeys([*record.search_keys(), "seed"]))
    header = ["rank", "trial", "status", "kimg", record.metric, *keys, "run_id"]
    rows = []
    for i, t in enumerate(record.trials):
        rank = i + 1 if t in record.scored else None
        rows.append([rank, t.trial_id, t.status, t.kimg, record.objective(t),
                     *(t.searched.get(k, t.params.get(k)) for k in keys), t.run_id])
    return header, rows


def _write_csv(header, rows, path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)


def _baseline_vs_best(record: StudyRecord, out: str) -> list[dict]:
    """The λ = 0 baseline's and the best trial's last sample pictures, side by side (the best
    λ > 0 trial when the baseline itself is best)."""
    from tuning.report_plots import side_by_side

    client = MlflowClient(record.tracking_uri)
    best = ("best", record.best) if record.best is not record.baseline else ("best λ>0", record.best_smart)
    shown = []
    for (role, trial), file in zip((("λ=0 baseline", record.baseline), best), ("baseline", "best")):
        if trial is None:
            continue
        entry = {"role": role, "trial": trial, "picture": None}
        artifact = last_snapshot(client, trial.run_id, SNAPSHOT_DIR)
        if artifact:
            with tempfile.TemporaryDirectory() as tmp:
                local = client.download_artifacts(trial.run_id, artifact, tmp)
                entry["picture"] = f"{file}_snapshot.png"
                shutil.copyfile(local, os.path.join(out, entry["picture"]))
        shown.append(entry)
    pictures = [(f"{s['role']} {s['trial'].trial_id}: {record.metric} {record.objective(s['trial']):.4g}",
                 os.path.join(out, s["picture"])) for s in shown if s["picture"]]
    if pictures:
        side_by_side(pictures, os.path.join(out, "baseline_vs_best.png"))
    return shown


def _confirmation_html(record: StudyRecord, entries: list[dict], out: str) -> list[str]:
    """The verdict, the strip plot of every confirmed configuration's seeds beside the baseline's,
    and their table (per-seed values, difference from the baseline, Holm-corrected p)."""
    from tuning.confirm_stats import verdict
    from tuning.report_plots import confirmation_strip, fmt

    e = html.escape
    made = confirmation_strip(entries, record.metric, f"{record.name}: confirmation, one dot per seed",
                              os.path.join(out, "confirmation.png"))
    parts = [f"<h2>Verdict</h2><p><b>{e(verdict(entries, record.metric, record.mode))}</b></p>"]
    if made:
        parts.append("<img src='confirmation.png' alt='confirmation'>")
    parts.append("<table><tr><th>configuration</th><th>mean</th><th>std</th><th>95% CI</th><th>Δ vs λ=0</th>"
                 "<th>95% CI of Δ</th><th>p (Holm)</th><th>beats λ=0</th><th>per seed</th></tr>")
    interval = lambda ci: f"[{fmt(ci[0])}, {fmt(ci[1])}]" if ci else "-"  # noqa: E731
    for c in entries:
        vs = c.get("vs_baseline") or {}
        cells = [c["label"] + (" (baseline)" if c["baseline"] else ""), fmt(c["mean"]), fmt(c["std"]),
                 interval(c["ci95"]), fmt(vs.get("delta")), interval(vs.get("ci95")), fmt(vs.get("p_value")),
                 "" if c["baseline"] else ("yes" if c.get("beats_baseline") else "no"),
                 " ".join(fmt(v) for v in c["values"]) + (f" (+{c['failed']} failed)" if c.get("failed") else "")]
        parts.append("<tr>" + "".join(f"<td>{e(str(x))}</td>" for x in cells) + "</tr>")
    parts.append("</table>")
    return parts


def write_report(record: StudyRecord, out: str) -> dict:
    """Every file of the report into `out`; returns what was made (for the caller and the tests)."""
    from tuning.confirm import confirmation
    from tuning.report_plots import fid_over_kimg, fid_vs_lambda, fid_vs_trange, fmt, optuna_plots

    os.makedirs(out, exist_ok=True)
    header, rows = _table_rows(record)
    _write_csv(header, rows, os.path.join(out, "trials.csv"))
    plots = {name: fn(record, os.path.join(out, f"{name}.png"))
             for name, fn in (("fid_vs_lambda", fid_vs_lambda), ("fid_vs_trange", fid_vs_trange),
                              ("fid_over_kimg", fid_over_kimg))}
    importances, notes = optuna_plots(record, out)
    shown = _baseline_vs_best(record, out)

    e = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{e(record.name)} report</title>",
             "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;font-size:90%}"
             "td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}img{max-width:48%;margin:4px}</style>",
             f"</head><body><h1>Study {e(record.name)}</h1>",
             f"<p>{len(record.trials)} trials, objective {e(record.metric)} ({e(record.mode)}); MLflow "
             f"{e(record.tracking_uri)}, experiment {e(record.experiment_id)}, parent run {e(record.parent_run_id)}; "
             f"code {e(record.parent_tags.get('mlflow.source.git.commit', 'unknown'))}</p>"]
    entries = confirmation(record.confirm, record.mode) if record.confirm else None
    if entries is not None:  # the verdict leads
        parts += _confirmation_html(record, entries, out)
    best = record.best
    if best:
        parts.append(f"<p><b>Best</b>: trial {e(best.trial_id)}, {e(record.metric)} {fmt(record.objective(best))}, "
                     f"{e(json.dumps(best.searched))}</p>")
    parts.append("<h2>λ = 0 baseline vs best</h2>")
    if best is not None and best is record.baseline:
        parts.append("<p>The λ = 0 baseline is the best trial: no SMaRt setting beat the plain GAN; "
                     "beside it the best trial with λ > 0.</p>")
    for s in shown:
        parts.append(f"<p>{e(s['role'])}: trial {e(s['trial'].trial_id)}, {e(record.metric)} "
                     f"{fmt(record.objective(s['trial']))} at kimg {fmt(s['trial'].kimg)}</p>")
    if os.path.exists(os.path.join(out, "baseline_vs_best.png")):
        parts.append("<img src='baseline_vs_best.png' style='max-width:90%'>")
    parts.append("<h2>Trials</h2><table><tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{e(fmt(v))}</td>" for v in row) + "</tr>")
    parts.append("</table><p><a href='trials.csv'>trials.csv</a></p><h2>Plots</h2>")
    for name in [*(n for n, made in plots.items() if made), "importances", "parallel_coordinates"]:
        if os.path.exists(os.path.join(out, f"{name}.png")):
            parts.append(f"<img src='{name}.png' alt='{name}'>")
    links = [n for n in ("importances", "parallel_coordinates") if os.path.exists(os.path.join(out, f"{n}.html"))]
    if links:
        parts.append("<p>Interactive: " + ", ".join(f"<a href='{n}.html'>{n.replace('_', ' ')}</a>" for n in links)
                     + "</p>")
    if importances:
        parts.append("<p>fANOVA importances: " + ", ".join(f"{e(k)} {v:.2f}" for k, v in importances.items()) + "</p>")
    parts += [f"<p><i>{e(n)}</i></p>" for n in notes]
    parts.append("</body></html>")
    with open(os.path.join(out, INDEX), "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return {"plots": plots, "importances": importances, "notes": notes, "rows": rows, "header": header,
            "shown": [(s["role"], s["trial"].trial_id) for s in shown], "confirmation": entries}


def _digest(record: StudyRecord) -> str:
    """What a report depends on: the study's record and the report's code (found, not imported)."""
    digest = hashlib.sha256(json.dumps(dataclasses.asdict(record), sort_keys=True, default=str).encode())
    for module in ("tuning.report_data", "tuning.report_plots", "tuning.confirm", "tuning.confirm_stats", __name__):
        with open(importlib.util.find_spec(module).origin, "rb") as fh:
            digest.update(fh.read())
    return digest.hexdigest()


def _built(out: str, digest: str) -> dict | None:
    """What the report in `out` made, when it was made from this digest and its index is there."""
    try:
        with open(os.path.join(out, BUILT_FROM), encoding="utf-8") as fh:
            built = json.load(fh)
    except (OSError, ValueError):
        return None
    return built["made"] if built.get("digest") == digest and os.path.exists(os.path.join(out, INDEX)) else None


def build(tracking_uri: str, parent_run_id: str, out: str, log_to_parent: bool = False) -> dict:
    """Load the study from MLflow, write the report (unless `out` holds this very report already),
    optionally log it to the parent run."""
    record = load_study_record(tracking_uri, parent_run_id)
    digest = _digest(record)
    made = _built(out, digest)
    if made is None:
        made = write_report(record, out)
        with open(os.path.join(out, BUILT_FROM), "w", encoding="utf-8") as fh:
            json.dump({"digest": digest, "made": made}, fh,
                      default=lambda v: v.item() if hasattr(v, "item") else str(v))  # numpy scalars
    if log_to_parent:
        MlflowClient(tracking_uri).log_artifacts(parent_run_id, out, REPORT_DIR)
    made["record"] = record
    return made
