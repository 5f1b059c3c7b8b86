"""The training loop: the phases of smart.phases (their losses from smart.losses' objective), EMA of
G, evals with callbacks (metrics see an EvalContext, never the Trainer), and a state_dict that
resumes bit-for-bit (nets, optimizers, EMA, RNG, progress, training statistics) on the CPU, and on
CUDA under `training.deterministic` (docs/gpu.md).

Data-parallel runs (`distributed=True`, torch.distributed already initialised, e.g. by Ray Train):
`training.batch_size` stays the global batch, each rank draws batch_size / world samples from its
own random stream, gradients are averaged with one all_reduce per optimizer step (DDP's wrapper
cannot do R1's double backward), and only rank 0 evaluates. With one process nothing changes."""
from __future__ import annotations

import gc
import json
import math
import os
import time
from typing import Callable, Sequence

import torch
import torch.distributed as dist

from smart import progress
from smart.checkpoint import CHECKPOINT_FORMAT, code_version
from smart.config import RunConfig, flatten
from smart.context import EvalContext
from smart.data.loader import PrefetchedBatches
from smart.losses import Objective
from smart.metrics import compute_metrics
from smart.devices import collective_device, cpu_state, resolve_device, use_deterministic_algorithms
from smart.models import build_models, draw_inputs
from smart.stats import TrainingStats
from smart.timing import make_timer

Callback = Callable[["Trainer", dict], None]
_RANK_SEED_OFFSET = 7_919_017  # rank r > 0 of a distributed run trains on its own stream

__all__ = ["CHECKPOINT_FORMAT", "Trainer", "TrainingDiverged", "resolve_device"]


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


def _adam(params, lr, beta1, beta2, ratio=1.0):
    """Adam with StyleGAN2's lazy-regularization correction for phases run every 1/ratio steps."""
    return torch.optim.Adam(params, lr=lr * ratio, betas=(beta1**ratio, beta2**ratio))


