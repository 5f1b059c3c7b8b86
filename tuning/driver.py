"""The study driver: prepare → launch → summarize, around ONE `trial_base` run config that every
trial, MLflow record and the summary derive from (the study's base config with its paths made
absolute and its reference-statistics cache pinned, or the one a resumed study stored).

- prepare: resolve the trial base, check that the tracking server answers, prepare the shared
  assets (data, score model, reference statistics), take the study's lock. All before Ray starts;
  a problem is bad input (ConfigError, exit 2) and nothing has been started.
- launch: start (or join) Ray, record the study (study.json), open the MLflow parent run, run the
  Tune experiment.
- summarize: summary.json, the parent run's result, the report.

A fault outside the trials (full disk, a tracking server or storage URI that stops answering)
becomes one StudyFault line (tuning/faults.py); what is on disk stays for `--resume`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from dataclasses import dataclass

from smart.config import ConfigError, RunConfig
from tuning.faults import FaultPlaces, check_reachable, quiet_tracebacks
from tuning.plan import STUDY_FILE, SUMMARY_FILE, Plan, ui_command

log = logging.getLogger(__name__)

DDP_DRIVER_MEMORY = 256 * 2**20  # what a multi-worker trial's own actor reserves (no CPU: it only waits)


@dataclass
class Outcome:
    """What a study produced, for the CLI to print."""

    summary: dict
    summary_path: str
    tracking_uri: str | None
    report: str | None        # the report's index page (None when it failed or is off)


def trial_base(plan: Plan) -> RunConfig:
    """The base run config every trial starts from, with the reference-statistics cache pinned to
    one absolute directory so that the driver prepares exactly what the workers read."""
    if plan.stored is not None:
        return RunConfig.from_dict(plan.stored["trial_base"])
    from smart.assets import absolute_paths
    from smart.metrics.fid import default_cache_dir

    base = plan.study.base.to_dict()
    base["eval"]["cache_dir"] = os.path.abspath(base["eval"]["cache_dir"] or default_cache_dir())
    return RunConfig.from_dict(absolute_paths(base))  # data, score model and extractor weights as the driver sees them


def prepare(plan: Plan) -> RunConfig:
    """Everything that can refuse the study, before Ray starts; returns the trial base."""
    from smart.assets import prepare_assets

    base = trial_base(plan)
    if plan.tracking_uri:
        check_reachable(plan.tracking_uri, plan.tracking_key)
    try:
        prepare_assets(base)  # shared assets once, before any trial
    except ConfigError as exc:  # missing data, score model or extractor weights
        profiles = [p for p in plan.study.spec.profiles if p != plan.profile]
        hint = f"; or run this study's {' / '.join(f'--profile {p}' for p in profiles)}" if profiles else ""
        raise ConfigError(exc.key, exc.why + hint) from None
    plan.lock.acquire()
    plan.check_storage()  # again, under the lock: no other driver started or finished it meanwhile
    return base


@contextlib.contextmanager
def _ray(plan: Plan):
    import ray

    from tuning.cluster import dashboard_lines, init_ray

    started = not ray.is_initialized()
    context = init_ray(plan.address, code=plan.code, dashboard_host=plan.dashboard_host) if started \
        else ray.get_runtime_context()
    try:
        log.info("\n".join(dashboard_lines(context)))
        yield
    finally:
        if started:
            ray.shutdown()


def _tuner(plan: Plan, base: RunConfig, callbacks: list):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    from tuning.results import trial_dirname
    from tuning.space import SearchSpace, make_sampler
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
    reporter = tune.CLIReporter(metric_columns=["kimg", metric], parameter_columns=plan.study.search_keys(),
                                max_report_frequency=15, sort_by_metric=True)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=metric, mode=mode, search_alg=searcher, scheduler=scheduler,
                                    num_samples=plan.study.num_samples, reuse_actors=True,
                                    max_concurrent_trials=spec.budget.max_concurrent,
                                    trial_dirname_creator=trial_dirname),
        run_config=tune.RunConfig(name=spec.name, storage_path=plan.storage.location, callbacks=callbacks,
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                  failure_config=tune.FailureConfig(max_failures=spec.budget.max_failures),
                                  progress_reporter=reporter, verbose=1),
    )


def launch(plan: Plan, base: RunConfig, places):
    """Record the study, open its parent run and run the Tune experiment; returns (runs file or
    None, Tune's ResultGrid). Ray is up."""
    import optuna

    from tuning.fault_watch import FaultWatch
    from tuning.tracking import start_parent
    from tuning.tracking_callback import MLflowCallback

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # Tune's table reporter with our metric and search keys
    # one experiment snapshot per checkpoint is what we want (and costs ~10 ms); no warning
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    study, spec = plan.study, plan.study.spec
    if plan.stored is None:
        plan.exp.write_json(STUDY_FILE, {"study": study.to_dict(), "trial_base": base.to_dict(),
                                         "tracking_uri": plan.tracking_uri})
    runs = start_parent(study, plan.tracking_uri, plan.storage, plan.exp, plan.resume) if plan.tracking_uri else None
    if runs:
        log.info("mlflow: experiment %r, parent run %s; compare runs with\n  %s", spec.name, runs.parent,
                 ui_command(plan.tracking_uri))
    log.info("study %s: %d trials, %d at a time, sampler %s, scheduler %s; storage %s", spec.name, study.num_samples,
             spec.budget.max_concurrent, spec.sampler.kind, spec.scheduler.kind, plan.exp)
    callbacks = [FaultWatch(places)] + ([MLflowCallback(plan.exp, base, spec.objective.metric)] if runs else [])
    return runs, _tuner(plan, base, callbacks).fit()


def _report(plan: Plan, runs) -> str | None:
    """The study report from what MLflow holds, into <storage>/<name>/report and the parent run.
    A failure here costs the report, not the finished study."""
    from tuning.report_writer import INDEX, REPORT_DIR, build

    local = plan.exp.local_path  # a study on object storage keeps its report in the parent run only
    out = os.path.join(local or tempfile.mkdtemp(prefix="smart-report-"), REPORT_DIR)
    try:
        build(plan.tracking_uri, runs.parent, out, log_to_parent=True)
    except Exception as exc:  # noqa: BLE001 — the trials are done and recorded whatever happens here
        where = local or f"{plan.study.spec.name} --mlflow-uri {plan.tracking_uri}"
        log.warning("warning: the study report failed (%s: %s); retry with: python tuning/report.py %s",
                    type(exc).__name__, exc, where)
        return None
    return os.path.join(out, INDEX)


def summarize(plan: Plan, base: RunConfig, results, runs) -> Outcome:
    from tuning.results import build_summary
    from tuning.runs_file import RunsFile
    from tuning.tracking import drop_lost_trials, finish_parent

    study, spec = plan.study, plan.study.spec
    summary = build_summary(results, study, base)
    plan.exp.write_json(SUMMARY_FILE, summary)
    complete = len(summary["trials"]) == study.num_samples and all(t["status"] != "error" for t in summary["trials"])
    report = None
    if runs:
        runs = RunsFile.read(plan.exp)  # as the experiment's MLflowCallback left it
        lost = drop_lost_trials(runs, {t["trial_id"] for t in summary["trials"]})
        if lost:
            log.info("note: deleted %d MLflow run(s) of trials started after the interrupted study's last "
                     "snapshot (their work was redone by new trials)", lost)
        finish_parent(runs, summary, spec.objective.metric, complete)
        if spec.mlflow.report:
            report = _report(plan, runs)
    return Outcome(summary, plan.exp.sub(SUMMARY_FILE).location, plan.tracking_uri, report)


def run(plan: Plan) -> Outcome:
    """prepare → launch → summarize. Raises ConfigError (nothing started) or StudyFault; the lock
    is given back however it ends."""
    places = FaultPlaces(plan.storage, plan.storage_key, plan.exp, plan.tracking_uri, plan.tracking_key)
    try:
        base = prepare(plan)
        with quiet_tracebacks(places):
            with _ray(plan):
                runs, results = launch(plan, base, places)
            return summarize(plan, base, results, runs)
    except ConfigError:
        raise
    except Exception as exc:
        fault = places.fault_of(exc)
        if fault is None:
            raise
        raise fault from exc
    finally:
        plan.lock.release()
