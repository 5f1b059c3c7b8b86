"""The paper's premise on a thin manifold: ring8 on a plane in R^d, λ=0 vs SMaRt, mean ± std over seeds,
with Welch t-tests of each SMaRt row against the plain GAN of the same game (issue 13).

    python benchmarks/toy_manifold.py                        # the default rows, 3 seeds, 2 workers
    python benchmarks/toy_manifold.py --quick                # d ∈ {2, 32}, gan and paper, 2 seeds, 32 kimg
    python benchmarks/toy_manifold.py --dims 32 --rows gan paper_k1 --seeds 5 --json out.json

Data: ring8 (std 0.05) on a 2-D plane in R^d, normal_std 0.005; MLP G (z 16) and D; batch 128.
Rows (dotted overrides, see ROWS), all at k = 8, t ∈ [25, 35] unless named otherwise:
  gan, weak, paper          λ = 0, 0.01, 0.1 (NS loss, lazy R1)                       every d
  *_no_r1, *_minimax        λ = 0 and 0.1 without R1 / with the original minimax G loss  d = 32
  paper_k1                  λ = 0.1/8 at k = 1: the same average push, not intermittent (Adam)
  paper_sds                 λ = 0.1 without the score network's Jacobian                (--rows only)
  *_fast_d                  λ = 0 and 0.1 with D's learning rate ×3 (a faster D)        (--rows only)
Columns: FID (toy-rbf on in-plane coordinates and the distance from the plane), off-manifold share
(> 4 mode stds from every mode centre in R^d), modes covered, G's normal spread in units of the
data's (at mid-training and at the end), D's saturation share (sigmoid(logit) < 0.01) and logits on/
off the manifold, the adversarial gradient per sample on/off it, and the SMaRt term's share of G's
parameter gradient, ‖λ∇L_score‖ / (‖λ∇L_score‖ + ‖∇L_adv‖), in the hidden layers at initialisation.
"""
from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time

import torch
from scipy import stats

from toy_smart_vs_gan import summarise  # noqa: E402  (a sibling script: mean ± std over seeds)

from smart.config import RunConfig
from smart.loop import Trainer
from smart.metrics import prepare_metrics
from smart.models import draw_inputs

BASE = {"data.kind": "ring8", "data.normal_std": 0.005, "generator.z_dim": 16, "training.batch_size": 128,
        "eval.num_samples": 2000, "eval.grad_samples": 1024,
        "eval.metrics": ["fid", "modes", "grad_norms", "saturation"]}
PAPER = {"regularizer.weight": 0.1, "regularizer.interval": 8, "regularizer.t_min": 25, "regularizer.t_max": 35}
NO_R1, MINIMAX = {"optim.r1_gamma": 0.0}, {"loss.g_loss": "minimax"}
ROWS: dict[str, dict] = {
    "gan": {"regularizer.weight": 0.0},
    "weak": {**PAPER, "regularizer.weight": 0.01},
    "paper": PAPER,
    "gan_no_r1": {"regularizer.weight": 0.0, **NO_R1},
    "paper_no_r1": {**PAPER, **NO_R1},
    "gan_minimax": {"regularizer.weight": 0.0, **MINIMAX},
    "paper_minimax": {**PAPER, **MINIMAX},
    "paper_k1": {**PAPER, "regularizer.weight": 0.1 / 8, "regularizer.interval": 1},
    "paper_sds": {**PAPER, "regularizer.mode": "sds"},
    "gan_fast_d": {"regularizer.weight": 0.0, "optim.d_lr": 3e-3},
    "paper_fast_d": {**PAPER, "optim.d_lr": 3e-3},
}
BASELINE = {"weak": "gan", "paper": "gan", "paper_no_r1": "gan_no_r1", "paper_minimax": "gan_minimax",
            "paper_k1": "gan", "paper_sds": "gan", "paper_fast_d": "gan_fast_d"}
