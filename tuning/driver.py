"""The study driver: prepare → launch → summarize, around ONE `trial_base` run config that every
trial, MLflow record and the summary derive from (the study's base config with its paths made
absolute and its reference-statistics cache pinned, or the one a resumed study stored).

- prepare: resolve the trial base, check that the tracking server and a shared Optuna database
  (--optuna-storage) answer, check the shared assets (image data, score model, extractor weights),
  take the study's lock. All before Ray starts; a problem is bad input (ConfigError, exit 2) and
  nothing has been started.
- launch: start (or join) Ray and meanwhile, on a thread, compute what the assets still lack (FID
  reference statistics, which nothing can refuse) and import what launch needs; record the study
  (study.json), open the MLflow parent run, run the
  Tune experiment, then the confirmation experiment when the study has a `confirm` section
  (tuning/confirm.py).
- summarize: summary.json (with the confirmation and its verdict), the parent run's result, the best
  trial's generator and the report (each on a thread while Ray shuts down; their imports are done
  in the loop's tail, tuning/warm_finish.py).

A fault outside the trials (full disk, a tracking server or storage URI that stops answering)
becomes one StudyFault line (tuning/faults.py); what is on disk stays for `--resume`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from smart.config import ConfigError, RunConfig
from tuning.faults import FaultPlaces, check_reachable, quiet_tracebacks
from tuning.optuna_db import shown_url
from tuning.plan import STUDY_FILE, SUMMARY_FILE, Plan, ui_command
from tuning.status import SCORED, STAGE_TAG
from tuning.timings import Timings, process_age

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
    from smart.metrics import default_cache_dir

    base = plan.study.base.to_dict()
    base["eval"]["cache_dir"] = os.path.abspath(base["eval"]["cache_dir"] or default_cache_dir())
    return RunConfig.from_dict(absolute_paths(base))  # data, score model and extractor weights as the driver sees them


def prepare(plan: Plan) -> RunConfig:
    """Everything that can refuse the study, before Ray starts; returns the trial base."""
    from smart.assets import check_assets
    from tuning.optuna_db import check_database

    base = trial_base(plan)
    if plan.tracking_uri:
        check_reachable(plan.tracking_uri, plan.tracking_key)
    if plan.optuna_shared:  # the default sqlite file is created with the study (in launch)
        check_database(plan.optuna_storage, plan.study.spec.name, plan.resume)
    try:
        check_assets(base)
    except ConfigError as exc:  # missing data, score model or extractor weights
        profiles = [p for p in plan.study.spec.profiles if p != plan.profile]
        hint = f"; or run this study's {' / '.join(f'--profile {p}' for p in profiles)}" if profiles else ""
        raise ConfigError(exc.key, exc.why + hint) from None
    plan.lock.acquire()
    plan.check_storage()  # again, under the lock: no other driver started or finished it meanwhile
    return base


def _preload(base: RunConfig, tracking_uri: str | None, timings: Timings) -> Future:
    """On a thread while Ray starts (`ray.init` mostly waits on its daemons): the shared assets'
    remaining work, once, before any trial (FID reference statistics; `check_assets` has passed, so
    nothing here refuses the study), the imports `launch` needs (Tune, Optuna, MLflow) and MLflow's
    database store opened (a new database gets its schema: ~1 s). Nothing of the study is recorded
    before Ray is up."""
    def work():
        with timings.phase("preload"):
            from smart.metrics import prepare_metrics

            prepare_metrics(base)
            import optuna  # noqa: F401
            import tuning.fault_watch  # noqa: F401
            import tuning.trial_timings  # noqa: F401
            if tracking_uri:
                import tuning.tracking_callback  # noqa: F401
                if not tracking_uri.startswith(("http:", "https:", "databricks")):
                    from mlflow.tracking import MlflowClient

                    MlflowClient(tracking_uri).search_experiments(max_results=1)

    pool = ThreadPoolExecutor(1, thread_name_prefix="preload")
    try:
        return pool.submit(work)
    finally:
        pool.shutdown(wait=False)


def _loggers(tensorboard: bool) -> list:
    """Tune's per-trial result files: result.json and progress.csv, and TensorBoard event files on
    request (tensorboardX loads torch in the driver: ~1 s as the loop starts)."""
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback, TBXLoggerCallback

    return [JsonLoggerCallback(), CSVLoggerCallback()] + ([TBXLoggerCallback()] if tensorboard else [])


@contextlib.contextmanager
def _ray(plan: Plan, timings: Timings):
    import ray

    from tuning.cluster import dashboard_lines, init_ray

    started = not ray.is_initialized()
    with timings.phase("ray_start"):
        context = init_ray(plan.address, code=plan.code, dashboard_host=plan.dashboard_host) if started \
            else ray.get_runtime_context()

    def stop() -> None:
        """Shut down the Ray this study started (once; a joined cluster stays up)."""
        if started and ray.is_initialized():
            with timings.phase("ray_shutdown"):
                ray.shutdown()

    try:
        log.info("\n".join(dashboard_lines(context)))
        yield stop
    finally:
        stop()


def _trainable(plan: Plan, base: RunConfig, replicates: int):
    """The Tune trainable of this study's trials, `replicates` seeds each."""
    from ray import tune

    from tuning.trainable import train_trial, train_trial_ddp

    spec = plan.study.spec
    res = spec.resources
    common = dict(base=base, metric=spec.objective.metric, mode=spec.objective.mode, threads=max(1, int(res.cpu)),
                  study=spec.name, snapshot_every=spec.mlflow.snapshot_every if plan.tracking_uri else 0)
    if res.workers == 1:
        return tune.with_resources(tune.with_parameters(train_trial, **common, replicates=replicates),
                                   {"cpu": res.cpu, "gpu": res.gpu})
    # the Tune trial only waits on its TorchTrainer, whose workers hold CPUs and GPUs
    return tune.with_resources(
        tune.with_parameters(train_trial_ddp, **common, reduce=spec.objective.reduce, workers=res.workers,
                             cpu=res.cpu, gpu=res.gpu,
                             train_storage=plan.exp.sub("train").location), {"memory": DDP_DRIVER_MEMORY})


