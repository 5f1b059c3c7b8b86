"""Everything decided about a study before anything starts: where it lives and is tracked, whether
it is new or resumed, and whether another driver runs it now. Reads only; every problem is a
ConfigError (exit 2). Imports neither Ray nor MLflow."""
from __future__ import annotations

import os

from smart.config import ConfigError
from tuning.optuna_db import resolve_optuna_storage, shown_url
from tuning.storage import Storage
from tuning.study import Study
from tuning.study_lock import StudyLock

STUDY_FILE = "study.json"
SUMMARY_FILE = "summary.json"


def resolve_tracking_uri(cli_uri: str | None, study_uri: str | None, storage: str) -> str:
    """--mlflow-uri, then $MLFLOW_TRACKING_URI, then the study's mlflow.tracking_uri, then
    sqlite:///<storage>/mlflow.db."""
    return (cli_uri or os.environ.get("MLFLOW_TRACKING_URI") or study_uri
            or "sqlite:///" + os.path.join(storage, "mlflow.db"))


def tracking_uri_key(cli_uri: str | None, study_uri: str | None, storage_key: str) -> str:
    """The option a tracking URI came from, for messages about it (the default lives in storage)."""
    if cli_uri:
        return "--mlflow-uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return "MLFLOW_TRACKING_URI"
    return "mlflow.tracking_uri" if study_uri else storage_key


def ui_command(uri: str) -> str:
    """How to look at the runs."""
    return f"open {uri}" if uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {uri}"


class Plan:
    """The validated study plus the driver's options (see tuning/run_study.py)."""

    def __init__(self, study: Study, args):
        self.study = study
        self.storage_key = "storage" if study.spec.storage and not args.storage else "--storage"  # who chose it
        self.storage = Storage(args.storage or study.spec.storage or "runs", self.storage_key)
        self.exp = self.storage.sub(study.spec.name)
        self.resume = args.resume
        self.address = args.address
        self.profile = args.profile
        self.code = args.code
        self.dashboard_host = args.dashboard_host
        self.tensorboard = args.tensorboard
        mlflow = study.spec.mlflow
        self.tracking_uri = self.tracking_key = None
        if mlflow.enabled:
            local = self.storage.local_path
            if local is None and not (args.mlflow_uri or os.environ.get("MLFLOW_TRACKING_URI") or mlflow.tracking_uri):
                raise ConfigError("mlflow.tracking_uri", f"required when storage is a URI ({self.storage}): a "
                                                         "sqlite file cannot live there; give an MLflow server or database")
            self.tracking_uri = resolve_tracking_uri(args.mlflow_uri, mlflow.tracking_uri, local or "")
            self.tracking_key = tracking_uri_key(args.mlflow_uri, mlflow.tracking_uri, self.storage_key)
        self.optuna_storage = resolve_optuna_storage(args.optuna_storage, self.exp)
        self.optuna_shared = args.optuna_storage is not None  # a database of its own, not the study's file
        self.lock = StudyLock(self.storage, study.spec.name)
        self.lock.check()
        self.stored = self.check_storage()

    def _exists(self, name: str = "") -> bool:
        try:
            return self.exp.exists(name)
        except OSError as exc:  # a storage URI that does not answer
            raise ConfigError(self.storage_key, f"cannot reach {self.storage}: {str(exc).splitlines()[0]}") from None

    def check_storage(self) -> dict | None:
        """A new study needs an empty place, a resumed one the same study and tracking URI; returns
        what the resumed study stored (None for a new one)."""
        if not self.resume:
            if self._exists():
                raise ConfigError(self.storage_key, f"{self.exp} already holds study {self.study.spec.name!r}; "
                                                    "pass --resume to continue it, or choose another --storage")
            return None
        if not self._exists(STUDY_FILE):
            raise ConfigError("--resume", f"no study {self.study.spec.name!r} to resume in {self.storage}")
        stored = self.exp.read_json(STUDY_FILE)
        mine = self.study.to_dict()
        if stored["study"] != mine:
            diff = sorted(k for k in mine if stored["study"].get(k) != mine[k])
            raise ConfigError("--resume", f"the study differs from the one in {self.exp} "
                                          f"(differs in: {', '.join(diff)})")
        if stored.get("optuna_storage", shown_url(self.optuna_storage)) != shown_url(self.optuna_storage):
            raise ConfigError("--optuna-storage", f"the study's Optuna study is in {stored['optuna_storage']}; "
                                                  "resume with the same --optuna-storage")
        if stored["tracking_uri"] != self.tracking_uri:
            raise ConfigError("--mlflow-uri", f"the study was tracked at {stored['tracking_uri']}; "
                                              f"resume with the same tracking URI (got {self.tracking_uri})")
        return stored
