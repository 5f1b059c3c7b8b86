"""The define-by-run search space with a real Optuna study: constraints hold for every suggestion,
points (the λ=0 baseline, a grid) come first without reaching Optuna's model, overrides resolve."""
import math

import optuna
import pytest

from smart.config import ConfigError
from study_files import write_study
from tuning.space import SearchSpace, make_sampler, trial_seed
from tuning.study import load_study


def _ask_all(study, n, objective):
    space = SearchSpace(study)
    ot = optuna.create_study(sampler=make_sampler(study))
    suggested = []
    for _ in range(n):
        trial = ot.ask()
        values = space(trial)
        ot.tell(trial, objective(values))
        suggested.append((trial, values))
    return suggested


@pytest.mark.parametrize("kind", ["tpe", "random"])
def test_t_range_always_ordered_with_min_width_and_valid(kind, tmp_path):
    study = load_study(write_study(tmp_path / "s.yaml", {("sampler", "kind"): kind,
                                                          ("search", "regularizer.t_min", "min_width"): 20,
                                                          ("search", "regularizer.t_min", "high"): 120,
                                                          ("sampler", "points_to_evaluate"): []}))
    # the objective pulls TPE towards narrow bands at the top edge, where the constraint bites
    suggested = _ask_all(study, 120, lambda v: abs(v["regularizer.t_max"] - v["regularizer.t_min"] - 20)
                         + abs(120 - v["regularizer.t_max"]))
    for _, v in suggested:
        assert 0 <= v["regularizer.t_min"] and v["regularizer.t_min"] + 20 <= v["regularizer.t_max"] <= 120
        study.base.with_overrides(v)  # every suggestion is a valid run config


def test_baseline_point_first_and_invisible_to_optuna(tmp_path):
    study = load_study(write_study(tmp_path / "s.yaml"))
    suggested = _ask_all(study, 12, lambda v: v["regularizer.weight"] + 0.01 * v.get("regularizer.interval", 0))
    first, values = suggested[0]
    assert values["regularizer.weight"] == 0.0
    assert first.params == {}  # λ=0 is outside log-space: never told to TPE; k and t are inert
    assert set(values) == {"regularizer.weight", "seed"}  # no k or t-range for the plain GAN
    assert first.user_attrs == values  # the fixed values, for the study on disk
    for _, v in suggested[1:]:
        assert 1e-3 <= v["regularizer.weight"] <= 1.0
    seeds = [v["seed"] for _, v in suggested]
    assert len(set(seeds)) == len(seeds) and seeds[3] == trial_seed(3, 3)


def test_grid_runs_points_then_the_product(tmp_path):
    path = write_study(tmp_path / "s.yaml", {
        ("sampler", "kind"): "grid",
        ("search", "regularizer.weight", "grid"): [0.01, 0.1],
        ("search", "regularizer.interval", "grid"): [1, 16],
        ("search", "regularizer.t_min", "grid"): [[25, 35], [40, 60]],
    }, drop=[("budget", "num_samples")])
    study = load_study(path)
    assert study.num_samples == 1 + 2 * 2 * 2
    suggested = [v for _, v in _ask_all(study, study.num_samples, lambda v: 0.0)]
    assert suggested[0] == {"regularizer.weight": 0.0, "seed": trial_seed(3, 0)}
    combos = {(v["regularizer.weight"], v["regularizer.interval"], v["regularizer.t_min"], v["regularizer.t_max"])
              for v in suggested[1:]}
    assert len(combos) == 8 and (0.1, 16, 40, 60) in combos
    with pytest.raises(ConfigError, match="budget.num_samples"):
        load_study(path, sets=[("budget.num_samples", 3)])


def test_overrides_reach_config_study_and_search_entries(tmp_path):
    path = write_study(tmp_path / "s.yaml", {("profiles",): {"quick": {"training.kimg": 8.0,
                                                                        "budget.num_samples": 2}}})
    study = load_study(path, profile="quick", sets=[("search.regularizer.weight.high", 0.5),
                                                    ("config.eval.num_samples", 500),
                                                    ("scheduler.grace_period", 4.0)])
    assert study.base.training.kimg == 8.0 and study.num_samples == 2 and study.base.eval.num_samples == 500
    assert math.isclose(study.spec.search["regularizer.weight"].high, 0.5)
    assert study.max_t == 8.0
    # --set comes after the profile
    assert load_study(path, profile="quick", sets=[("budget.num_samples", 3)]).num_samples == 3


def test_conditional_space_when_the_searcher_picks_lambda_zero(tmp_path):
    """λ searched as a choice with 0, listed after k: λ is drawn first, and a λ = 0 trial draws no
    k or t-range, while λ > 0 trials draw both; a grid with λ = 0 runs one plain GAN."""
    path = write_study(tmp_path / "s.yaml", {
        ("search",): {"regularizer.interval": {"type": "choice", "values": [1, 4], "grid": [1, 4]},
                      "regularizer.weight": {"type": "choice", "values": [0.0, 0.01], "grid": [0.0, 0.01]}},
        ("sampler", "points_to_evaluate"): [{"regularizer.weight": 0.0, "regularizer.interval": 4}]})
    study = load_study(path, sets=[("budget.num_samples", 30)])
    assert study.points == [{"regularizer.weight": 0.0}]  # the point's k is inert, so dropped
    suggested = _ask_all(study, 30, lambda v: v["regularizer.weight"])
    kinds = set()
    for trial, v in suggested:
        if v["regularizer.weight"] == 0.0:
            assert "regularizer.interval" not in v and "regularizer.interval" not in trial.params
        else:
            assert v["regularizer.interval"] in (1, 4)
            assert trial.params["regularizer.interval"] == v["regularizer.interval"]
        kinds.add(v["regularizer.weight"])
    assert kinds == {0.0, 0.01}
    grid = load_study(path, sets=[("sampler.kind", "grid"), ("budget.num_samples", None)])
    assert grid.points == [{"regularizer.weight": 0.0}, {"regularizer.weight": 0.0},
                           {"regularizer.weight": 0.01, "regularizer.interval": 1},
                           {"regularizer.weight": 0.01, "regularizer.interval": 4}]