DIMS = (2, 8, 32, 128)
EVERY_DIM = ("gan", "weak", "paper")
EXTRA_DIMS = {row: (32,) for row in ROWS if row not in EVERY_DIM}  # the mechanism rows: d = 32 only
DEFAULT_ROWS = [*EVERY_DIM, "gan_no_r1", "paper_no_r1", "gan_minimax", "paper_minimax", "paper_k1"]
COLUMNS = ["fid", "off_manifold_ratio", "modes_covered", "spread_mid", "normal_spread_ratio", "d_saturated",
           "d_logit_on", "d_logit_off", "grad_adv_on", "grad_adv_off", "share_hidden_init"]
TESTED = ["fid", "off_manifold_ratio", "modes_covered", "normal_spread_ratio"]
PROBE_COLUMNS = [f"dS{when}_{term}_{rule}" for when in ("_mid", "") for term, rule in
                 (("smart", "adam"), ("smart", "gd"), ("adv", "adam"), ("adv", "gd"))] + \
                ["dS_mid_smart_adam_lin_hidden", "dS_mid_smart_adam_lin_out", "share_hidden_end"]


def term_share(trainer: Trainer, n: int = 512) -> dict[str, float]:
    """The weighted SMaRt term's share of G's parameter gradient beside the adversarial one, in the
    hidden layers and in the output layer, on one batch."""
    weight = trainer.objective.smart.effective_weight
    if weight == 0:
        return {"share_hidden": 0.0, "share_out": 0.0}
    gen = torch.Generator().manual_seed(12345)
    z, labels = draw_inputs(n, trainer.G.z_dim, trainer.dataset, gen, trainer.device)
    fake = trainer.G(z, labels)
    adv = trainer.objective.adversarial.generator(trainer.D(fake, labels))
    smart, _ = trainer.objective.smart(fake, labels, generator=gen)
    layers = [m for m in trainer.G.net if any(True for _ in m.parameters())]
    groups = {"hidden": [p for m in layers[:-1] for p in m.parameters()], "out": list(layers[-1].parameters())}
    out = {}
    for name, params in groups.items():
        g_adv = torch.autograd.grad(adv, params, retain_graph=True)
        g_smart = torch.autograd.grad(smart, params, retain_graph=True)
        n_adv = math.sqrt(sum(float(g.square().sum()) for g in g_adv))
        n_smart = math.sqrt(sum(float(g.square().sum()) for g in g_smart))
        out[f"share_{name}"] = n_smart / (n_smart + n_adv)
    trainer.G.zero_grad(set_to_none=True)
    trainer.D.zero_grad(set_to_none=True)
    return out


def run_one(task: tuple[int, str, int, float]) -> dict:
    """One run; beside its final metrics: the term's share of G's gradient at initialisation and at
    the end, the normal spread at mid-training and, for a SMaRt row in R^d, G's spread response to
    one update of each term (spread_response) at mid-training (dS_mid_*) and at the end (dS_*)."""
    d, row, seed, kimg = task
    cfg = RunConfig.from_dict({}, {**BASE, "data.ambient_dim": d, "seed": seed, "training.kimg": kimg,
                                   "training.eval_every_kimg": kimg / 2, **ROWS[row]})
    trainer = Trainer(cfg)
    out = {"d": d, "row": row, "seed": seed, **{f"{k}_init": v for k, v in term_share(trainer).items()}}
    probe = d > 2 and trainer.objective.smart.effective_weight > 0
    evals = []

    def record(tr, metrics):
        evals.append(metrics)
        if probe:
            tag = "dS_mid" if len(evals) == 1 else "dS"
            out.update({f"{tag}_{k}": v for k, v in spread_response(tr).items()})

    trainer.callbacks.append(record)
    out.update(trainer.train())
    out.update({f"{k}_end": v for k, v in term_share(trainer).items()})
    out["spread_mid"] = evals[0].get("normal_spread_ratio", math.nan)
    trainer.close()
    return out


