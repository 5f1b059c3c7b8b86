"""The training loop: D and G phases with lazy intervals, EMA of G, evals with callbacks, and a
state_dict that resumes bit-for-bit (nets, optimizers, EMA, RNG, progress).

Data-parallel runs (`distributed=True`, torch.distributed already initialised, e.g. by Ray Train):
`training.batch_size` stays the global batch, each rank draws batch_size / world samples from its
own random stream, gradients are averaged with one all_reduce per optimizer step (DDP's wrapper
cannot do R1's double backward), and only rank 0 evaluates. With one process nothing changes."""
from __future__ import annotations

import copy
import functools
import hashlib
import json
import math
import os
import time
from typing import Callable, Sequence

import torch
import torch.distributed as dist

from smart.config import RunConfig, flatten
from smart.data import build_dataset
from smart.losses import AdversarialLoss, ScoreMatchingRegularity
from smart.metrics import compute_metrics
from smart.nets import build_networks
from smart.score import build_score_model
from smart.timing import BranchClock

Callback = Callable[["Trainer", dict], None]
_EVAL_SEED_OFFSET = 1_000_003  # eval samples use their own stream, never the training one
_RANK_SEED_OFFSET = 7_919_017  # rank r > 0 of a distributed run trains on its own stream
CHECKPOINT_FORMAT = 3  # bump when the state_dict layout changes


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite."""


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device: cuda requested but no CUDA device is available")
    return torch.device(name)


def _adam(params, lr, beta1, beta2, ratio=1.0):
    """Adam with StyleGAN2's lazy-regularization correction for phases run every 1/ratio steps."""
    return torch.optim.Adam(params, lr=lr * ratio, betas=(beta1**ratio, beta2**ratio))


