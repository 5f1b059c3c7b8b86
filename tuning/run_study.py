"""`python tuning/run_study.py STUDY.yaml [--profile NAME] [--set key=value ...] [--storage DIR|URI]
[--mlflow-uri URI] [--address auto|HOST:6379|ray://HOST:10001] [--code ship|installed]
[--dashboard-host HOST] [--resume] [--dry-run]`: run a hyperparameter study.

A study file becomes a Ray Tune experiment: Optuna (define-by-run) suggests dotted config values,
each trial trains a `smart` GAN and reports every eval, ASHA stops weak trials, MLflow records a
parent run per study and a child run per trial. Bad input: one line `error: <key>: <why>` on
stderr, exit 2, nothing started. Exit 1 when no trial produced a result.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

if __package__ in (None, ""):  # run as a script: import this tree's packages, not tuning/ itself
    sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from smart.config import ConfigError, parse_assignment  # noqa: E402
from tuning.study import Study, load_study  # noqa: E402

STUDY_FILE = "study.json"
SUMMARY_FILE = "summary.json"
DDP_DRIVER_MEMORY = 256 * 2**20  # what a multi-worker trial's own actor reserves (no CPU: it only waits)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other bad input
        raise ConfigError("usage", message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python tuning/run_study.py", description=__doc__.split("\n\n")[1].split("\n")[0])
    p.add_argument("study", help="study YAML (studies/*.yaml)")
    p.add_argument("--profile", help="apply the study's named profile of overrides")
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help="override a dotted key: a run config key (training.kimg=64) or a study key "
                        "(budget.num_samples=4, search.regularizer.weight.high=0.5); repeatable")
    p.add_argument("--storage", help="where studies live: a directory (shared by all nodes on a cluster) or a "
                                     "URI such as s3://bucket/studies (default: the study's storage, then ./runs)")
    p.add_argument("--mlflow-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI, then "
                                        "the study's mlflow.tracking_uri, then sqlite:///<storage>/mlflow.db)")
    p.add_argument("--address", help="join this Ray cluster instead of starting a local one: auto (the "
                                     "cluster this machine belongs to), HOST:6379, or ray://HOST:10001")
    p.add_argument("--code", choices=("ship", "installed"), default="ship",
                   help="with --address: ship this tree's smart/ and tuning/ to the workers (runtime_env "
                        "py_modules; default), or use the copy installed in the cluster's image")
    p.add_argument("--dashboard-host", default="127.0.0.1",
                   help="interface of a locally started Ray dashboard (default 127.0.0.1; anything else "
                        "exposes it to the network and prints a warning)")
    p.add_argument("--resume", action="store_true", help="continue the interrupted study in --storage")
    p.add_argument("--dry-run", action="store_true", help="validate and print the study; start nothing")
    return p


def resolve_tracking_uri(cli_uri: str | None, study_uri: str | None, storage: str) -> str:
    """--mlflow-uri, then $MLFLOW_TRACKING_URI, then the study's mlflow.tracking_uri, then
    sqlite:///<storage>/mlflow.db."""
    return (cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or study_uri
            or "sqlite:///" + os.path.join(storage, "mlflow.db"))


def ui_command(uri: str) -> str:
    return f"open {uri}" if uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {uri}"


