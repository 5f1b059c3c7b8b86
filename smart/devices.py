"""Which device a run may use, and where tensors must live to cross a process boundary.

`resolve_device` turns `device` (auto, cpu, cuda) into a torch.device. `granted_device` is what a
trial may use given the accelerators its scheduler granted it: Ray leaves CUDA_VISIBLE_DEVICES unset
for an actor that asked for no GPU, so such a trial would otherwise see (and use) every GPU of the
node. `hide_gpus` makes it so before torch initialises CUDA. `collective_device` is where a tensor
must be for a torch.distributed collective of a backend (NCCL only moves CUDA tensors).
`cpu_state` is a random-number-generator state as `set_state` takes it (a CPU ByteTensor), wherever
the checkpoint loader put it. `use_deterministic_algorithms` is `training.deterministic`."""
from __future__ import annotations

import os
from typing import MutableMapping, Sequence

import torch

from smart.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda requested but no CUDA device is available")
    return torch.device(name)


def config_device(name: str) -> torch.device:
    """`resolve_device` for a command's config: an unavailable device is the `device` key's ConfigError."""
    try:
        return resolve_device(name)
    except RuntimeError as exc:
        raise ConfigError("device", str(exc).removeprefix("device: ")) from None


def granted_device(requested: str, gpu_ids: Sequence) -> str:
    """The `device` a trial runs with when its scheduler granted it `gpu_ids` (empty: none).
    Without a grant, auto means cpu and cuda is an error: the GPUs it would use are counted for others."""
    if gpu_ids:
        return requested
    if requested == "cuda":
        raise RuntimeError("device: cuda, but the trial was granted no GPU (set resources.gpu > 0)")
    return "cpu"


def hide_gpus(gpu_ids: Sequence, environ: MutableMapping[str, str] = os.environ) -> bool:
    """With no GPU granted, make CUDA see none (CUDA_VISIBLE_DEVICES=""). Only effective before
    torch initialises CUDA in this process; returns whether it was (the caller then also forces
    device cpu, which holds either way)."""
    if gpu_ids:
        return False
    environ["CUDA_VISIBLE_DEVICES"] = ""
    return not torch.cuda.is_initialized()


def collective_device(backend: str) -> torch.device:
    """Where tensors of a torch.distributed collective must be: NCCL moves only CUDA tensors (on
    the rank's current device); gloo and MPI move CPU ones."""
    return torch.device("cuda") if str(backend).lower() == "nccl" else torch.device("cpu")


def cpu_state(state: torch.Tensor) -> torch.Tensor:
    """A generator state as `torch.Generator.set_state` and `torch.cuda.set_rng_state` require: a
    contiguous CPU uint8 tensor of its own (a checkpoint mapped to CUDA holds CUDA tensors)."""
    return state.detach().to("cpu", torch.uint8).contiguous().clone()


CUBLAS_WORKSPACE = ":4096:8"  # what cuBLAS needs for reproducible results (CUDA docs, "Results reproducibility")


def use_deterministic_algorithms(on: bool, environ: MutableMapping[str, str] = os.environ) -> None:
    """torch's deterministic kernels (an op without one raises), cuDNN without autotuning, and a
    fixed cuBLAS workspace, process-wide. CUBLAS_WORKSPACE_CONFIG only takes effect when set before
    the process first uses cuBLAS; an earlier value is kept."""
    if on:
        environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(on)
    torch.backends.cudnn.deterministic = on
    if on:
        torch.backends.cudnn.benchmark = False
