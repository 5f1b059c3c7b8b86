"""The study file: one pydantic model validates all of it (base run config, objective, search space,
sampler, budget, scheduler, resources, MLflow, profiles) before anything starts.

Every problem becomes a ``ConfigError(key, why)`` naming the dotted key, e.g.
``search.regularizer.weight.low: must be > 0``.
"""
from __future__ import annotations

import itertools
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from smart.config import ConfigError, RunConfig, active_overrides, config_keys, load_yaml, set_dotted
from smart.metrics import reported_metrics
from tuning.status import best_key

Scalar = Union[bool, int, float, str]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ---- search-space entries (keyed by the dotted config key they set) ----------------------------
class _Entry(_Strict):
    def keys(self, key: str) -> list[str]:
        """The config keys this entry sets."""
        return [key]

    def check(self, key: str) -> None:
        """Checks beyond field types (ranges not empty, ...)."""


class _Bounded(_Entry):
    grid: list[float] | None = Field(None, min_length=1, description="values for sampler.kind: grid")

    def check(self, key: str) -> None:
        if not self.low < self.high:
            raise ConfigError(f"search.{key}", f"empty range: low ({self.low}) must be < high ({self.high})")

    def extremes(self, key: str) -> list[dict]:
        """Assignments that must all make valid run configs."""
        return [{key: v} for v in (self.low, self.high, *(self.grid or []))]

    def grid_values(self, key: str) -> list:
        if self.grid is None:
            raise ConfigError(f"search.{key}.grid", "required when sampler.kind is grid")
        return [{key: v} for v in self.grid]


class LogUniform(_Bounded):
    type: Literal["loguniform"]
    low: float = Field(gt=0)
    high: float

    def suggest(self, trial, key):
        return {key: trial.suggest_float(key, self.low, self.high, log=True)}


class Uniform(_Bounded):
    type: Literal["uniform"]
    low: float
    high: float

    def suggest(self, trial, key):
        return {key: trial.suggest_float(key, self.low, self.high)}


class IntRange(_Bounded):
    type: Literal["int"]
    low: int
    high: int
    log: bool = False
    grid: list[int] | None = Field(None, min_length=1)

    def suggest(self, trial, key):
        return {key: trial.suggest_int(key, self.low, self.high, log=self.log)}


class Choice(_Entry):
    type: Literal["choice"]
    values: list[Scalar] = Field(min_length=1)
    grid: list[Scalar] | None = Field(None, min_length=1, description="grid subset; default all values")

    def check(self, key: str) -> None:
        if len(set(map(repr, self.values))) != len(self.values):
            raise ConfigError(f"search.{key}.values", "repeated value")

    def extremes(self, key: str) -> list[dict]:
        return [{key: v} for v in (*self.values, *(self.grid or []))]

    def grid_values(self, key: str) -> list:
        return [{key: v} for v in self.grid or self.values]

    def suggest(self, trial, key):
        return {key: trial.suggest_categorical(key, self.values)}


class Fixed(_Entry):
    type: Literal["fixed"]
    value: Any

    def extremes(self, key: str) -> list[dict]:
        return [{key: self.value}]

    def grid_values(self, key: str) -> list:
        return [{key: self.value}]

    def suggest(self, trial, key):
        return {key: self.value}


class TimestepRange(_Entry):
    """A pair key < upper drawn define-by-run: key ∈ [low, high − min_width], then
    upper ∈ [key + min_width, high], so every suggestion satisfies the constraint."""

    type: Literal["range"]
    upper: str = Field(description="the dotted key of the range's upper end, e.g. regularizer.t_max")
    low: int = Field(ge=0)
    high: int
    min_width: int = Field(1, ge=1)
    grid: list[Annotated[list[int], Field(min_length=2, max_length=2)]] | None = Field(None, min_length=1)

    def keys(self, key: str) -> list[str]:
        return [key, self.upper]

    def check(self, key: str) -> None:
        if self.low + self.min_width > self.high:
            raise ConfigError(f"search.{key}", f"empty range: low ({self.low}) + min_width ({self.min_width}) "
                                               f"must be <= high ({self.high})")
        for lo, hi in self.grid or []:
            if not (self.low <= lo and lo + self.min_width <= hi <= self.high):
                raise ConfigError(f"search.{key}.grid", f"[{lo}, {hi}] is outside [{self.low}, {self.high}] "
                                                        f"or narrower than min_width {self.min_width}")

    def extremes(self, key: str) -> list[dict]:
        ends = [(self.low, self.low + self.min_width), (self.high - self.min_width, self.high)]
        return [{key: lo, self.upper: hi} for lo, hi in ends + [tuple(p) for p in self.grid or []]]

    def grid_values(self, key: str) -> list:
        if self.grid is None:
            raise ConfigError(f"search.{key}.grid", "required when sampler.kind is grid")
        return [{key: lo, self.upper: hi} for lo, hi in self.grid]

    def suggest(self, trial, key):
        lo = trial.suggest_int(key, self.low, self.high - self.min_width)
        return {key: lo, self.upper: trial.suggest_int(self.upper, lo + self.min_width, self.high)}


