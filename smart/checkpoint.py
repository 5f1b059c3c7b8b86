"""Trainer checkpoints on disk: the format version, the code version that wrote one, where one lies
(a .pt file, a `smart.train --out` directory holding checkpoint.pt, a Ray trial checkpoint
directory holding trainer.pt, or a kept generator's directory holding generator.pt) and reading one for evaluation (weights only, no optimizers)."""
from __future__ import annotations

import functools
import hashlib
import json
import os

from smart.config import RunConfig
from smart.errors import ConfigError

CHECKPOINT_FORMAT = 4  # bump when the state_dict layout changes (4: device stream, loader batches)
RUN_CHECKPOINT = "checkpoint.pt"  # what `python -m smart.train --out DIR` keeps in DIR
TRIAL_CHECKPOINT = "trainer.pt"   # what a study trial's Ray checkpoint directory holds
GENERATOR_CHECKPOINT = "generator.pt"  # a kept generator (a study's artifact): EMA weights and run config
TRAINER_NETS = ("G", "G_ema", "D")


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


def find_checkpoint(path: str, key: str = "checkpoint",
                    names: tuple[str, ...] = (RUN_CHECKPOINT, TRIAL_CHECKPOINT)) -> str:
    """The checkpoint file `path` names; a directory must hold one of `names`."""
    if os.path.isdir(path):
        for name in names:
            if os.path.isfile(os.path.join(path, name)):
                return os.path.join(path, name)
        raise ConfigError(key, f"{path} holds no {' or '.join(names)}")
    if not os.path.isfile(path):
        raise ConfigError(key, f"{path}: no such file or directory")
    return path


def read_checkpoint(path: str, key: str = "checkpoint", nets: tuple[str, ...] = TRAINER_NETS) -> dict:
    """A trainer state dict from disk (weights only), checked to be a checkpoint of this format
    holding `nets` (a kept generator, generator.pt, is read with nets=("G_ema",))."""
    import torch  # here: the command lines check their input before paying for torch

    names = (RUN_CHECKPOINT, TRIAL_CHECKPOINT) + ((GENERATOR_CHECKPOINT,) if set(nets) <= {"G_ema"} else ())
    path = find_checkpoint(path, key, names)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file: one line for the user
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ConfigError(key, f"{path} is not a readable trainer checkpoint ({first[:200]})") from None
    if not isinstance(state, dict) or not {"config", "progress", *nets} <= set(state):
        raise ConfigError(key, f"{path} is not a trainer checkpoint" if set(nets) != {"G_ema"} else
                          f"{path} is neither a trainer checkpoint nor a kept generator")
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ConfigError(key, f"{path} has format {state.get('format', 1)}; this code reads format "
                          f"{CHECKPOINT_FORMAT}")
    return state


def checkpoint_config(state: dict, overrides: dict | None = None) -> RunConfig:
    """The run config a checkpoint was written with, plus overrides (e.g. eval.* or device)."""
    return RunConfig.from_dict(json.loads(state["config"]), overrides)


def generator_state(state: dict) -> dict:
    """What a kept generator needs of a trainer state: the EMA weights, the run config and the
    progress (format and code version too); no G, D or optimizers."""
    return {k: state[k] for k in ("format", "code", "config", "progress", "G_ema")}
