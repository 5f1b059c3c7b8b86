"""Where the study's Optuna study lives: an RDB storage, by default sqlite:///<storage>/<name>/optuna.db,
or a shared database given with --optuna-storage (any SQLAlchemy URL). A bad or unreachable URL is
bad input (exit 2), found before Ray starts. Imports neither Ray nor MLflow; Optuna and SQLAlchemy
only when used."""
from __future__ import annotations

import os

from smart.config import ConfigError
from tuning.storage import Storage

OPTUNA_FILE = "optuna.db"
KEY = "--optuna-storage"


def resolve_optuna_storage(cli_url: str | None, exp: Storage) -> str | None:
    """--optuna-storage, else sqlite:///<storage>/<name>/optuna.db; None when the study lives on an
    object store and no database was given (the Optuna study then lives only in the searcher's
    snapshots, as Tune keeps it)."""
    if cli_url:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(cli_url)
        except ArgumentError:
            raise ConfigError(KEY, f"{cli_url!r} is not a database URL (e.g. sqlite:////shared/optuna.db, "
                                   "postgresql://host/optuna)") from None
        return cli_url
    local = exp.local_path
    return "sqlite:///" + os.path.join(local, OPTUNA_FILE) if local is not None else None


def shown_url(url: str | None) -> str | None:
    """A database URL with its password hidden (messages, study.json)."""
    if url is None:
        return None
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def open_storage(url: str):
    """The Optuna RDB storage at `url` (its tables created if new)."""
    import optuna

    try:
        return optuna.storages.RDBStorage(url)
    except Exception as exc:  # noqa: BLE001 — SQLAlchemy's many errors: unknown dialect, no driver, refused, ...
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(KEY, f"cannot open {shown_url(url)}: {first[:200]}") from None


def check_database(url: str, name: str, resume: bool) -> None:
    """A shared database answers, and a new study does not reuse a name it already holds."""
    import optuna

    if not resume and name in optuna.study.get_all_study_names(open_storage(url)):
        raise ConfigError(KEY, f"{shown_url(url)} already holds an Optuna study {name!r}; pass --resume to "
                               "continue it, or use another database")