SearchEntry = Annotated[Union[LogUniform, Uniform, IntRange, Choice, Fixed, TimestepRange],
                        Field(discriminator="type")]
_ENTRY_TAGS = ("loguniform", "uniform", "int", "choice", "fixed", "range")


# ---- the other sections -------------------------------------------------------------------------
class Objective(_Strict):
    """What ranks trials. A trial reports, at every eval, the metric's current value (`fid`) and its
    best so far (`fid_best`); `reduce` picks the one that ASHA, Optuna, the summary and the
    confirmation act on, and the checkpoint kept for the trial is that value's snapshot.

    `best` is the default: GAN practice keeps the snapshot with the best FID (stylegan2-ada), a
    GAN's FID often rises again late in training, and the generator a study keeps is that snapshot;
    trials compared at equal kimg (an ASHA rung, the end of training) have had the same number of
    evals, so the best-of-n is taken alike for all of them. `last` ranks by the latest eval (an
    unbiased estimate of where training ended) and keeps the latest checkpoint."""

    metric: str = Field("fid", description="a metric the run reports (e.g. fid, modes)")
    mode: Literal["min", "max"] = "min"
    reduce: Literal["last", "best"] = Field("best", description="last: the latest eval's value; best: the "
                                                                "best so far (its snapshot's generator is kept)")

    def result_key(self) -> str:
        """The trial result key that ranks trials (`fid` or `fid_best`)."""
        return self.metric if self.reduce == "last" else best_key(self.metric)


class Sampler(_Strict):
    kind: Literal["tpe", "random", "grid"] = "tpe"
    seed: int = Field(0, ge=0, description="the study seed: sampler and per-trial training seeds")
    n_startup_trials: int = Field(10, ge=0, description="TPE: random trials before modelling")
    points_to_evaluate: list[dict[str, Any]] = Field(
        [], description="evaluated first, in order (e.g. the λ=0 baseline); keys not given are searched")


class Budget(_Strict):
    num_samples: int | None = Field(None, ge=1, description="trials; grid: defaults to the grid size")
    max_concurrent: int = Field(2, ge=1)
    max_failures: int = Field(0, ge=0, description="retries of a failed trial from its last checkpoint")
    replicates: int = Field(1, ge=1, description="seeds per trial, trained in lockstep inside the trial; "
                                                 "it reports their mean objective (and <metric>_std, "
                                                 "<metric>_seeds)")


class Scheduler(_Strict):
    kind: Literal["asha", "none"] = "asha"
    time_attr: Literal["kimg", "training_iteration", "time_total_s"] = "kimg"
    grace_period: float = Field(32.0, gt=0)
    reduction_factor: float = Field(2.0, gt=1)
    max_t: float | None = Field(None, gt=0, description="default: the base config's training.kimg")


class Resources(_Strict):
    """What one trial asks Ray for. With `workers: 1` a trial is one process holding `cpu` and `gpu`
    (gpu 0.25 packs four trials on a GPU). With `workers: N > 1` a trial is a Ray Train
    TorchTrainer of N DDP processes (gloo on CPU, NCCL on GPU), each holding `cpu` and `gpu`;
    `training.batch_size` is then the GLOBAL batch, split evenly (batch_size / N per worker), so
    the same config trains the same schedule whatever N is."""

    cpu: float = Field(1.0, gt=0, description="per trial (workers: 1) or per worker")
    gpu: float = Field(0.0, ge=0, description="per trial or per worker; fractions < 1 share a GPU")
    workers: int = Field(1, ge=1, description="DDP processes per trial (Ray Train TorchTrainer)")


class MLflow(_Strict):
    enabled: bool = True
    tracking_uri: str | None = Field(None, description="default sqlite:///<storage>/mlflow.db")
    snapshot_every: int = Field(4, ge=0, description="a sample picture every this many evals "
                                                     "(and at the end of training); 0: none. Each "
                                                     "costs about as much as 10 checkpoints")
    report: bool = Field(True, description="write the study report at the end and log it to the parent run")


