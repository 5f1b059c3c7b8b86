"""`python tuning/report.py STUDY_NAME_OR_DIR [--mlflow-uri URI] [--out DIR] [--rerun-best]`: the
study report, rebuilt from MLflow alone.

Writes DIR/report.html (index), trials.csv, the plots as PNG (FID vs λ, vs t-range, over kimg,
importances, parallel coordinates, λ = 0 baseline vs best) and interactive HTML. `--rerun-best`
trains the best trial's exact config and seed again as one run (no Ray) and prints both results.
STUDY is a study's storage directory (runs/NAME, which knows its tracking URI) or a study name
(looked up at --mlflow-uri, else $MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db).
"""
from __future__ import annotations

import argparse
import csv
import html
import json
import os
import shutil
import sys
import tempfile

if __package__ in (None, ""):  # run as a script: import this tree's packages, not tuning/ itself
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from smart.config import ConfigError  # noqa: E402

os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # no progress bars in a report
REPORT_DIR = "report"
INDEX = "report.html"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError("usage", message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python tuning/report.py", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("study", help="a study's storage directory (runs/NAME) or its name")
    p.add_argument("--mlflow-uri", help="tracking URI (default: the study directory's, else $MLFLOW_TRACKING_URI, "
                                        "else sqlite:///runs/mlflow.db)")
    p.add_argument("--out", help="report directory (default STUDY_DIR/report, or runs/NAME/report)")
    p.add_argument("--rerun-best", action="store_true", help="train the best trial again and compare")
    return p


def locate(study: str, cli_uri: str | None) -> tuple[str, str, str]:
    """(tracking URI, parent run id, default report directory) of a study directory or name."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from tuning.report_data import find_parent
    from tuning.run_study import resolve_tracking_uri
    from tuning.tracking import read_runs

    if os.path.isdir(study):
        runs = read_runs(study)
        if runs is None:
            raise ConfigError("study", f"{study} holds no MLflow record of a study (mlflow_runs.json)")
        return cli_uri or runs["tracking_uri"], runs["parent"], os.path.join(study, REPORT_DIR)
    uri = resolve_tracking_uri(cli_uri, None, "runs")
    db = uri.removeprefix("sqlite:///") if uri.startswith("sqlite:///") else None
    if db is not None and not os.path.exists(db):  # MLflow would create an empty store there
        raise ConfigError("study", f"no study directory {study!r}, and no MLflow store at {uri}")
    try:
        found = find_parent(MlflowClient(uri), study)
    except MlflowException as exc:
        raise ConfigError("--mlflow-uri", f"cannot read {uri}: {str(exc).splitlines()[0]}") from None
    if found is None:
        raise ConfigError("study", f"no study directory {study!r} and no study called {study!r} tracked at {uri}")
    return uri, found[1], os.path.join("runs", study, REPORT_DIR)


# ---- the report ---------------------------------------------------------------------------------
def _table_rows(record) -> tuple[list[str], list[list]]:
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


def _baseline_vs_best(record, out: str) -> list[dict]:
    """The λ = 0 baseline's and the best trial's last sample pictures, side by side (the best
    λ > 0 trial when the baseline itself is best)."""
    from mlflow.tracking import MlflowClient

    from tuning.report_data import last_snapshot
    from tuning.report_plots import side_by_side
    from tuning.tracking import SNAPSHOT_DIR

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


def write_report(record, out: str) -> dict:
    """Every file of the report into `out`; returns what was made (for the caller and the tests)."""
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
            "shown": [(s["role"], s["trial"].trial_id) for s in shown]}


def build(tracking_uri: str, parent_run_id: str, out: str, log_to_parent: bool = False) -> dict:
    """Load the study from MLflow, write the report, optionally log it to the parent run."""
    from mlflow.tracking import MlflowClient

    from tuning.report_data import load_study_record

    record = load_study_record(tracking_uri, parent_run_id)
    made = write_report(record, out)
    if log_to_parent:
        MlflowClient(tracking_uri).log_artifacts(parent_run_id, out, REPORT_DIR)
    made["record"] = record
    return made


# ---- rerun of the best trial -------------------------------------------------------------------
def rerun_best(record) -> dict:
    """Train the best trial's logged config (its seed included) to the kimg it reached."""
    import torch
    import yaml
    from mlflow.tracking import MlflowClient

    from smart.assets import prepare_assets
    from smart.config import RunConfig
    from smart.loop import Trainer
    from tuning.tracking import CONFIG_ARTIFACT

    best = record.best
    if best is None:
        raise ConfigError("--rerun-best", "the study has no scored trial")
    with tempfile.TemporaryDirectory() as tmp:
        path = MlflowClient(record.tracking_uri).download_artifacts(best.run_id, CONFIG_ARTIFACT, tmp)
        with open(path, encoding="utf-8") as fh:
            cfg = RunConfig.from_dict(yaml.safe_load(fh))
    torch.set_num_threads(max(1, int(float(record.parent_params.get("study.resources.cpu", 1)))))
    prepare_assets(cfg)
    metrics = Trainer(cfg).train(until_kimg=best.kimg)
    return {"trial_id": best.trial_id, "seed": cfg.seed, "kimg": metrics["kimg"],
            "study": record.objective(best), "rerun": metrics[record.metric]}


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
        uri, parent, default_out = locate(args.study, args.mlflow_uri)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from tuning.results import format_table

    out = args.out or default_out
    made = build(uri, parent, out)
    record = made["record"]
    print(format_table({"metric": record.metric, "trials": [
        {"trial_id": t.trial_id, "status": t.status, "metrics": t.metrics, "config": t.searched}
        for t in record.trials]}, list(dict.fromkeys([*record.search_keys(), "seed"]))))
    for note in made["notes"]:
        print(f"note: {note}")
    print(f"report: {os.path.join(out, INDEX)}")
    if args.rerun_best:
        result = rerun_best(record)
        print(f"rerun of best trial {result['trial_id']} (seed {result['seed']}, to kimg {result['kimg']:g}): "
              f"{record.metric} in the study {result['study']:.6g}, rerun {result['rerun']:.6g}, "
              f"difference {result['rerun'] - result['study']:+.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