class Plan:
    """Everything decided before anything starts: where the study lives and is tracked."""

    def __init__(self, study: Study, args):
        from tuning.storage import Storage

        self.study = study
        key = "--storage" if args.storage else "storage"
        self.storage = Storage(args.storage or study.spec.storage or "runs", key)
        self.exp = self.storage.sub(study.spec.name)
        self.resume = args.resume
        self.address = args.address
        self.profile = args.profile
        self.code = args.code
        self.dashboard_host = args.dashboard_host
        mlflow = study.spec.mlflow
        self.tracking_uri = self._tracking_uri(args.mlflow_uri, mlflow.tracking_uri) if mlflow.enabled else None
        self.stored = self._check_storage()

    def _tracking_uri(self, cli_uri, study_uri) -> str:
        local = self.storage.local_path
        if local is None and not (cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or study_uri):
            raise ConfigError("mlflow.tracking_uri", f"required when storage is a URI ({self.storage}): a sqlite "
                                                     "file cannot live there; give an MLflow server or database")
        return resolve_tracking_uri(cli_uri, study_uri, local or "")

    def _check_storage(self) -> dict | None:
        if not self.resume:
            if self.exp.exists():
                raise ConfigError("--storage", f"{self.exp} already holds study {self.study.spec.name!r}; "
                                               "pass --resume to continue it, or choose another --storage")
            return None
        if not self.exp.exists(STUDY_FILE):
            raise ConfigError("--resume", f"no study {self.study.spec.name!r} to resume in {self.storage}")
        stored = self.exp.read_json(STUDY_FILE)
        mine = self.study.to_dict()
        if stored["study"] != mine:
            diff = sorted(k for k in mine if stored["study"].get(k) != mine[k])
            raise ConfigError("--resume", f"the study differs from the one in {self.exp} "
                                          f"(differs in: {', '.join(diff)})")
        if stored["tracking_uri"] != self.tracking_uri:
            raise ConfigError("--mlflow-uri", f"the study was tracked at {stored['tracking_uri']}; "
                                              f"resume with the same tracking URI (got {self.tracking_uri})")
        return stored


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


def _trial_base(plan: Plan) -> dict:
    """The base run config every trial starts from, with the reference-statistics cache pinned to
    one absolute directory so that the driver prepares exactly what the workers read."""
    if plan.stored is not None:
        return plan.stored["trial_base"]
    from smart.assets import absolute_paths
    from smart.metrics.fid import default_cache_dir

    base = plan.study.base.to_dict()
    base["eval"]["cache_dir"] = os.path.abspath(base["eval"]["cache_dir"] or default_cache_dir())
    return absolute_paths(base)  # data, score model and extractor weights as the driver sees them


def _tuner(plan: Plan, base: dict):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from tuning.space import SearchSpace, make_sampler
    from tuning.tracking import MLflowCallback
    from tuning.trainable import train_trial, train_trial_ddp

    spec = plan.study.spec
    metric, mode = spec.objective.metric, spec.objective.mode
    res = spec.resources
    common = dict(base=base, metric=metric, mode=mode, threads=max(1, int(res.cpu)), study=spec.name,
                  snapshot_every=spec.mlflow.snapshot_every if plan.tracking_uri else 0)
    if res.workers == 1:
        trainable = tune.with_resources(tune.with_parameters(train_trial, **common),
                                        {"cpu": res.cpu, "gpu": res.gpu})
    else:  # the Tune trial only waits on its TorchTrainer, whose workers hold CPUs and GPUs
        trainable = tune.with_resources(
            tune.with_parameters(train_trial_ddp, **common, workers=res.workers, cpu=res.cpu, gpu=res.gpu,
                                 train_storage=plan.exp.sub("train").location), {"memory": DDP_DRIVER_MEMORY})
    if plan.resume:
        return tune.Tuner.restore(plan.exp.location, trainable, resume_errored=True)
    sched = spec.scheduler
    scheduler = None if sched.kind == "none" else ASHAScheduler(
        time_attr=sched.time_attr, grace_period=sched.grace_period,
        reduction_factor=sched.reduction_factor, max_t=plan.study.max_t)
    searcher = OptunaSearch(SearchSpace(plan.study), metric=metric, mode=mode, sampler=make_sampler(plan.study))
    callbacks = [MLflowCallback(plan.exp, base)] if plan.tracking_uri else []
    reporter = tune.CLIReporter(metric_columns=["kimg", metric], parameter_columns=plan.study.search_keys(),
                                max_report_frequency=15, sort_by_metric=True)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=searcher, scheduler=scheduler,
                                    num_samples=plan.study.num_samples, reuse_actors=True,
                                    max_concurrent_trials=spec.budget.max_concurrent),
        run_config=tune.RunConfig(name=spec.name, storage_path=plan.storage.location, callbacks=callbacks,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                  failure_config=tune.FailureConfig(max_failures=spec.budget.max_failures),
                                  progress_reporter=reporter, verbose=1),
    )


