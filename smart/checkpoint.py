"""Trainer checkpoints on disk: the format version, the code version that wrote one, where one lies
(a .pt file, a `smart.train --out` directory holding checkpoint.pt, or a Ray trial checkpoint
directory holding trainer.pt) and reading one for evaluation (weights only, no optimizers)."""
from __future__ import annotations

import functools
import hashlib
import json
import os

from smart.config import RunConfig
from smart.errors import ConfigError

CHECKPOINT_FORMAT = 3  # bump when the state_dict layout changes
RUN_CHECKPOINT = "checkpoint.pt"  # what `python -m smart.train --out DIR` keeps in DIR
TRIAL_CHECKPOINT = "trainer.pt"   # what a study trial's Ray checkpoint directory holds


@functools.lru_cache(maxsize=None)
def code_version() -> str:
    """Hash of the smart/ sources: a checkpoint only resumes under the code that wrote it."""
    root = os.path.dirname(os.path.abspath(__file__))
    digest = hashlib.sha256()
    for folder, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(f for f in files if f.endswith(".py")):
            path = os.path.join(folder, name)
            digest.update(os.path.relpath(path, root).encode() + b"\0")
            with open(path, "rb") as fh:
                digest.update(fh.read())
    return digest.hexdigest()[:16]


def find_checkpoint(path: str, key: str = "checkpoint") -> str:
    """The checkpoint file `path` names; a directory must hold checkpoint.pt or trainer.pt."""
    if os.path.isdir(path):
        for name in (RUN_CHECKPOINT, TRIAL_CHECKPOINT):
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise ConfigError(key, f"{path} holds no {RUN_CHECKPOINT} or {TRIAL_CHECKPOINT}")
    if not os.path.isfile(path):
        raise ConfigError(key, f"{path}: no such file or directory")
    return path


def read_checkpoint(path: str, key: str = "checkpoint") -> dict:
    """A trainer state dict from disk (weights only), checked to be a trainer checkpoint of this format."""
    import torch  # here: the command lines check their input before paying for torch

    path = find_checkpoint(path, key)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: one line for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(key, f"{path} is not a readable trainer checkpoint ({first[:200]})") from None
    if not isinstance(state, dict) or not {"config", "G", "G_ema", "D"} <= set(state):
        raise ConfigError(key, f"{path} is not a trainer checkpoint")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(key, f"{path} has format {state.get('format', 1)}; this code reads format "
                          f"{CHECKPOINT_FORMAT}")
    return state


def checkpoint_config(state: dict, overrides: dict | None = None) -> RunConfig:
    """The run config a checkpoint was written with, plus overrides (e.g. eval.* or device)."""
    return RunConfig.from_dict(json.loads(state["config"]), overrides)