class Confirm(_Strict):
    """After the search, retrain its `top_k` best configurations and the λ = 0 baseline with `seeds`
    fresh seeds each (to the full training.kimg) and test each against the baseline."""

    top_k: int = Field(3, ge=1, description="how many of the search's best λ > 0 configurations to confirm")
    seeds: int = Field(5, ge=2, description="fresh seeds per configuration (never a seed the search used)")
    baseline: bool = Field(True, description="also confirm the λ = 0 baseline and compare each configuration with it")


class StudySpec(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    config: dict[str, Any]
    objective: Objective = Objective()
    search: dict[str, SearchEntry] = Field(min_length=1)
    sampler: Sampler = Sampler()
    budget: Budget = Budget()
    scheduler: Scheduler = Scheduler()
    resources: Resources = Resources()
    mlflow: MLflow = MLflow()
    confirm: Confirm | None = Field(None, description="the confirmation stage; off when absent")
    storage: str | None = Field(None, description="a shared directory or a URI (s3://, gs://, file://); "
                                                  "--storage overrides; default ./runs")
    profiles: dict[str, dict[str, Any]] = {}


_STUDY_SECTIONS = set(StudySpec.model_fields)


class Study:
    """A validated study: the spec, its base RunConfig and the list of points evaluated first."""

    def __init__(self, spec: StudySpec, base: RunConfig, points: list[dict]):
        self.spec = spec
        self.base = base
        self.points = points  # grid: every grid point; otherwise sampler.points_to_evaluate

    @property
    def num_samples(self) -> int:
        return self.spec.budget.num_samples or len(self.points)

    @property
    def max_t(self) -> float:
        return self.spec.scheduler.max_t or self.base.training.kimg

    def search_keys(self) -> list[str]:
        return [k for key, e in self.spec.search.items() for k in e.keys(key)]

    def to_dict(self) -> dict:
        out = self.spec.model_dump(mode="json", exclude={"profiles", "storage"})  # what, not where
        out["config"] = self.base.to_dict()
        out["budget"]["num_samples"] = self.num_samples
        return out


# ---- loading ------------------------------------------------------------------------------------
def apply_override(doc: dict, key: str, value: Any) -> None:
    """A dotted override of a study: `budget.num_samples`, `search.regularizer.weight.high`, or a run
    config key (`training.kimg`, same as `config.training.kimg`)."""
    head = key.split(".", 1)[0]
    if head == "search" and "." in key:
        rest = key.split(".", 1)[1]
        search = doc.setdefault("search", {})
        entry = max((k for k in search if rest == k or rest.startswith(k + ".")), key=len, default=None)
        if entry is None or rest == entry:
            raise ConfigError(key, "name a field of a search entry, e.g. search.regularizer.weight.high")
        if not isinstance(search[entry], dict):
            raise ConfigError(f"search.{entry}", "must be a mapping")
        set_dotted(search[entry], rest[len(entry) + 1:], value)
    elif head in _STUDY_SECTIONS:
        set_dotted(doc, key, value)
    else:
        set_dotted(doc.setdefault("config", {}), key, value)


def _validation_error(exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    loc = [str(p) for p in err["loc"]]
    if len(loc) > 2 and loc[0] == "search" and loc[2] in _ENTRY_TAGS:
        del loc[2]  # the union's tag, not a user-visible key
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        msg = "unknown key"
    elif err["type"] == "missing":
        msg = "required"
    elif not isinstance(err.get("input"), (dict, list)):
        msg = f"{msg} (got {err['input']!r})"
    return ConfigError(".".join(loc) or "study", msg)


def _validate_values(base: RunConfig, where: str, overrides: dict) -> None:
    """The bound values must make a valid run config (types, bounds, cross-field checks)."""
    try:
        base.with_overrides(overrides)
    except ConfigError as exc:
        shown = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        raise ConfigError(where, f"{shown} is not a valid run config: {exc}") from None


def _check_search(spec: StudySpec, base: RunConfig) -> list[dict]:
    valid = config_keys(base)
    seen: set[str] = set()
    for key, entry in spec.search.items():
        for k in entry.keys(key):
            if k not in valid:
                raise ConfigError(f"search.{key}", f"{k!r} is not a run config key")
            if k in seen:
                raise ConfigError(f"search.{key}", f"{k!r} is searched twice")
            seen.add(k)
        entry.check(key)
        for overrides in entry.extremes(key):
            _validate_values(base, f"search.{key}", overrides)

    for i, point in enumerate(spec.sampler.points_to_evaluate):
        where = f"sampler.points_to_evaluate.{i}"
        for key, entry in spec.search.items():
            given = [k for k in entry.keys(key) if k in point]
            if given and len(given) != len(entry.keys(key)):
                raise ConfigError(where, f"give both {' and '.join(entry.keys(key))} or neither")
        for k in point:
            if k not in seen:
                raise ConfigError(f"{where}.{k}", "not a key of the search space")
        _validate_values(base, where, point)

    flat = base.flat()
    points = [active_overrides(p, flat) for p in spec.sampler.points_to_evaluate]
    if spec.sampler.kind == "grid":
        axes = [entry.grid_values(key) for key, entry in spec.search.items()]
        grid: list[dict] = []
        for combo in itertools.product(*axes):
            point = {k: v for part in combo for k, v in part.items()}
            _validate_values(base, "search", point)
            point = active_overrides(point, flat)
            if point not in grid:  # λ = 0 in the grid: one plain GAN, whatever k and t-range
                grid.append(point)
        points += grid
        if spec.budget.num_samples not in (None, len(points)):
            raise ConfigError("budget.num_samples", f"a grid study runs exactly its {len(points)} points; "
                                                    f"leave num_samples out or set it to {len(points)}")
    elif spec.budget.num_samples is None:
        raise ConfigError("budget.num_samples", "required (unless sampler.kind is grid)")
    elif spec.budget.num_samples < len(points):
        raise ConfigError("budget.num_samples", f"smaller than the {len(points)} points to evaluate")
    return points


def load_study(path: str, profile: str | None = None, sets: list[tuple[str, Any]] = ()) -> Study:
    """Read and validate a study file, applying a named profile and then `--set` overrides."""
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        raise ConfigError(path, f"must hold a mapping with `name` and `config`, got {type(doc).__name__}")
    profiles = doc.get("profiles") or {}
    if profile is not None:
        if not isinstance(profiles, dict) or profile not in profiles:
            have = ", ".join(profiles) if isinstance(profiles, dict) and profiles else "none"
            raise ConfigError("--profile", f"unknown profile {profile!r} (this study has: {have})")
        if not isinstance(profiles[profile], dict):
            raise ConfigError(f"profiles.{profile}", "must be a mapping of dotted keys to values")
        sets = [*profiles[profile].items(), *sets]
    for key, value in sets:
        if key.split(".", 1)[0] == "profiles":
            raise ConfigError(key, "profiles cannot be overridden")
        apply_override(doc, key, value)
    try:
        spec = StudySpec.model_validate(doc)
    except ValidationError as exc:
        raise _validation_error(exc) from None
    try:
        base = RunConfig.from_dict(spec.config)
    except ConfigError as exc:
        raise ConfigError(f"config.{exc.key}", exc.why) from None
    for name, overrides in spec.profiles.items():  # each profile must make a valid run config
        run_keys = {k: v for k, v in overrides.items() if k.split(".", 1)[0] not in _STUDY_SECTIONS}
        try:
            base.with_overrides(run_keys)
        except ConfigError as exc:
            raise ConfigError(f"profiles.{name}.{exc.key}", exc.why) from None
    reported = reported_metrics(base)
    if spec.objective.metric not in reported:
        raise ConfigError("objective.metric", f"{spec.objective.metric!r} is not reported by this run (it reports: "
                                              f"{', '.join(sorted(reported))})")
    sched = spec.scheduler
    if sched.kind == "asha" and sched.time_attr == "kimg" and sched.grace_period > (sched.max_t or base.training.kimg):
        raise ConfigError("scheduler.grace_period", f"must be <= max_t ({sched.max_t or base.training.kimg:g} kimg)")
    _check_resources(spec.resources, base, spec.budget)
    return Study(spec, base, _check_search(spec, base))


def _check_resources(res: Resources, base: RunConfig, budget: Budget) -> None:
    if budget.replicates > 1 and res.workers > 1:
        raise ConfigError("budget.replicates", "replicates train in lockstep inside one trial process; "
                                               "use resources.workers: 1 with budget.replicates > 1")
    if res.gpu > 1 and res.gpu != int(res.gpu):
        raise ConfigError("resources.gpu", f"above 1 it must be a whole number of GPUs (got {res.gpu:g})")
    if res.workers > 1 and 0 < res.gpu < 1:
        raise ConfigError("resources.gpu", "the workers of one DDP trial cannot share a GPU (NCCL); "
                                           "use a whole GPU per worker, or workers: 1")
    if base.training.batch_size % res.workers:
        raise ConfigError("resources.workers", f"must divide training.batch_size ({base.training.batch_size}), "
                                               "which is the global batch")
