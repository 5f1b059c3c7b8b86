"""`<experiment dir>/tracking/mlflow_runs.json`: where a study is tracked (URI, experiment, parent
run) and the MLflow run of each trial, so that a resumed study continues the same runs instead of
making new ones, and the report finds the study from its directory. `RunsFile` is the only code
that reads or writes it; every change is written at once, atomically. One instance writes at a
time, and each reads the file when it takes over: `tracking.start_parent` creates it, the
experiment's MLflowCallback adds the trials' runs, the driver drops lost trials after the experiment.

It lives in a subdirectory because a resumed Tune experiment copies the experiment directory's
top-level .json/.pkl files to its staging directory and uploads them back at every snapshot: a
top-level file would be overwritten, mid-study, with the copy it had when the study resumed.
"""
from __future__ import annotations

from tuning.storage import Storage

RUNS_DIR, RUNS_FILE = "tracking", "mlflow_runs.json"


class RunsFile:
    """The record of one study's MLflow runs: {"tracking_uri", "experiment_id", "parent",
    "trials": {trial id: run id}}. A trial's entry is written (run id null) before its run is
    created: a driver killed between the two leaves a run that only its `trial_id` tag names, and
    the null tells the next driver to look it up (tracking.find_trial_run) instead of making a
    second one."""

    def __init__(self, exp: Storage, record: dict):
        self.dir = exp.sub(RUNS_DIR)
        self._record = record

    @classmethod
    def read(cls, exp: Storage) -> "RunsFile | None":
        """The study's record, or None when it was never tracked."""
        where = exp.sub(RUNS_DIR)
        return cls(exp, where.read_json(RUNS_FILE)) if where.exists(RUNS_FILE) else None

    @classmethod
    def create(cls, exp: Storage, tracking_uri: str, experiment_id: str, parent: str) -> "RunsFile":
        runs = cls(exp, {"tracking_uri": tracking_uri, "experiment_id": experiment_id, "parent": parent,
                         "trials": {}})
        runs._write()
        return runs

    @property
    def tracking_uri(self) -> str:
        return self._record["tracking_uri"]

    @property
    def experiment_id(self) -> str:
        return self._record["experiment_id"]

    @property
    def parent(self) -> str:
        return self._record["parent"]

    @property
    def trials(self) -> dict[str, str | None]:
        """trial id -> run id, None while it is being created (a copy: change it through reserve,
        add and drop)."""
        return dict(self._record["trials"])

    def reserve(self, trial_id: str) -> None:
        """Before creating the trial's run: from now on a run of this trial may exist."""
        self.add(trial_id, None)

    def add(self, trial_id: str, run_id: str | None) -> None:
        self._record["trials"][trial_id] = run_id
        self._write()

    def drop(self, trial_ids) -> None:
        for trial_id in trial_ids:
            del self._record["trials"][trial_id]
        self._write()

    def _write(self) -> None:
        self.dir.write_json(RUNS_FILE, self._record)