class Trainer:
    """`step()` runs one iteration (D phases, G phases, EMA, counters); `train()` loops it with evals
    on schedule and callbacks after each; `context()` is what metrics see; `close()` frees it all.
    Phases are timed with CUDA events on CUDA and the host clock on the CPU (smart.timing); a
    benchmark may pass its own `clock` (time.process_time)."""

    def __init__(self, cfg: RunConfig, callbacks: Sequence[Callback] = (), *, distributed: bool = False,
                 clock: Callable[[], float] | None = None):
        self.cfg = cfg
        self.callbacks = list(callbacks)
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
        if cfg.training.batch_size % self.world:
            raise ValueError(f"training.batch_size: {cfg.training.batch_size} is not divisible by the "
                             f"{self.world} workers (it is the global batch)")
        self.device = resolve_device(cfg.device)
        use_deterministic_algorithms(cfg.training.deterministic)
        models = build_models(cfg, self.device)
        self.dataset, self.G, self.D, self.G_ema = models.dataset, models.G, models.D, models.G_ema
        self.score_model = models.score_model

        seed = cfg.seed + self.rank * _RANK_SEED_OFFSET
        self.seed = seed
        self.rng = torch.Generator().manual_seed(seed)  # data (in memory) and latents
        # t and ε of the SMaRt term, drawn where they are used (on the CPU: the same stream)
        self.device_rng = (self.rng if self.device.type == "cpu"
                           else torch.Generator(self.device).manual_seed(seed))
        self.stats = TrainingStats(make_timer(self.device, clock))
        self.objective = Objective(cfg, self.G, self.D, self.score_model, self.stats, self.device_rng)
        o, phases = cfg.optim, self.objective.phases
        self.opt_g = _adam(self.G.parameters(), o.g_lr, o.beta1, o.beta2, phases["Gmain"].ratio)
        self.opt_d = _adam(self.D.parameters(), o.d_lr, o.beta1, o.beta2, phases["Dmain"].ratio)
        torch.manual_seed(seed)  # torch's global streams: the image nets' per-layer noise
        self.cur_nimg = 0
        self.g_steps = 0
        self.d_steps = 0
        self.evals = 0
        self._last_eval_nimg = 0
        self.data_batches = 0  # real batches taken from a memory-mapped dataset's loader
        self._loader = None

    # ---- properties ---------------------------------------------------------------------------
    @property
    def kimg(self) -> float:
        return self.cur_nimg / 1000

    @property
    def total_nimg(self) -> int:
        return int(round(self.cfg.training.kimg * 1000))

    def _next_eval_nimg(self) -> int:
        every = self.cfg.training.eval_every_kimg * 1000
        return min(int(round((self.evals + 1) * every)), self.total_nimg)

    def context(self) -> EvalContext:
        """What metrics and snapshots see of the run now."""
        return EvalContext(self.cfg, self.dataset, self.G_ema, self.G, self.D, self.objective, self.device,
                           self.kimg)

    # ---- one iteration ------------------------------------------------------------------------
    def _inputs(self, n: int):
        return draw_inputs(n, self.G.z_dim, self.dataset, self.rng, self.device)

    def _step(self, opt, loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.world > 1:
            self._average_gradients(opt, loss)
        opt.step()

    def _average_gradients(self, opt, loss) -> None:
        """One all_reduce of all gradients plus the loss, so that every rank sees a divergence at once."""
        params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        flat = torch.cat([p.grad.flatten() for p in params] + [loss.detach().reshape(1)])
        dist.all_reduce(flat)
        flat /= self.world
        if not torch.isfinite(flat[-1]):
            raise TrainingDiverged(f"loss became {float(flat[-1])} at kimg {self.kimg:.1f}")
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p.grad))
            offset += p.numel()

    def _regularize(self, phase, step: int, opt, loss, fused: Callable, separate: Callable):
        """A due regularization phase: its loss joins the main one (fused), or the main loss takes its
        step first and the phase's own loss is returned for the next."""
        if not phase.due(step, self.kimg):
            return loss
        if phase.fused:
            return loss + fused()
        self._step(opt, loss)
        return separate()

    def _real(self, batch: int):
        """A batch of real data on the device: from the trainer's stream (data in memory), or from
        the loader's workers (memory-mapped data, its own seeded stream: smart.data.loader)."""
        if not getattr(self.dataset, "memory_mapped", False):
            real, labels = self.dataset.batch(batch, self.rng)
            return real.to(self.device), None if labels is None else labels.to(self.device)
        if self._loader is None:
            self._loader = PrefetchedBatches(self.dataset, batch, self.seed, self.device, skip=self.data_batches)
        self.data_batches += 1
        return self._loader.next_batch()

    def _close_loader(self) -> None:
        if self._loader is not None:
            self._loader.close()
            self._loader = None

    def _d_phases(self, batch: int) -> None:
        real, real_labels = self._real(batch)
        z, labels = self._inputs(batch)
        with torch.no_grad():  # D's phase never backpropagates into G
            fake = self.G(z, labels)
        loss = self.objective.d_main(real, real_labels, fake, labels)
        reg = lambda: self.objective.d_reg(real, real_labels)  # noqa: E731
        loss = self._regularize(self.objective.phases["Dreg"], self.d_steps, self.opt_d, loss, reg, reg)
        self._step(self.opt_d, loss)
        self.d_steps += 1

    def _g_phases(self, batch: int) -> None:
        self.D.requires_grad_(False)
        z, labels = self._inputs(batch)
        fake = self.G(z, labels)
        loss = self.objective.g_main(fake, labels)

        def separate():  # its own latents, as StyleGAN2's lazy regularization draws
            z, labels = self._inputs(batch)
            return self.objective.g_reg(self.G(z, labels), labels)

        loss = self._regularize(self.objective.phases["Greg"], self.g_steps, self.opt_g, loss,
                                lambda: self.objective.g_reg(fake, labels), separate)
        self._step(self.opt_g, loss)
        self.D.requires_grad_(True)
        self.g_steps += 1

    @torch.no_grad()
    def _update_ema(self, batch: int) -> None:
        t = self.cfg.training
        half_life = t.ema_kimg * 1000
        if t.ema_rampup is not None:  # stylegan2-ada: short runs get an EMA of their recent weights
            half_life = min(half_life, self.cur_nimg * t.ema_rampup)
        beta = 0.5 ** (batch / half_life) if half_life > 0 else 0.0
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p, 1 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    def step(self) -> None:
        """One iteration: the D phases and the G phases on this rank's share of the batch, the EMA
        update and the progress counters. Per-phase seconds go to `stats.seconds` ("D", "G")."""
        batch = self.cfg.training.batch_size  # global; this rank draws batch // world
        with self.stats.timed("D"):
            self._d_phases(batch // self.world)
        with self.stats.timed("G"):
            self._g_phases(batch // self.world)
        self._update_ema(batch)
        self.cur_nimg += batch

    # ---- the loop -----------------------------------------------------------------------------
    def train(self, until_kimg: float | None = None) -> dict[str, float]:
        """Train to `training.kimg` (or stop early at `until_kimg`), evaluating on schedule.
        Returns the last eval's metrics."""
        stop_nimg = self.total_nimg if until_kimg is None else min(self.total_nimg, int(until_kimg * 1000))
        metrics: dict[str, float] = {}
        self.G.train()
        self.D.train()
        with progress.bar(stop_nimg / 1000, "train", unit="kimg") as bar:
            bar.update(self.kimg)
            while self.cur_nimg < stop_nimg:
                with self.stats.timed("train"):
                    self.step()
                bar.update(self.cfg.training.batch_size / 1000)
                if self.cur_nimg >= self._next_eval_nimg():
                    metrics = self.evaluate()
                    for cb in self.callbacks:
                        cb(self, metrics)
        return metrics

    def _loss_means(self) -> dict[str, float]:
        """Mean of each loss since the last eval. A NaN/inf loss poisons its sum, so one check here
        catches a divergence anywhere in the interval (distributed runs also check every step in
        `_average_gradients`)."""
        means = self.stats.means()
        bad = sorted(name for name, v in means.items() if not math.isfinite(v))
        if bad:
            raise TrainingDiverged(f"{', '.join(bad)} became non-finite before kimg {self.kimg:.1f}")
        return means

    def evaluate(self) -> dict[str, float]:
        """Metrics on the EMA generator plus training statistics since the last eval (rank 0's
        shard); ranks > 0 of a distributed run only get {"kimg"}."""
        t0 = time.perf_counter()
        means = self._loss_means()  # first: a diverged run gets no metrics
        metrics = {"kimg": round(self.kimg, 3)}
        if self.rank == 0:
            ctx = self.context()
            metrics.update(compute_metrics(self.cfg.eval.metrics, ctx, ctx.generate(self.eval_samples())))
            for name in self.objective.names:
                metrics[name] = means.get(name, math.nan)
            seconds = self.stats.seconds
            kimg_done = (self.cur_nimg - self._last_eval_nimg) / 1000
            metrics["kimg_per_s"] = kimg_done / seconds["train"] if seconds["train"] > 0 else math.nan
            metrics["smart_share"] = (self.stats.smart_clock.seconds / seconds["G"] if seconds["G"] > 0
                                      else math.nan)
            metrics["sec_per_eval"] = time.perf_counter() - t0
        self.stats.reset()
        self.evals += 1
        self._last_eval_nimg = self.cur_nimg
        return metrics

    def eval_samples(self) -> int:
        """Generated samples for this eval: eval.final_num_samples at the end of training, if set."""
        final = self.cfg.eval.final_num_samples
        return final if final and self.cur_nimg >= self.total_nimg else self.cfg.eval.num_samples

    def close(self) -> None:
        """Free the nets, optimizers and data now (and the CUDA cache), even while something (a
        traceback, a reused actor) still holds the trainer; it cannot be used afterwards."""
        self._close_loader()
        for name in ("G", "D", "G_ema", "score_model", "objective", "opt_g", "opt_d", "dataset"):
            setattr(self, name, None)
        self.stats.reset()
        if torch.cuda.is_initialized():
            # cycles may still hold CUDA blocks that the cache should hand back; on CPU the dropped
            # references free the memory, and a full collection (~0.25 s with torch loaded) is waste
            gc.collect()
            torch.cuda.empty_cache()

    # ---- state --------------------------------------------------------------------------------
    def _rng_states(self) -> torch.Tensor:
        """The trainer's streams and torch's global ones (CPU; on CUDA also CUDA's global one and
        the trainer's device stream), as one CPU uint8 tensor."""
        states = [self.rng.get_state(), torch.get_rng_state()]
        if self.device.type == "cuda":
            states += [torch.cuda.get_rng_state(self.device), self.device_rng.get_state()]
        return torch.cat(states)

    def _set_rng_states(self, flat: torch.Tensor) -> None:
        flat = cpu_state(flat)
        n = self.rng.get_state().numel()
        self.rng.set_state(flat[:n].clone())
        torch.set_rng_state(flat[n:2 * n].clone())
        if self.device.type == "cuda":
            m = self.device_rng.get_state().numel()
            torch.cuda.set_rng_state(flat[2 * n:-m].clone(), self.device)
            self.device_rng.set_state(flat[-m:].clone())

    def state_dict(self) -> dict:
        """In a distributed run every rank must call this (it gathers the ranks' random streams)."""
        rng = self._rng_states()
        if self.world > 1:  # through the backend's device: NCCL cannot gather CPU tensors
            rng = rng.to(collective_device(dist.get_backend()))
            ranks = [torch.empty_like(rng) for _ in range(self.world)]
            dist.all_gather(ranks, rng)
            rng = torch.stack(ranks).cpu()
        return {
            "format": CHECKPOINT_FORMAT, "code": code_version(), "world": self.world,
            "config": json.dumps(self.cfg.to_dict(), sort_keys=True),
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rng": rng,
            "progress": {"cur_nimg": self.cur_nimg, "g_steps": self.g_steps, "d_steps": self.d_steps,
                         "evals": self.evals, "last_eval_nimg": self._last_eval_nimg,
                         "data_batches": self.data_batches},
            "stats": self.stats.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        if state.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"checkpoint has format {state.get('format', 1)}; this code reads format "
                             f"{CHECKPOINT_FORMAT} (it was written by another version of smart)")
        if state["code"] != code_version():
            raise ValueError(f"checkpoint was written by smart code version {state['code']}, this is "
                             f"{code_version()}; resume with the code that started the run")
        if state["world"] != self.world:
            raise ValueError(f"checkpoint was written by {state['world']} workers, this run has {self.world}")
        mine = self.cfg.to_dict()
        theirs = json.loads(state["config"])
        for d in (mine, theirs):  # the run's length may be extended on resume; nothing else
            d["training"].pop("kimg", None)
        if mine != theirs:
            diff = sorted(k for k, v in flatten(theirs).items() if flatten(mine).get(k) != v)
            raise ValueError(f"checkpoint was written by a different config (differs in: {', '.join(diff)})")
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self._set_rng_states(state["rng"][self.rank] if self.world > 1 else state["rng"])
        p = state["progress"]
        self.cur_nimg, self.g_steps, self.d_steps, self.evals = (
            p["cur_nimg"], p["g_steps"], p["d_steps"], p["evals"])
        self._last_eval_nimg = p["last_eval_nimg"]
        self.data_batches = p["data_batches"]
        self._close_loader()  # the next batch comes from a loader that skips the ones consumed
        self.stats.load_state_dict(state["stats"])

    def save(self, path: str) -> None:
        """Atomic checkpoint: write a temp file, then rename over `path` (rank 0 writes; every
        rank of a distributed run must call it)."""
        state = self.state_dict()
        if self.rank == 0:
            tmp = f"{path}.tmp{os.getpid()}"
            torch.save(state, tmp)
            os.replace(tmp, path)

    def load(self, path: str) -> None:
        """Read onto the CPU: the nets and optimizers copy their tensors to their own device, and the
        random streams' states must stay CPU ByteTensors."""
        self.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