def spread_response(trainer: Trainer, n: int = 2048) -> dict[str, float]:
    """How one update of each term alone changes G's normal spread S (RMS of the normal coordinates),
    in % of S: the term's gradient g preconditioned as G's Adam does now, −lr·g/(√v̂ + eps) with the
    trainer's own second moments v̂ (momentum left out), against a plain gradient step −η·g of the
    same length. `{term}_{rule}`: the change after the step; `{term}_{rule}_lin_{part}`: its first-order
    part from the hidden layers or the output layer (Σ ∂S/∂θ·Δθ over that part's parameters).
    term: adv (the adversarial G loss) or smart (λ·L_score); rule: adam or gd."""
    gen = torch.Generator().manual_seed(54321)
    z, labels = draw_inputs(n, trainer.G.z_dim, trainer.dataset, gen, trainer.device)
    layers = [m for m in trainer.G.net if any(True for _ in m.parameters())]
    parts = {"hidden": [p for m in layers[:-1] for p in m.parameters()], "out": list(layers[-1].parameters())}
    params = parts["hidden"] + parts["out"]

    def spread():
        return trainer.dataset.to_plane(trainer.G(z, labels))[1].square().mean().sqrt()

    s0 = spread()
    grad_s = torch.autograd.grad(s0, params)
    s0 = float(s0.detach())
    losses = {"adv": lambda: trainer.objective.adversarial.generator(trainer.D(trainer.G(z, labels), labels)),
              "smart": lambda: trainer.objective.smart(trainer.G(z, labels), labels, generator=gen)[0]}
    group = trainer.opt_g.param_groups[0]
    beta2, eps, lr = group["betas"][1], group["eps"], group["lr"]
    out = {}
    for name, loss in losses.items():
        grads = torch.autograd.grad(loss(), params)
        adam = []
        for p, g in zip(params, grads):
            state = trainer.opt_g.state[p]
            v_hat = state["exp_avg_sq"] / (1 - beta2 ** float(state["step"]))
            adam.append(-lr * g / (v_hat.sqrt() + eps))
        eta = math.sqrt(sum(float(a.square().sum()) for a in adam) / sum(float(g.square().sum()) for g in grads))
        for rule, steps in (("adam", adam), ("gd", [-eta * g for g in grads])):
            with torch.no_grad():
                for p, step in zip(params, steps):
                    p.add_(step)
                out[f"{name}_{rule}"] = 100 * (float(spread().detach()) / s0 - 1)
                for p, step in zip(params, steps):
                    p.sub_(step)
            start = 0
            for part, ps in parts.items():
                dot = sum(float((gs * st).sum()) for gs, st in zip(grad_s[start:start + len(ps)],
                                                                   steps[start:start + len(ps)]))
                out[f"{name}_{rule}_lin_{part}"] = 100 * dot / s0
                start += len(ps)
    trainer.G.zero_grad(set_to_none=True)
    trainer.D.zero_grad(set_to_none=True)
    return out


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def cells(dims, rows) -> list[tuple[int, str]]:
    return [(d, row) for d in dims for row in rows if d in EXTRA_DIMS.get(row, DIMS)]


def welch(a: list[float], b: list[float]) -> str:
    """mean(a) − mean(b), its 95% Welch interval and p (n/a when either side is constant or missing)."""
    a, b = [v for v in a if math.isfinite(v)], [v for v in b if math.isfinite(v)]
    if not a or not b:
        return "n/a"
    if len(a) < 2 or len(b) < 2 or (max(a) == min(a) and max(b) == min(b)):
        return f"{sum(a) / len(a) - sum(b) / len(b):+.3g} (n/a)"
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    return f"{sum(a) / len(a) - sum(b) / len(b):+.3g} [{ci.low:+.3g}, {ci.high:+.3g}] p={res.pvalue:.2g}"