class Trainer:
    def __init__(self, cfg: RunConfig, callbacks: Sequence[Callback] = (), *, distributed: bool = False):
        self.cfg = cfg
        self.callbacks = list(callbacks)
        self.rank, self.world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
        if cfg.training.batch_size % self.world:
            raise ValueError(f"training.batch_size: {cfg.training.batch_size} is not divisible by the "
                             f"{self.world} workers (it is the global batch)")
        self.device = resolve_device(cfg.device)
        self.dataset = build_dataset(cfg)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            G, D = build_networks(cfg, self.dataset.shape, self.dataset.num_classes)
        self.G, self.D = G.to(self.device), D.to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.score_model = build_score_model(cfg, self.dataset).to(self.device)
        self.smart = ScoreMatchingRegularity.from_config(self.score_model, cfg.regularizer)
        self.adv = AdversarialLoss(cfg.optim.r1_gamma)

        o, reg = cfg.optim, cfg.regularizer
        g_ratio = reg.interval / (reg.interval + 1) if reg.phase == "separate" and reg.weight > 0 else 1.0
        self.opt_g = _adam(self.G.parameters(), o.g_lr, o.beta1, o.beta2, g_ratio)
        self.opt_d = _adam(self.D.parameters(), o.d_lr, o.beta1, o.beta2)

        seed = cfg.seed + self.rank * _RANK_SEED_OFFSET
        self.rng = torch.Generator().manual_seed(seed)  # data, latents, t and ε
        torch.manual_seed(seed)  # torch's global streams: the image nets' per-layer noise
        self.cur_nimg = 0
        self.g_steps = 0
        self.d_steps = 0
        self.evals = 0
        self._last_eval_nimg = 0
        self._sums: dict[str, torch.Tensor | float] = {}  # on the device: no host sync per step
        self._counts: dict[str, int] = {}
        self._train_seconds = 0.0
        self._g_seconds = 0.0
        self._smart_clock = BranchClock()

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

    # ---- sampling -----------------------------------------------------------------------------
    def _latents(self, n: int, generator: torch.Generator) -> torch.Tensor:
        return torch.randn(n, self.G.z_dim, generator=generator).to(self.device)

    def _inputs(self, n: int, generator: torch.Generator):
        """Latents and (conditional data only) class labels drawn from the data's label distribution."""
        z = self._latents(n, generator)
        labels = self.dataset.sample_labels(n, generator)
        return z, None if labels is None else labels.to(self.device)

    @torch.no_grad()
    def _generate_no_grad(self, n, generator, net):
        chunk = 4096 if self.dataset.domain == "toy" else 256
        xs, cs = [], []
        for i in range(0, n, chunk):
            z, labels = self._inputs(min(chunk, n - i), generator)
            xs.append(net(z, labels))
            cs.append(labels)
        return torch.cat(xs), None if cs[0] is None else torch.cat(cs)

    def generate(self, n: int, generator: torch.Generator | None = None, ema: bool = True,
                 with_labels: bool = False):
        """n samples from G_ema (or the current G), without gradients; with their class labels
        (None for unconditional data) when `with_labels`."""
        generator = generator or torch.Generator().manual_seed(self.cfg.seed + _EVAL_SEED_OFFSET)
        x, labels = self._generate_no_grad(n, generator, self.G_ema if ema else self.G)
        return (x, labels) if with_labels else x

    # ---- one iteration ------------------------------------------------------------------------
    def _log(self, name: str, value: torch.Tensor) -> None:
        """Accumulate a loss on its device; `_loss_means` reads (and checks) them once per eval."""
        self._sums[name] = self._sums.get(name, 0.0) + value.detach()
        self._counts[name] = self._counts.get(name, 0) + 1

    def _loss_means(self) -> dict[str, float]:
        """Mean of each loss since the last eval. A NaN/inf loss poisons its sum, so one check here
        catches a divergence anywhere in the interval (distributed runs also check every step in
        `_average_gradients`)."""
        means = {name: float(total) / self._counts[name] for name, total in self._sums.items()}
        bad = sorted(name for name, v in means.items() if not math.isfinite(v))
        if bad:
            raise TrainingDiverged(f"{', '.join(bad)} became non-finite before kimg {self.kimg:.1f}")
        return means

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

    def _d_phase(self, batch: int) -> None:
        real, real_labels = self.dataset.batch(batch, self.rng)
        real = real.to(self.device)
        real_labels = None if real_labels is None else real_labels.to(self.device)
        z, labels = self._inputs(batch, self.rng)
        fake = self.G(z, labels).detach()
        loss = self.adv.discriminator(self.D(real, real_labels), self.D(fake, labels))
        self._log("loss_d", loss)
        r1_every = self.cfg.optim.r1_interval
        if self.adv.r1_gamma > 0 and self.d_steps % r1_every == 0:
            r1 = self.adv.r1(self.D, real, real_labels)
            self._log("loss_r1", r1)
            loss = loss + r1 * r1_every
        self._step(self.opt_d, loss)
        self.d_steps += 1

    def _g_phase(self, batch: int) -> None:
        self.D.requires_grad_(False)
        z, labels = self._inputs(batch, self.rng)
        fake = self.G(z, labels)
        loss = self.adv.generator(self.D(fake, labels))
        self._log("loss_g", loss)
        aux = getattr(self.G, "aux_loss", None)  # Aurora's MoE load balancing, of this forward
        if aux is not None:
            self._log("loss_aux", aux)
            loss = loss + self.cfg.generator.aux_weight * aux
        if self.smart.active(self.g_steps, self.kimg):
            if self.cfg.regularizer.phase == "joint":
                term, value = self._timed_smart(fake, labels, generator=self.rng)
                loss = loss + term
            else:  # StyleGAN2's lazy recipe: own backward and optimizer step
                self._step(self.opt_g, loss)
                z, labels = self._inputs(batch, self.rng)
                term, value = self._timed_smart(self.G(z, labels), labels, generator=self.rng)
                loss = term
            self._log("loss_smart", value)
        self._step(self.opt_g, loss)
        self.D.requires_grad_(True)
        self.g_steps += 1

    def _timed_smart(self, x, *args, **kwargs):
        """The SMaRt term, its forward and backward time counted for `smart_share`."""
        t0 = time.perf_counter()
        term, value = self.smart(self._smart_clock.enter(x), *args, **kwargs)
        self._smart_clock.add(time.perf_counter() - t0)
        return self._smart_clock.exit(term), value

    @torch.no_grad()
    def _update_ema(self, batch: int) -> None:
        half_life = self.cfg.training.ema_kimg * 1000
        beta = 0.5 ** (batch / half_life) if half_life > 0 else 0.0
        for p_ema, p in zip(self.G_ema.parameters(), self.G.parameters()):
            p_ema.lerp_(p, 1 - beta)
        for b_ema, b in zip(self.G_ema.buffers(), self.G.buffers()):
            b_ema.copy_(b)

    # ---- the loop -----------------------------------------------------------------------------
    def train(self, until_kimg: float | None = None) -> dict[str, float]:
        """Train to `training.kimg` (or stop early at `until_kimg`), evaluating on schedule.
        Returns the last eval's metrics."""
        stop_nimg = self.total_nimg if until_kimg is None else min(self.total_nimg, int(until_kimg * 1000))
        batch = self.cfg.training.batch_size  # global; this rank draws batch // world
        local = batch // self.world
        metrics: dict[str, float] = {}
        self.G.train()
        self.D.train()
        tick = time.perf_counter()
        while self.cur_nimg < stop_nimg:
            self._d_phase(local)
            t_g = time.perf_counter()
            self._g_phase(local)
            self._g_seconds += time.perf_counter() - t_g
            self._update_ema(batch)
            self.cur_nimg += batch
            if self.cur_nimg >= self._next_eval_nimg():
                self._train_seconds += time.perf_counter() - tick
                metrics = self.evaluate()
                for cb in self.callbacks:
                    cb(self, metrics)
                tick = time.perf_counter()
        return metrics

    def evaluate(self) -> dict[str, float]:
        """Metrics on the EMA generator plus training statistics since the last eval (rank 0's
        shard); ranks > 0 of a distributed run only get {"kimg"}."""
        t0 = time.perf_counter()
        means = self._loss_means()  # first: a diverged run gets no metrics
        metrics = {"kimg": round(self.kimg, 3)}
        if self.rank == 0:
            samples = self.generate(self.eval_samples())
            metrics.update(compute_metrics(self.cfg.eval.metrics, self, samples))
            losses = ("loss_d", "loss_r1", "loss_g", "loss_smart")
            if hasattr(self.G, "aux_loss"):
                losses += ("loss_aux",)
            for name in losses:
                metrics[name] = means.get(name, math.nan)
            kimg_done = (self.cur_nimg - self._last_eval_nimg) / 1000
            metrics["kimg_per_s"] = kimg_done / self._train_seconds if self._train_seconds > 0 else math.nan
            metrics["smart_share"] = (self._smart_clock.seconds / self._g_seconds if self._g_seconds > 0
                                      else math.nan)
            metrics["sec_per_eval"] = time.perf_counter() - t0
        self._sums, self._counts, self._train_seconds, self._g_seconds = {}, {}, 0.0, 0.0
        self._smart_clock = BranchClock()
        self.evals += 1
        self._last_eval_nimg = self.cur_nimg
        return metrics

    def eval_samples(self) -> int:
        """Generated samples for this eval: eval.final_num_samples at the end of training, if set."""
        final = self.cfg.eval.final_num_samples
        return final if final and self.cur_nimg >= self.total_nimg else self.cfg.eval.num_samples

    # ---- state --------------------------------------------------------------------------------
    def _rng_states(self) -> torch.Tensor:
        """The trainer's stream and torch's global ones (CPU, and CUDA when used), as one tensor."""
        states = [self.rng.get_state(), torch.get_rng_state()]
        if self.device.type == "cuda":
            states.append(torch.cuda.get_rng_state(self.device))
        return torch.cat(states)

    def _set_rng_states(self, flat: torch.Tensor) -> None:
        n = self.rng.get_state().numel()
        self.rng.set_state(flat[:n].clone())
        torch.set_rng_state(flat[n:2 * n].clone())
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(flat[2 * n:].clone(), self.device)

    def state_dict(self) -> dict:
        """In a distributed run every rank must call this (it gathers the ranks' random streams)."""
        rng = self._rng_states()
        if self.world > 1:
            ranks = [torch.empty_like(rng) for _ in range(self.world)]
            dist.all_gather(ranks, rng)
            rng = torch.stack(ranks)
        return {
            "format": CHECKPOINT_FORMAT, "code": code_version(), "world": self.world,
            "config": json.dumps(self.cfg.to_dict(), sort_keys=True),
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "rng": rng,
            "progress": {"cur_nimg": self.cur_nimg, "g_steps": self.g_steps, "d_steps": self.d_steps,
                         "evals": self.evals, "last_eval_nimg": self._last_eval_nimg},
            "stats": {"sums": {k: float(v) for k, v in self._sums.items()}, "counts": dict(self._counts)},
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
        self._sums, self._counts = dict(state["stats"]["sums"]), dict(state["stats"]["counts"])

    def save(self, path: str) -> None:
        """Atomic checkpoint: write a temp file, then rename over `path` (rank 0 writes; every
        rank of a distributed run must call it)."""
        state = self.state_dict()
        if self.rank == 0:
            tmp = f"{path}.tmp{os.getpid()}"
            torch.save(state, tmp)
            os.replace(tmp, path)

    def load(self, path: str) -> None:
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))