def _report(plan: Plan, runs: dict) -> None:
    """The study report from what MLflow holds, into <storage>/<name>/report and the parent run.
    A failure here costs the report, not the finished study."""
    from tuning.report import INDEX, REPORT_DIR, build

    local = plan.exp.local_path  # a study on object storage keeps its report in the parent run only
    out = os.path.join(local or tempfile.mkdtemp(prefix="smart-report-"), REPORT_DIR)
    try:
        build(plan.tracking_uri, runs["parent"], out, log_to_parent=True)
    except Exception as exc:  # noqa: BLE001 — the trials are done and recorded whatever happens here
        print(f"warning: the study report failed ({type(exc).__name__}: {exc}); "
              f"retry with: python tuning/report.py {plan.study.spec.name} --mlflow-uri {plan.tracking_uri}",
              file=sys.stderr)
        return
    print(f"report: {os.path.join(out, INDEX)} (also in the parent run's artifacts, {REPORT_DIR}/)")


def _run(plan: Plan) -> int:
    import optuna
    import ray

    from smart.assets import prepare_assets
    from smart.config import RunConfig
    from tuning.cluster import dashboard_lines, init_ray
    from tuning.results import build_summary, format_table
    from tuning.tracking import drop_lost_trials, finish_parent, start_parent

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # Tune's table reporter with our metric and search keys
    # one experiment snapshot per checkpoint is what we want (and costs ~10 ms); no warning
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    study, spec = plan.study, plan.study.spec
    base = _trial_base(plan)
    try:
        prepare_assets(RunConfig.from_dict(base))  # shared assets once, before any trial
    except ConfigError as exc:  # missing data, score model or extractor weights
        profiles = [p for p in plan.study.spec.profiles if p != plan.profile]
        hint = f"; or run this study's {' / '.join(f'--profile {p}' for p in profiles)}" if profiles else ""
        print(f"error: {exc}{hint}", file=sys.stderr)
        return 2

    started_ray = not ray.is_initialized()
    context = init_ray(plan.address, code=plan.code, dashboard_host=plan.dashboard_host) if started_ray \
        else ray.get_runtime_context()
    try:
        print("\n".join(dashboard_lines(context)), flush=True)
        if plan.stored is None:
            plan.exp.write_json(STUDY_FILE, {"study": study.to_dict(), "trial_base": base,
                                             "tracking_uri": plan.tracking_uri})
        runs = start_parent(study, plan.tracking_uri, plan.storage, plan.exp, plan.resume) \
            if plan.tracking_uri else None
        if runs:
            print(f"mlflow: experiment {spec.name!r}, parent run {runs['parent']}; compare runs with\n"
                  f"  {ui_command(plan.tracking_uri)}", flush=True)
        print(f"study {spec.name}: {study.num_samples} trials, {spec.budget.max_concurrent} at a time, "
              f"sampler {spec.sampler.kind}, scheduler {spec.scheduler.kind}; storage {plan.exp}", flush=True)

        results = _tuner(plan, base).fit()

        summary = build_summary(results, study)
        plan.exp.write_json(SUMMARY_FILE, summary)
        keys = [*study.search_keys(), "seed"]
        print("\n" + format_table(summary, [k for k in dict.fromkeys(keys)]))
        complete = len(summary["trials"]) == study.num_samples and all(
            t["status"] != "error" for t in summary["trials"])
        if runs:
            lost = drop_lost_trials(plan.exp, {t["trial_id"] for t in summary["trials"]})
            if lost:
                print(f"note: deleted {lost} MLflow run(s) of trials started after the interrupted study's "
                      "last snapshot (their work was redone by new trials)")
            finish_parent(runs, summary, spec.objective.metric, complete)
            if spec.mlflow.report:
                _report(plan, runs)
        best = summary["best"]
        if best:
            print(f"\nbest: trial {best['trial_id']}  {spec.objective.metric}={best['metrics'][spec.objective.metric]:.4g}"
                  f"  {json.dumps(best['params'])}")
        print(f"summary: {plan.exp.sub(SUMMARY_FILE)}")
        if runs:
            print(f"compare the runs: {ui_command(plan.tracking_uri)}")
        return 0 if best else 1
    finally:
        if started_ray:
            ray.shutdown()


def main(argv=None) -> int:
    try:
        args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
        sets = [parse_assignment(s) for s in args.sets]
        plan = Plan(load_study(args.study, args.profile, sets), args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        _dry_run(plan)
        return 0
    return _run(plan)


if __name__ == "__main__":
    sys.exit(main())
