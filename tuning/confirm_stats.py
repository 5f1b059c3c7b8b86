"""The statistics of a study's confirmation stage, pure (scipy only): each confirmed configuration's
per-seed objective values summarised (mean, sample std, 95% t-interval of the mean), each λ > 0
configuration compared with the λ = 0 baseline by Welch's t-test (difference of means, its 95%
interval, a two-sided p-value, Holm-corrected across the configurations), and the one-sentence
verdict a study ends with.

Welch rather than a permutation test: with 3-5 seeds per arm a permutation test cannot reach small
p-values at all (5 vs 5 seeds have only 252 splits), and Welch's test does not assume the two arms
share a variance (a regularizer may well change the spread across seeds).
"""
from __future__ import annotations

import math
import statistics

from scipy import stats

ALPHA = 0.05  # family-wise error rate of the K comparisons with the baseline (Holm)
LAMBDA, INTERVAL, T_MIN, T_MAX = ("regularizer.weight", "regularizer.interval", "regularizer.t_min",
                                  "regularizer.t_max")
METRIC_NAMES = {"fid": "FID"}


def describe(values: list[float]) -> dict:
    """Mean, sample std and the 95% t-interval of the mean (None for fewer than two values)."""
    n = len(values)
    mean = statistics.fmean(values) if n else None
    std = statistics.stdev(values) if n > 1 else None
    ci = None
    if n > 1:
        half = stats.t.ppf(0.975, n - 1) * std / math.sqrt(n)
        ci = [mean - half, mean + half]
    return {"values": list(values), "mean": mean, "std": std, "ci95": ci}


def welch(values: list[float], baseline: list[float]) -> dict:
    """`values` − `baseline`: difference of means, its 95% Welch interval, the two-sided p-value
    (None where a test is impossible: fewer than two values in an arm, or no spread at all)."""
    delta = statistics.fmean(values) - statistics.fmean(baseline)
    if len(values) < 2 or len(baseline) < 2 or (statistics.pvariance(values) == 0 == statistics.pvariance(baseline)):
        return {"delta": delta, "ci95": None, "p_value": None}
    res = stats.ttest_ind(values, baseline, equal_var=False)
    ci = res.confidence_interval(0.95)
    return {"delta": delta, "ci95": [float(ci.low), float(ci.high)], "p_value": float(res.pvalue)}


def holm(pvalues: list[float | None]) -> list[float | None]:
    """Holm's step-down adjustment (family-wise error control); None entries are not tests."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if p is not None)
    m, out, running = len(tested), list(pvalues), 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def label(params: dict) -> str:
    """A configuration as people write it: `λ=0.01, k=8, t∈[25,35]` (other keys as key=value)."""
    parts, rest = [], dict(params)
    weight = rest.pop(LAMBDA, None)
    if weight is not None:
        parts.append("λ=0" if weight == 0 else f"λ={weight:.3g}")
    interval, t_min, t_max = rest.pop(INTERVAL, None), rest.pop(T_MIN, None), rest.pop(T_MAX, None)
    if weight != 0:  # k and t mean nothing without the term
        if interval is not None:
            parts.append(f"k={interval}")
        if t_min is not None and t_max is not None:
            parts.append(f"t∈[{t_min},{t_max}]")
    parts += [f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in rest.items()]
    return ", ".join(parts) or "the base configuration"


def compare(configs: list[dict], baseline: dict | None, mode: str) -> list[dict]:
    """Confirmation entries: `configs` (λ > 0, each {"params", "values"}) and the `baseline`
    (or None) described; every config compared with the baseline, Holm-corrected across them, and
    `beats_baseline` only where the corrected p < ALPHA with the difference in the objective's
    direction (lower for mode min). The baseline's entry comes first."""
    entries = []
    if baseline is not None:
        entries.append({"params": baseline["params"], "label": label(baseline["params"]), "baseline": True,
                        **{k: v for k, v in baseline.items() if k not in ("params", "values")},
                        **describe(baseline["values"])})
    tests = []
    for c in configs:
        entry = {"params": c["params"], "label": label(c["params"]), "baseline": False,
                 **{k: v for k, v in c.items() if k not in ("params", "values")}, **describe(c["values"])}
        if baseline is not None and c["values"] and baseline["values"]:
            entry["vs_baseline"] = welch(c["values"], baseline["values"])
            tests.append(entry)
        entries.append(entry)
    for entry, adjusted in zip(tests, holm([t["vs_baseline"]["p_value"] for t in tests])):
        vs = entry["vs_baseline"]
        vs["p_raw"], vs["p_value"] = vs["p_value"], adjusted
        better = vs["delta"] < 0 if mode == "min" else vs["delta"] > 0
        entry["beats_baseline"] = adjusted is not None and adjusted < ALPHA and better
    return entries


def _num(v: float) -> str:
    text = f"{v:.3f}" if abs(v) < 100 else f"{v:.1f}"
    return text.replace("-", "−")


def _p(p: float | None) -> str:
    if p is None:
        return "p n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"


def _spread(entry: dict) -> str:
    return _num(entry["mean"]) + (f" ± {_num(entry['std'])}" if entry["std"] is not None else "")


def _seeds(entry: dict, base: dict | None) -> str:
    n, m = len(entry["values"]), len(base["values"]) if base else None
    return f"{n} seeds" if m in (None, n) else f"{n} vs {m} seeds"


def verdict(entries: list[dict], metric: str, mode: str) -> str:
    """One plain sentence: which configuration beats the plain GAN beyond seed noise (the best of
    those that do), or that none does (with the best one's numbers)."""
    name = METRIC_NAMES.get(metric, metric)
    base = next((e for e in entries if e["baseline"]), None)
    others = [e for e in entries if not e["baseline"] and e["mean"] is not None]
    if not others:
        return "no configuration was confirmed (every confirmation run failed or diverged)"
    sign = 1 if mode == "min" else -1
    winners = sorted((e for e in others if e.get("beats_baseline")), key=lambda e: sign * e["mean"])
    best = winners[0] if winners else min(others, key=lambda e: sign * e["mean"])
    if base is None or base["mean"] is None:
        ci = best["ci95"]
        interval = f", 95% CI [{_num(ci[0])}, {_num(ci[1])}]" if ci else ""
        return (f"{best['label']} is the best confirmed configuration: {name} {_spread(best)}{interval} "
                f"({_seeds(best, None)}; no λ=0 baseline was confirmed)")
    vs = best["vs_baseline"]
    ci = f", 95% CI [{_num(vs['ci95'][0])}, {_num(vs['ci95'][1])}]" if vs["ci95"] else ""
    numbers = (f"{name} {_spread(best)} vs {_spread(base)} (Δ {_num(vs['delta'])}{ci}, {_p(vs['p_value'])}, "
               f"{_seeds(best, base)})")
    if winners:
        more = f"; {len(winners) - 1} other configuration(s) also do" if len(winners) > 1 else ""
        return f"{best['label']} beats the plain GAN: {numbers}{more}"
    return f"no configuration beats the plain GAN beyond seed noise (best: {best['label']}, {numbers})"
