"""`python tuning/run_study.py STUDY.yaml [--profile NAME] [--set key=value ...] [--storage DIR|URI]
[--mlflow-uri URI] [--optuna-storage URL] [--address auto|HOST:6379|ray://HOST:10001] [--code ship|installed]
[--dashboard-host HOST] [--tensorboard] [--resume] [--dry-run]` (also `smart-study`): run a hyperparameter study.

A study file becomes a Ray Tune experiment: Optuna (define-by-run) suggests dotted config values,
each trial trains a `smart` GAN and reports every eval, ASHA stops weak trials, MLflow records a
parent run per study and a child run per trial (the driver: tuning/driver.py). Bad input: one line
`error: <key>: <why>` on stderr, exit 2, nothing started. A fault outside the trials (full disk,
tracking server or storage gone): one line and exit 1, with what is on disk kept for --resume.
Exit 1 when no trial produced a result.
"""
from __future__ import annotations

import json
import sys

from smart.cli import Parser, add_set_option, exit_now, overrides, run
from tuning.optuna_db import shown_url
from tuning.plan import Plan, ui_command
from tuning.study import load_study


def parser() -> Parser:
    """The CLI's arguments (also used by benchmarks/gpu_check.py, so its studies run as users run them)."""
    p = Parser(prog="python tuning/run_study.py", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("study", help="study YAML (studies/*.yaml)")
    p.add_argument("--profile", help="apply the study's named profile of overrides")
    add_set_option(p, "training.kimg=64 (a run config key) or budget.num_samples=4, "
                      "search.regularizer.weight.high=0.5 (study keys)")
    p.add_argument("--storage", help="where studies live: a directory (shared by all nodes on a cluster) or a "
                                     "URI such as s3://bucket/studies (default: the study's storage, then ./runs)")
    p.add_argument("--mlflow-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, then "
                                        "the study's mlflow.tracking_uri, then sqlite:///<storage>/mlflow.db)")
    p.add_argument("--optuna-storage", help="the Optuna study's database, an SQLAlchemy URL shared by the "
                                            "cluster, e.g. postgresql://host/optuna (default "
                                            "sqlite:///<storage>/<name>/optuna.db)")
    p.add_argument("--address", help="join this Ray cluster instead of starting a local one: auto (the "
                                     "cluster this machine belongs to), HOST:6379, or ray://HOST:10001")
    p.add_argument("--code", choices=("ship", "installed"), default="ship",
                   help="with --address: ship this tree's smart/ and tuning/ to the workers (runtime_env "
                        "py_modules; default), or use the copy installed in the cluster's image")
    p.add_argument("--dashboard-host", default="127.0.0.1",
                   help="interface of a locally started Ray dashboard (default 127.0.0.1; anything else "
                        "exposes it to the network and prints a warning)")
    p.add_argument("--tensorboard", action="store_true",
                   help="also write each trial's results as TensorBoard event files in its trial folder "
                        "(Ray Tune's TBXLogger; it loads torch in the driver, ~1 s)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted study in --storage")
    p.add_argument("--dry-run", action="store_true", help="validate and print the study; start nothing")
    return p


def _dry_run(plan: Plan) -> None:
    import yaml

    from tuning.space import SearchSpace

    study = plan.study
    print(f"# study {study.spec.name} (resolved; nothing started)")
    print(yaml.safe_dump(study.to_dict(), sort_keys=False, allow_unicode=True, default_flow_style=None).rstrip())
    print(f"# search space ({study.num_samples} trials, sampler {study.spec.sampler.kind}):")
    print("\n".join(SearchSpace(study).describe()))
    print(f"# storage: {plan.exp}")
    print(f"# mlflow:  {plan.tracking_uri or 'disabled'}")
    print(f"# optuna:  {shown_url(plan.optuna_storage) or 'in the searcher snapshots (no database)'}")


def _main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    plan = Plan(load_study(args.study, args.profile, list(overrides(args.sets).items())), args)
    if args.dry_run:
        _dry_run(plan)
        return 0
    from tuning.driver import run as run_driver
    from tuning.faults import StudyFault
    from tuning.trial_table import format_confirmation, format_table

    try:
        outcome = run_driver(plan)
    except StudyFault as fault:
        print(f"error: {fault}", file=sys.stderr)
        return 1
    study, summary = plan.study, outcome.summary
    if "verdict" in summary:
        print(f"\nverdict: {summary['verdict']}\n")
        print(format_confirmation(summary["confirmation"], study.spec.objective.metric))
        print("\nsearch:")
    print("\n" + format_table(summary, list(dict.fromkeys([*study.search_keys(), "seed"]))))
    if outcome.report:
        print(f"report: {outcome.report} (also in the parent run's artifacts, report/)")
    best, key = summary["best"], study.spec.objective.result_key()
    if best:
        print(f"\nbest: trial {best['trial_id']}  {key}={best['metrics'][key]:.4g}  {json.dumps(best['params'])}")
    print(f"summary: {outcome.summary_path}")
    if outcome.tracking_uri:
        print(f"compare the runs: {ui_command(outcome.tracking_uri)}")
    return 0 if best else 1


def main(argv=None) -> int:
    return run(_main, argv)


def cli() -> None:
    """`smart-study` and `python tuning/run_study.py`: main(), then a fast exit (smart.cli.exit_now)."""
    exit_now(main())


if __name__ == "__main__":
    cli()