def _run_config(plan: Plan, name: str, storage_path: str, callbacks: list):
    from ray import tune

    from tuning.reporter import Reporter
    from tuning.trainable import keep_checkpoints

    spec = plan.study.spec
    metric, mode, key = spec.objective.metric, spec.objective.mode, spec.objective.result_key()
    reporter = Reporter(metric_columns=list(dict.fromkeys(["kimg", metric, key])),
                        parameter_columns=list(dict.fromkeys([*plan.study.search_keys(), "seed"])),
                        max_report_frequency=15, sort_by_metric=True)
    return tune.RunConfig(name=name, storage_path=storage_path, callbacks=callbacks,
                          checkpoint_config=keep_checkpoints(tune.CheckpointConfig, spec.objective.reduce, metric, mode),
                          failure_config=tune.FailureConfig(max_failures=spec.budget.max_failures),
                          progress_reporter=reporter, verbose=1)


def _tuner(plan: Plan, base: RunConfig, callbacks: list):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    from tuning.optuna_db import open_storage
    from tuning.results import trial_dirname
    from tuning.searcher import StudySearch
    from tuning.space import SearchSpace, make_sampler

    spec = plan.study.spec
    metric, mode, key = spec.objective.metric, spec.objective.mode, spec.objective.result_key()
    trainable = _trainable(plan, base, spec.budget.replicates)
    if plan.resume:
        return tune.Tuner.restore(plan.exp.location, trainable, resume_errored=True)
    sched = spec.scheduler
    scheduler = None if sched.kind == "none" else ASHAScheduler(
        time_attr=sched.time_attr, grace_period=sched.grace_period,
        reduction_factor=sched.reduction_factor, max_t=plan.study.max_t)
    searcher = StudySearch(SearchSpace(plan.study), metric=key, mode=mode, sampler=make_sampler(plan.study),
                           study_name=spec.name,
                           storage=open_storage(plan.optuna_storage) if plan.optuna_storage else None)
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(metric=key, mode=mode, search_alg=searcher, scheduler=scheduler,
                                    num_samples=plan.study.num_samples, reuse_actors=True,
                                    max_concurrent_trials=spec.budget.max_concurrent,
                                    trial_dirname_creator=trial_dirname),
        run_config=_run_config(plan, spec.name, plan.storage.location, callbacks),
    )


