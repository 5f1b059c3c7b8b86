"""Search efficiency on studies/toy_ring.yaml: TPE+ASHA vs random search vs the grid a paper would
run (λ=0 plus λ × k × t-range from the study's `grid:` lists, every trial to the end), over study
seeds. Each trial's final FID counts once it ends; trials are taken in creation order, so "kimg"
is the total training spent by the time a result is in hand. Every method evaluates the λ=0
baseline first (the same trial, same seed), so the tables are printed twice: all trials, and the
regularized trials only (λ > 0), which compares how well each method searches λ, k and t.

    python benchmarks/search_efficiency.py                                   # quick (~12 min here)
    python benchmarks/search_efficiency.py --kimg 192 --trials 24 --seeds 0 1 2 3 4   # full size

Target: TPE+ASHA reaches the grid's best FID with <= 1/3 of the grid's kimg.
MLflow is off here (it does not change what is searched); see study_overhead.py for its cost.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

from tuning.run_study import main as run_study  # noqa: E402

STUDY = os.path.join(ROOT, "studies", "toy_ring.yaml")
METHODS = {
    "tpe+asha": [],
    "random": ["sampler.kind=random", "scheduler.kind=none"],
    "grid": ["sampler.kind=grid", "scheduler.kind=none", "budget.num_samples=null"],
}


def run(method: str, seed: int, args, storage: str) -> list[dict]:
    sets = [f"sampler.seed={seed}", f"training.kimg={args.kimg}", "training.eval_every_kimg=32",
            "scheduler.grace_period=32", f"budget.num_samples={args.trials}", "mlflow.enabled=false",
            *METHODS[method]]
    where = os.path.join(storage, f"{method}-seed{seed}-kimg{args.kimg:g}-trials{args.trials}")
    argv = [STUDY, "--storage", where]
    for s in sets:
        argv += ["--set", s]
    summary = os.path.join(where, "toy_ring", "summary.json")
    if not os.path.exists(summary):  # else reuse the finished study of an earlier invocation
        shutil.rmtree(where, ignore_errors=True)
        with contextlib.redirect_stdout(io.StringIO()):
            assert run_study(argv) == 0, f"{method} seed {seed} failed"
    with open(summary) as fh:
        trials = json.load(fh)["trials"]
    print(f"seed {seed} {method}: {len(trials)} trials done", file=sys.stderr, flush=True)
    return sorted(trials, key=lambda t: t["number"])


def curve(trials: list[dict], regularized_only: bool) -> list[tuple[float, float]]:
    """(cumulative kimg, best FID so far) after each trial, in creation order."""
    out, spent, best = [], 0.0, float("inf")
    for t in trials:
        if regularized_only and t["config"]["regularizer.weight"] == 0:
            continue
        spent += t["metrics"]["kimg"]
        best = min(best, t["metrics"]["fid"])
        out.append((spent, best))
    return out


def kimg_to_reach(points, target) -> float | None:
    return next((k for k, best in points if best <= target), None)


def best_at(points, budget) -> float:
    return min((b for k, b in points if k <= budget), default=float("nan"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kimg", type=float, default=96.0, help="training.kimg per full trial")
    p.add_argument("--trials", type=int, default=16, help="trials of TPE+ASHA and of random search")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", default="bench_out/search_efficiency", help="keeps every study's summary.json")
    args = p.parse_args()

    from tuning.cluster import init_ray

    init_ray(num_cpus=2, dashboard=False)
    results = {m: {seed: run(m, seed, args, args.out) for seed in args.seeds} for m in METHODS}
    print(f"toy_ring, {args.kimg:g} kimg per full trial; TPE+ASHA and random: {args.trials} trials; "
          f"grid: {len(results['grid'][args.seeds[0]])} trials")
    for regularized_only in (False, True):
        print("\n== " + ("regularized trials only (λ > 0)" if regularized_only else "all trials (incl. the λ=0 baseline)"))
        report({m: {s: curve(t, regularized_only) for s, t in r.items()} for m, r in results.items()}, args.seeds)
    return 0


def report(curves: dict, seeds: list[int]) -> None:
    print(f"{'method':10}{'seed':>5}{'trials':>7}{'total kimg':>11}{'best FID':>10}"
          f"{'kimg to grid best':>19}{'/ grid kimg':>12}")
    fractions = {m: [] for m in METHODS}
    for seed in seeds:
        grid_kimg, grid_best = curves["grid"][seed][-1]
        for method in METHODS:
            pts = curves[method][seed]
            reach = kimg_to_reach(pts, grid_best)
            frac = reach / grid_kimg if reach is not None else float("inf")
            fractions[method].append(frac)
            print(f"{method:10}{seed:>5}{len(pts):>7}{pts[-1][0]:>11.0f}{pts[-1][1]:>10.4f}"
                  f"{'not reached' if reach is None else f'{reach:.0f}':>19}"
                  f"{'-' if reach is None else f'{frac:.2f}':>12}")
    print("\nbest FID so far at a share of the grid's kimg (mean over seeds)")
    shares = [0.1, 0.2, 1 / 3, 0.5, 1.0]
    print(f"{'method':10}" + "".join(f"{s:>9.0%}" for s in shares) + f"{'reached grid best':>19}")
    for method in METHODS:
        row = [statistics.mean(best_at(curves[method][s], share * curves["grid"][s][-1][0]) for s in seeds)
               for share in shares]
        hits = sum(f <= 1 / 3 for f in fractions[method])
        print(f"{method:10}" + "".join(f"{v:>9.4f}" for v in row)
              + f"{f'{hits}/{len(seeds)} within 1/3':>19}")


if __name__ == "__main__":
    sys.exit(main())
