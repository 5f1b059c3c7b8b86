"""Search efficiency on studies/toy_ring.yaml: TPE+ASHA vs random search vs the grid a paper would
run (λ=0 plus λ × k × t-range from the study's `grid:` lists, every trial to the end), over study
seeds. Each trial's final FID counts once it ends; trials are taken in creation order, so "kimg"
is the total training spent by the time a result is in hand. Every method evaluates the λ=0
baseline first (the same trial, same seed), so the tables are printed twice: all trials, and the
regularized trials only (λ > 0), which compares how well each method searches λ, k and t.

    python benchmarks/search_efficiency.py                                   # quick (~12 min here)
    python benchmarks/search_efficiency.py --kimg 192 --trials 24 --seeds 0 1 2 3 4   # full size
    python benchmarks/search_efficiency.py --replicates 2 --confirm 5 --methods tpe+asha grid  # confirmed

Target: TPE+ASHA reaches the grid's best FID with <= 1/3 of the grid's kimg.

With `--confirm S` every study also runs its confirmation stage (the search's best configuration
retrained with S fresh seeds, tuning/confirm.py) and a last table compares confirmed answers: a
method's answer counts as reaching the grid's when the 95% Welch interval of (its confirmed mean −
the grid's) reaches 0 or below, i.e. it is not worse beyond seed noise; its cost is the search kimg
spent (replicates included) up to the trial that first trained that configuration.
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

from tuning.confirm import params_of  # noqa: E402
from tuning.confirm_stats import welch  # noqa: E402
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
            f"budget.replicates={args.replicates}", *METHODS[method]]
    if args.confirm:
        sets += ["confirm.top_k=1", f"confirm.seeds={args.confirm}", "confirm.baseline=false"]
    where = os.path.join(storage, f"{method}-seed{seed}-kimg{args.kimg:g}-trials{args.trials}"
                         f"-r{args.replicates}-confirm{args.confirm}")
    argv = [STUDY, "--storage", where]
    for s in sets:
        argv += ["--set", s]
    summary = os.path.join(where, "toy_ring", "summary.json")
    if not os.path.exists(summary):  # else reuse the finished study of an earlier invocation
        shutil.rmtree(where, ignore_errors=True)
        with contextlib.redirect_stdout(io.StringIO()):
            assert run_study(argv) == 0, f"{method} seed {seed} failed"
    with open(summary) as fh:
        doc = json.load(fh)
    print(f"seed {seed} {method}: {len(doc['trials'])} trials done", file=sys.stderr, flush=True)
    return {**doc, "trials": sorted(doc["trials"], key=lambda t: t["number"])}


def spent_kimg(t: dict) -> float:
    """Training a trial cost: its kimg for each replicate."""
    return t["metrics"]["kimg"] * len(t.get("replicates") or [None])


def curve(trials: list[dict], regularized_only: bool) -> list[tuple[float, float]]:
    """(cumulative kimg, best FID so far) after each trial, in creation order."""
    out, spent, best = [], 0.0, float("inf")
    for t in trials:
        if regularized_only and t["config"]["regularizer.weight"] == 0:
            continue
        spent += spent_kimg(t)
        best = min(best, t["metrics"]["fid"])
        out.append((spent, best))
    return out


def confirmed(summary: dict) -> dict:
    """The confirmed answer: its entry (values per seed) and the search kimg spent up to the trial
    that first trained that configuration, and in all."""
    entry = summary["confirmation"][0]
    spent, found = 0.0, None
    for t in summary["trials"]:
        spent += spent_kimg(t)
        if found is None and params_of(t["config"]) == entry["params"]:
            found = spent
    return {**entry, "found_kimg": found, "search_kimg": spent}


def confirmed_report(summaries: dict, seeds: list[int]) -> None:
    print("\n== confirmed answers: each study's best configuration retrained with fresh seeds")
    print(f"{'method':10}{'seed':>5}  {'configuration':28}{'FID mean ± std':>17}{'Δ vs grid [95% CI]':>28}"
          f"{'reaches':>8}{'kimg found':>11}{'/ grid kimg':>12}")
    hits = {m: 0 for m in summaries}
    for seed in seeds:
        grid = confirmed(summaries["grid"][seed])
        for method in summaries:
            c = confirmed(summaries[method][seed])
            vs = welch(c["values"], grid["values"])
            ci = vs["ci95"]
            reach = method == "grid" or (ci[0] <= 0 if ci else vs["delta"] <= 0)
            frac = c["found_kimg"] / grid["search_kimg"]
            hits[method] += reach and frac <= 1 / 3
            delta = "-" if method == "grid" else f"{vs['delta']:+.4f} [{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "-"
            print(f"{method:10}{seed:>5}  {c['label'][:28]:28}{c['mean']:>9.4f} ± {c['std'] or 0:.4f}{delta:>28}"
                  f"{'yes' if reach else 'no':>8}{c['found_kimg']:>11.0f}{frac:>12.2f}")
    print("within the grid's confirmed answer at <= 1/3 of its kimg: "
          + ", ".join(f"{m} {hits[m]}/{len(seeds)}" for m in summaries if m != "grid"))


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
    p.add_argument("--replicates", type=int, default=1, help="budget.replicates: seeds per searched configuration")
    p.add_argument("--confirm", type=int, default=0, metavar="S",
                   help="confirm each study's best configuration with S fresh seeds (0: off)")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS),
                   help="which methods to run (the grid always runs: it is the reference)")
    args = p.parse_args()
    methods = [m for m in METHODS if m in args.methods or m == "grid"]

    from tuning.cluster import init_ray

    init_ray(num_cpus=2, dashboard=False)
    summaries = {m: {seed: run(m, seed, args, args.out) for seed in args.seeds} for m in methods}
    results = {m: {seed: s["trials"] for seed, s in r.items()} for m, r in summaries.items()}
    print(f"toy_ring, {args.kimg:g} kimg per full trial, {args.replicates} replicate(s) per trial; "
          f"TPE+ASHA and random: {args.trials} trials; grid: {len(results['grid'][args.seeds[0]])} trials")
    for regularized_only in (False, True):
        print("\n== " + ("regularized trials only (λ > 0)" if regularized_only else "all trials (incl. the λ=0 baseline)"))
        report({m: {s: curve(t, regularized_only) for s, t in r.items()} for m, r in results.items()}, args.seeds)
    if args.confirm:
        confirmed_report(summaries, args.seeds)
    return 0


def report(curves: dict, seeds: list[int]) -> None:
    print(f"{'method':10}{'seed':>5}{'trials':>7}{'total kimg':>11}{'best FID':>10}"
          f"{'kimg to grid best':>19}{'/ grid kimg':>12}")
    fractions = {m: [] for m in curves}
    for seed in seeds:
        grid_kimg, grid_best = curves["grid"][seed][-1]
        for method in curves:
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
    for method in curves:
        row = [statistics.mean(best_at(curves[method][s], share * curves["grid"][s][-1][0]) for s in seeds)
               for share in shares]
        hits = sum(f <= 1 / 3 for f in fractions[method])
        print(f"{method:10}" + "".join(f"{v:>9.4f}" for v in row)
              + f"{f'{hits}/{len(seeds)} within 1/3':>19}")


if __name__ == "__main__":
    sys.exit(main())