def report(results: list[dict], dims, rows) -> None:
    print("| d | row | " + " | ".join(COLUMNS) + " |")
    print("|" + "---|" * (len(COLUMNS) + 2))
    for d, row in cells(dims, rows):
        got = [r for r in results if r["d"] == d and r["row"] == row]
        print(f"| {d} | {row} | " + " | ".join(summarise([r.get(c, math.nan) for r in got]) for c in COLUMNS) + " |")
    probed = [(d, row) for d, row in cells(dims, rows)
              if any("dS_smart_adam" in r for r in results if r["d"] == d and r["row"] == row)]
    if probed:
        print("\nG's normal spread after one update of each term alone, % change (mid: at half-time; "
              "adam: preconditioned by G's Adam state; gd: a plain step of the same length; lin_*: "
              "first-order part from the hidden / output layers)\n")
        print("| d | row | " + " | ".join(PROBE_COLUMNS) + " |")
        print("|" + "---|" * (len(PROBE_COLUMNS) + 2))
        for d, row in probed:
            got = [r for r in results if r["d"] == d and r["row"] == row]
            print(f"| {d} | {row} | " + " | ".join(summarise([r.get(c, math.nan) for r in got])
                                                  for c in PROBE_COLUMNS) + " |")
    print("\nWelch t-tests, SMaRt row minus its plain GAN (same d, loss, R1, D lr): "
          "difference of means [95% CI] and p\n")
    print("| d | row − baseline | " + " | ".join(TESTED) + " |")
    print("|" + "---|" * (len(TESTED) + 2))
    for d, row in cells(dims, rows):
        base = BASELINE.get(row)
        if base is None or (d, base) not in cells(dims, rows):
            continue
        a = [r for r in results if r["d"] == d and r["row"] == row]
        b = [r for r in results if r["d"] == d and r["row"] == base]
        print(f"| {d} | {row} − {base} | " + " | ".join(welch([r.get(c, math.nan) for r in a],
                                                                [r.get(c, math.nan) for r in b])
                                                          for c in TESTED) + " |")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dims", nargs="+", type=int, default=list(DIMS))
    p.add_argument("--rows", nargs="+", default=DEFAULT_ROWS, choices=list(ROWS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--kimg", type=float, default=96.0, help="kimg per run (batch 128: 750 G steps)")
    p.add_argument("--workers", type=int, default=2, help="runs in parallel, one thread each")
    p.add_argument("--quick", action="store_true", help="d ∈ {2, 32}, gan and paper, 2 seeds, 32 kimg")
    p.add_argument("--json", help="also write every run's metrics here")
    p.add_argument("--report", metavar="JSON", help="print the tables of a --json file of an earlier run (no training)")
    args = p.parse_args(argv)
    if args.report:
        with open(args.report) as fh:
            results = json.load(fh)
        dims = sorted({r["d"] for r in results})
        report(results, dims, [row for row in ROWS if any(r["row"] == row for r in results)])
        return 0
    if args.quick:
        args.dims, args.rows, args.seeds, args.kimg = [2, 32], ["gan", "paper"], 2, 32.0

    tasks = [(d, row, seed, args.kimg) for d, row in cells(args.dims, args.rows) for seed in range(args.seeds)]
    start = time.perf_counter()
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    for d in args.dims:  # the FID reference statistics, cached once before the workers read them
        prepare_metrics(RunConfig.from_dict({}, {**BASE, "data.ambient_dim": d}))
    results = []
    with mp.get_context("spawn").Pool(args.workers, initializer=_init_worker, initargs=(1,)) as pool:
        for r in pool.imap_unordered(run_one, tasks):
            results.append(r)
            if args.json:  # after every run, so that an interrupted benchmark keeps what it measured
                with open(args.json, "w") as fh:
                    json.dump(results, fh, indent=1)
            print(f"  [{len(results)}/{len(tasks)}] d={r['d']} {r['row']} seed={r['seed']}: fid={r['fid']:.3f} "
                  f"off={r['off_manifold_ratio']:.3f} spread={r.get('normal_spread_ratio', math.nan):.2f} "
                  f"sat={r['d_saturated']:.3f}", file=sys.stderr, flush=True)

    print(f"\nring8 in R^d, normal_std 0.005, {args.kimg:g} kimg per run (batch 128), {args.seeds} seeds, "
          f"mean ± std; 'on' ≤ 3 mode stds from a mode centre, 'off' > 4 (distance in R^d)\n")
    report(results, args.dims, args.rows)
    print(f"\nwall: {time.perf_counter() - start:.0f} s with {args.workers} workers")
    return 0


if __name__ == "__main__":
    sys.exit(main())
