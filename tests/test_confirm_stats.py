"""The confirmation stage's statistics against hand-computed textbook values, and its verdicts."""
import re

import pytest

from tuning.confirm_stats import compare, describe, holm, label, verdict, welch

SMART = {"regularizer.weight": 0.01, "regularizer.interval": 8, "regularizer.t_min": 25, "regularizer.t_max": 35}
BASE = {"regularizer.weight": 0.0, "regularizer.interval": 8, "regularizer.t_min": 25, "regularizer.t_max": 35}


def test_describe_is_the_t_interval_of_the_mean():
    d = describe([1.0, 2.0, 3.0, 4.0, 5.0])
    assert d["mean"] == 3.0 and d["std"] == pytest.approx(1.5811388)
    assert d["ci95"] == pytest.approx([3 - 2.776445 * 1.5811388 / 5 ** 0.5, 3 + 2.776445 * 1.5811388 / 5 ** 0.5])
    assert describe([0.5]) == {"values": [0.5], "mean": 0.5, "std": None, "ci95": None}


def test_welch_matches_the_textbook():
    # equal variances 2.5, n = 5: t = −2 / sqrt(2.5/5 + 2.5/5) = −2 on 8 df; t(0.975, 8) = 2.306004
    w = welch([1.0, 2.0, 3.0, 4.0, 5.0], [3.0, 4.0, 5.0, 6.0, 7.0])
    assert w["delta"] == -2.0
    assert w["p_value"] == pytest.approx(0.080516, abs=1e-5)
    assert w["ci95"] == pytest.approx([-2 - 2.306004, -2 + 2.306004], abs=1e-5)
    assert welch([1.0], [2.0, 3.0])["p_value"] is None
    assert welch([1.0, 1.0], [1.0, 1.0])["p_value"] is None  # no spread: no test


def test_holm_steps_down_and_stays_monotone():
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, None, 0.01]) == [0.5, None, 0.02]
    assert holm([0.9, 0.8]) == [1.0, 1.0]


def test_labels():
    assert label(SMART) == "λ=0.01, k=8, t∈[25,35]"
    assert label(BASE) == "λ=0"  # k and t mean nothing without the term
    assert label({"regularizer.weight": 0.1, "optim.d_lr": 0.002}) == "λ=0.1, optim.d_lr=0.002"


def _entries(smart_values, base_values, mode="min", more=()):
    configs = [{"params": SMART, "values": smart_values}, *more]
    return compare(configs, {"params": BASE, "values": base_values}, mode)


def test_a_clear_improvement_beats_the_baseline_with_the_issue_sentence():
    entries = _entries([0.048, 0.050, 0.052, 0.049, 0.051], [0.052, 0.057, 0.062, 0.055, 0.059])
    base, smart = entries
    assert base["baseline"] and "vs_baseline" not in base and base["label"] == "λ=0"
    assert smart["beats_baseline"] and smart["vs_baseline"]["delta"] == pytest.approx(-0.007)
    text = verdict(entries, "fid", "min")  # Welch df ≈ 5.3: t = 2.52, half-width 0.0047
    assert re.fullmatch(r"λ=0\.01, k=8, t∈\[25,35\] beats the plain GAN: FID 0\.050 ± 0\.002 vs 0\.057 ± 0\.004 "
                        r"\(Δ −0\.007, 95% CI \[−0\.012, −0\.002\], p = 0\.011, 5 seeds\)", text), text


def test_noise_and_the_wrong_direction_do_not_beat_the_baseline():
    noisy = _entries([0.050, 0.060, 0.045, 0.065, 0.055], [0.052, 0.057, 0.062, 0.055, 0.059])
    assert not noisy[1]["beats_baseline"]
    assert verdict(noisy, "fid", "min").startswith("no configuration beats the plain GAN beyond seed noise "
                                                   "(best: λ=0.01, k=8, t∈[25,35], FID 0.055 ± 0.008 vs")
    worse = _entries([0.090, 0.091, 0.092], [0.050, 0.051, 0.052])  # significant, but higher FID
    assert worse[1]["vs_baseline"]["p_value"] < 0.001 and not worse[1]["beats_baseline"]
    higher = _entries([0.090, 0.091, 0.092], [0.050, 0.051, 0.052], mode="max")  # higher is better here
    assert higher[1]["beats_baseline"]


def test_holm_correction_can_take_a_win_away():
    base = [0.0, 1.0, 2.0, 3.0, 4.0]
    lucky = [v - 2.45 for v in base]  # t = −2.45 on 8 df: alone p ≈ 0.040 < 0.05 ...
    assert welch(lucky, base)["p_value"] < 0.05
    other = {"params": {**SMART, "regularizer.weight": 0.1}, "values": [0.5, 1.5, 2.5, 3.5, 4.5]}
    entries = compare([{"params": SMART, "values": lucky}, other], {"params": BASE, "values": base}, "min")
    assert entries[1]["vs_baseline"]["p_raw"] < 0.05 <= entries[1]["vs_baseline"]["p_value"]  # ... not among 2
    assert not any(e.get("beats_baseline") for e in entries)


def test_verdict_without_a_baseline_or_results():
    entries = compare([{"params": SMART, "values": [0.05, 0.06]}], None, "min")
    assert verdict(entries, "fid", "min").startswith("λ=0.01, k=8, t∈[25,35] is the best confirmed configuration: "
                                                     "FID 0.055 ± 0.007, 95% CI [")
    assert verdict(compare([{"params": SMART, "values": []}], None, "min"), "fid", "min").startswith(
        "no configuration was confirmed")