def _confirm_tuner(plan: Plan, base: RunConfig, search_summary: dict, callbacks: list):
    """The confirmation experiment (tuning/confirm.py): one trial per (configuration, fresh seed),
    no scheduler (each trains to the full training.kimg); restored when it already exists."""
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from tuning.confirm import CONFIRM_DIR, param_space, points
    from tuning.results import trial_dirname

    spec = plan.study.spec
    trainable = _trainable(plan, base, 1)
    where = plan.exp.sub(CONFIRM_DIR)
    if plan.resume and tune.Tuner.can_restore(where.location):
        return tune.Tuner.restore(where.location, trainable, resume_errored=True)
    todo = points(plan.study, search_summary, base)
    log.info("confirmation: %d trials (%d configurations × %d fresh seeds), each to %g kimg", len(todo),
             len(todo) // spec.confirm.seeds, spec.confirm.seeds, base.training.kimg)
    return tune.Tuner(
        trainable, param_space=param_space(todo),
        tune_config=tune.TuneConfig(metric=spec.objective.result_key(), mode=spec.objective.mode,
                                    search_alg=BasicVariantGenerator(points_to_evaluate=todo,
                                                                     max_concurrent=spec.budget.max_concurrent),
                                    num_samples=len(todo), reuse_actors=True, trial_dirname_creator=trial_dirname),
        run_config=_run_config(plan, CONFIRM_DIR, plan.exp.location, callbacks),
    )


def launch(plan: Plan, base: RunConfig, places, timings: Timings):
    """Record the study, open its parent run and run the Tune experiment, then (with `confirm`)
    the confirmation experiment; returns (runs file or None, the search's ResultGrid, the
    confirmation's ResultGrid or None). Ray is up. Each experiment's timings go into `timings`."""
    import optuna

    from tuning.fault_watch import FaultWatch
    from tuning.results import build_summary
    from tuning.trial_timings import TrialTimings
    from tuning.tracking import start_parent
    from tuning.tracking_callback import MLflowCallback
    from tuning.warm_finish import WarmFinish

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"  # Tune's table reporter with our metric and search keys
    os.environ["TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"] = "1"  # Tune's result files are chosen here (_loggers)
    # one experiment snapshot per checkpoint is what we want (and costs ~10 ms); no warning
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    study, spec = plan.study, plan.study.spec
    if plan.stored is None:
        plan.exp.write_json(STUDY_FILE, {"study": study.to_dict(), "trial_base": base.to_dict(),
                                         "tracking_uri": plan.tracking_uri,
                                         "optuna_storage": shown_url(plan.optuna_storage)})
    with timings.phase("mlflow_parent"):
        runs = (start_parent(study, plan.tracking_uri, plan.storage, plan.exp, plan.resume)
                if plan.tracking_uri else None)
    if runs:
        log.info("mlflow: experiment %r, parent run %s; compare runs with\n  %s", spec.name, runs.parent,
                 ui_command(plan.tracking_uri))
    if plan.optuna_storage:
        log.info("optuna: study %r in %s; look at it with\n  optuna-dashboard %s", spec.name,
                 shown_url(plan.optuna_storage), shown_url(plan.optuna_storage))
    log.info("study %s: %d trials, %d at a time, sampler %s, scheduler %s; storage %s", spec.name, study.num_samples,
             spec.budget.max_concurrent, spec.sampler.kind, spec.scheduler.kind, plan.exp)

    def callbacks(stage: str) -> list:
        return [FaultWatch(places), TrialTimings(), *_loggers(plan.tensorboard)] + (
            [MLflowCallback(plan.exp, base, spec.objective.metric, tags={STAGE_TAG: stage})] if runs else [])

    def fit(tuner, used: list, phase: str):
        with timings.phase(phase):
            grid = tuner.fit()
        for callback in used:
            for name, (seconds, count) in getattr(callback, "timings", Timings()).totals.items():
                timings.add(name, seconds, count)
        return grid

    search = callbacks("search")
    # the finish's imports (_keep_generator: torch; _report: its plots and fANOVA), in the loop's tail
    finish = (["torch"] if runs else []) + (["tuning.report_plots", "optuna.importance"]
                                            if runs and spec.mlflow.report else [])
    search.append(WarmFinish(finish, study.num_samples))
    with timings.phase("tune_setup"):  # the searcher (Optuna), the scheduler, the trainable's name
        tuner = _tuner(plan, base, search)
    results = fit(tuner, search, "tuning_loop")
    if spec.confirm is None:
        return runs, results, None
    if len(results) < study.num_samples or results.num_terminated + results.num_errors < len(results):
        return runs, results, None  # the search was interrupted: --resume finishes it, then confirms
    searched = build_summary(results, study, base)
    if not any(t["status"] in SCORED for t in searched["trials"]):
        log.warning("warning: no search trial produced a result; nothing to confirm")
        return runs, results, None
    confirm = callbacks("confirm")
    return runs, results, fit(_confirm_tuner(plan, base, searched, confirm), confirm, "confirmation")


def _report(plan: Plan, runs, timings: Timings) -> str | None:
    """The study report from what MLflow holds, into <storage>/<name>/report and the parent run.
    A failure here costs the report, not the finished study."""
    from tuning.report_writer import INDEX, REPORT_DIR, build

    local = plan.exp.local_path  # a study on object storage keeps its report in the parent run only
    out = os.path.join(local or tempfile.mkdtemp(prefix="smart-report-"), REPORT_DIR)
    try:
        with timings.phase("report"):
            build(plan.tracking_uri, runs.parent, out, log_to_parent=True)
    except Exception as exc:  # noqa: BLE001 — the trials are done and recorded whatever happens here
        where = local or f"{plan.study.spec.name} --mlflow-uri {plan.tracking_uri}"
        log.warning("warning: the study report failed (%s: %s); retry with: python tuning/report.py %s",
                    type(exc).__name__, exc, where)
        return None
    return os.path.join(out, INDEX)


def _keep_generator(plan: Plan, runs, results, trial_id: str, timings: Timings) -> str | None:
    """Log the best search trial's kept generator to its MLflow run; returns its artifact URI."""
    from ray.tune.result import TRIAL_ID

    from tuning.results import kept_checkpoint

    result = next(r for r in results if (r.metrics or {}).get(TRIAL_ID) == trial_id)
    checkpoint = kept_checkpoint(result, plan.study.spec.objective)
    if checkpoint is None or trial_id not in runs.trials:
        return None
    with timings.phase("generator"):  # the driver's first torch import when the reference statistics were cached
        from tuning.artifacts import log_generator

        uri = log_generator(runs.tracking_uri, runs.trials[trial_id], checkpoint)
    log.info("generator of the best trial %s: %s (python -m smart.generate samples from it)", trial_id, uri)
    return uri


def _with_confirmation(summary: dict, confirmed, base: RunConfig, spec) -> dict:
    """summary.json with the verdict first and the confirmation's entries (tuning/confirm.py)."""
    from tuning.confirm import confirmation, runs_of
    from tuning.confirm_stats import verdict

    metric, mode = spec.objective.metric, spec.objective.mode
    entries = confirmation(runs_of(confirmed, base, spec.objective.result_key()), mode)  # per seed: the reduced value
    done = confirmed.num_terminated + confirmed.num_errors == len(confirmed)
    sentence = verdict(entries, metric, mode) if done else "the confirmation was interrupted; --resume finishes it"
    return {"verdict": sentence, **summary, "confirmation": entries}


def summarize(plan: Plan, base: RunConfig, results, runs, timings: Timings, confirmed=None,
              meanwhile=lambda: None) -> Outcome:
    """summary.json, the parent run's result, then the best trial's generator and the report, each
    on a thread while `meanwhile` (Ray's shutdown) runs; summary.json is written again at the end
    with the generator and the study's `timings` (tuning/timings.py), the report's included."""
    from mlflow.tracking import MlflowClient

    from tuning.results import build_summary
    from tuning.runs_file import RunsFile
    from tuning.tracking import close_parent, drop_lost_trials, record_best

    study, spec = plan.study, plan.study.spec
    with timings.phase("summary"):
        summary = build_summary(results, study, base)
    complete = len(summary["trials"]) == study.num_samples and all(t["status"] != "error" for t in summary["trials"])
    kept = {t["trial_id"] for t in summary["trials"]}  # the trials whose MLflow runs stay
    if confirmed is not None:
        summary = _with_confirmation(summary, confirmed, base, spec)
        complete = complete and not any(r.error for r in confirmed)
        kept |= {r.metrics["trial_id"] for r in confirmed if r.metrics}
    plan.exp.write_json(SUMMARY_FILE, summary)  # first, without waiting on MLflow
    if runs:
        with timings.phase("mlflow_finish"):
            runs = RunsFile.read(plan.exp)  # as the experiments' MLflowCallbacks left it
            lost = drop_lost_trials(runs, kept)
            if lost:
                log.info("note: deleted %d MLflow run(s) of trials started after the interrupted study's last "
                         "snapshot (their work was redone by new trials)", lost)
            if "verdict" in summary:
                MlflowClient(runs.tracking_uri).set_tag(runs.parent, "verdict", summary["verdict"])
            record_best(runs, summary, spec.objective.result_key())
    # what reads MLflow and the trial checkpoints, not Ray, is done while Ray stops
    with ThreadPoolExecutor(2, thread_name_prefix="finish") as pool:
        generator = report = None
        if runs and summary["best"]:
            generator = pool.submit(_keep_generator, plan, runs, results, summary["best"]["trial_id"], timings)
        if runs and spec.mlflow.report:
            report = pool.submit(_report, plan, runs, timings)
        meanwhile()
        if generator is not None:
            summary["best"]["generator"] = generator.result()
        report = report.result() if report is not None else None
    summary["timings"] = timings.to_dict()
    plan.exp.write_json(SUMMARY_FILE, summary)
    if runs:
        close_parent(runs, summary, complete)  # the parent's copy of summary.json is the final one
    return Outcome(summary, plan.exp.sub(SUMMARY_FILE).location, plan.tracking_uri, report)


def run(plan: Plan) -> Outcome:
    """prepare → launch → summarize. Raises ConfigError (nothing started) or StudyFault; the lock
    is given back however it ends."""
    places = FaultPlaces(plan.storage, plan.storage_key, plan.exp, plan.tracking_uri, plan.tracking_key)
    timings = Timings()
    age = process_age()
    if age is not None:
        timings.add("startup", age)  # interpreter start and imports
    try:
        with timings.phase("prepare"):
            base = prepare(plan)
        preloading = _preload(base, plan.tracking_uri, timings)
        with quiet_tracebacks(places):
            with _ray(plan, timings) as stop_ray:
                preloading.result()
                runs, results, confirmed = launch(plan, base, places, timings)
                return summarize(plan, base, results, runs, timings, confirmed, meanwhile=stop_ray)
    except ConfigError:
        raise
    except Exception as exc:
        fault = places.fault_of(exc)
        if fault is None:
            raise
        raise fault from exc
    finally:
        plan.lock.release()
