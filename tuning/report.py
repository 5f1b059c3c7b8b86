"""`python tuning/report.py STUDY_NAME_OR_DIR [--mlflow-uri URI] [--out DIR] [--rerun-best]`: the
study report, rebuilt from MLflow alone.

Writes DIR/report.html (index), trials.csv, the plots as PNG (FID vs λ, vs t-range, over kimg,
importances, parallel coordinates, λ = 0 baseline vs best) and interactive HTML. `--rerun-best`
trains the best trial's exact config and seed again as one run (no Ray) and prints both results.
STUDY is a study's storage directory (runs/NAME, which knows its tracking URI) or a study name
(looked up at --mlflow-uri, else $MLFLOW_TRACKING_URI, else sqlite:///runs/mlflow.db).
Imports neither Ray nor torch (torch only for --rerun-best).
"""
from __future__ import annotations

import os

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from smart.cli import Parser, exit_now, run
from smart.config import ConfigError
from tuning.plan import resolve_tracking_uri
from tuning.report_data import find_parent
from tuning.report_writer import INDEX, REPORT_DIR, build
from tuning.runs_file import RunsFile
from tuning.storage import Storage
from tuning.confirm_stats import verdict
from tuning.trial_table import format_confirmation, format_table


def _parser() -> Parser:
    p = Parser(prog="python tuning/report.py", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("study", help="a study's storage directory (runs/NAME) or its name")
    p.add_argument("--mlflow-uri", help="tracking URI (default: the study directory's, else $MLFLOW_TRACKING_URI, "
                                        "else sqlite:///runs/mlflow.db)")
    p.add_argument("--out", help="report directory (default STUDY_DIR/report, or runs/NAME/report)")
    p.add_argument("--rerun-best", action="store_true", help="train the best trial again and compare")
    return p


def locate(study: str, cli_uri: str | None) -> tuple[str, str, str]:
    """(tracking URI, parent run id, default report directory) of a study directory or name."""
    if os.path.isdir(study):
        runs = RunsFile.read(Storage(study, "study"))
        if runs is None:
            raise ConfigError("study", f"{study} holds no MLflow record of a study (tracking/mlflow_runs.json)")
        return cli_uri or runs.tracking_uri, runs.parent, os.path.join(study, REPORT_DIR)
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


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    uri, parent, default_out = locate(args.study, args.mlflow_uri)
    out = args.out or default_out
    made = build(uri, parent, out)
    record = made["record"]
    if made["confirmation"] is not None:
        print(f"verdict: {verdict(made['confirmation'], record.metric, record.mode)}\n")
        print(format_confirmation(made["confirmation"], record.metric) + "\n")
    print(format_table({"metric": record.metric, "trials": [
        {"trial_id": t.trial_id, "status": t.status, "metrics": t.metrics, "config": t.searched}
        for t in record.trials]}, list(dict.fromkeys([*record.search_keys(), "seed"]))))
    for note in made["notes"]:
        print(f"note: {note}")
    print(f"report: {os.path.join(out, INDEX)}")
    if args.rerun_best:
        from tuning.rerun import rerun_best

        result = rerun_best(record)
        print(f"rerun of best trial {result['trial_id']} (seed {result['seed']}, to kimg {result['kimg']:g}): "
              f"{result['metric']} in the study {result['study']:.6g}, rerun {result['rerun']:.6g}, "
              f"difference {result['rerun'] - result['study']:+.3g}")
    return 0


def main(argv=None) -> int:
    return run(_main, argv)


def cli() -> None:
    """`smart-report` and `python tuning/report.py`: main(), then a fast exit (smart.cli.exit_now)."""
    exit_now(main())


if __name__ == "__main__":
    cli()
