"""How a trial ended, and the result keys that tell it: the names the summary, the MLflow tags, the
report and its plots all use. Imports nothing heavy (the report reads these without Ray or torch)."""
from __future__ import annotations

from enum import Enum


class _Name(str, Enum):
    """A string enum that prints (and is written to JSON and MLflow) as its value."""

    def __str__(self) -> str:
        return self.value


class TrialStatus(_Name):
    FINISHED = "finished"            # trained to its training.kimg
    STOPPED_EARLY = "stopped early"  # the scheduler (ASHA) ended it before its training.kimg
    DIVERGED = "diverged"            # its losses became NaN/inf: it reported the worst objective
    ERROR = "error"                  # its code raised (Tune's trial error)
    NO_RESULT = "no result"          # it ended without reporting the objective
    RUNNING = "running"              # MLflow only: the run never ended (a study in progress or killed)
    KILLED = "killed"                # MLflow only

    @classmethod
    def recorded(cls, tags: dict, run_status: str) -> str:
        """The status the tracker wrote on a child run (tag STATUS_TAG); a run without it never
        ended, and MLflow's own run status says how far it got."""
        if STATUS_TAG in tags:
            return tags[STATUS_TAG]
        return {"RUNNING": cls.RUNNING, "KILLED": cls.KILLED, "FAILED": cls.ERROR}.get(run_status, run_status.lower())


STATUS_TAG = "trial_status"    # MLflow tag of a child run: its TrialStatus
STOPPED_EARLY_TAG = "stopped_early"
STAGE_TAG = "stage"            # MLflow tag of a child run: "search", or "confirm" (the confirmation stage)
SCORED = (TrialStatus.FINISHED, TrialStatus.STOPPED_EARLY)  # statuses whose objective ranks a trial
SNAPSHOT_PREFIX = "snapshot-kimg"  # a trial's sample pictures, beside its checkpoints and in MLflow


class ResultKey(_Name):
    """Keys of a trial's result (besides the trainer's metrics) that the driver reads."""

    KIMG = "kimg"
    DIVERGED = "diverged"                # 1.0 when the trial's losses became NaN/inf
    DIVERGED_REASON = "diverged_reason"  # the divergence message
    TIMINGS = "timings"                  # the eval's costs (tuning/timings.py), numbers MLflow never logs


def best_key(metric: str) -> str:
    """The result key of a metric's best value so far (`fid_best`)."""
    return f"{metric}_best"


def best_kimg_key(metric: str) -> str:
    """The result key of the kimg at which that best value was measured (`fid_best_kimg`)."""
    return f"{metric}_best_kimg"


def trial_status(last_result: dict | None, target_kimg: float, metric: str, *, error: bool = False) -> TrialStatus:
    """How a trial ended, from its last result: `target_kimg` is its run config's training.kimg,
    `error` whether Tune recorded an error for it."""
    last = last_result or {}
    if error:
        return TrialStatus.ERROR
    if last.get(ResultKey.DIVERGED):
        return TrialStatus.DIVERGED
    if metric not in last:
        return TrialStatus.NO_RESULT
    return TrialStatus.STOPPED_EARLY if last.get(ResultKey.KIMG, 0) < target_kimg else TrialStatus.FINISHED
