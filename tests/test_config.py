"""The run config: dotted keys, validation naming the key, round trips."""
import pytest

from smart.config import ConfigError, RunConfig, config_keys, parse_assignment

REGULARIZER_KEYS = {"regularizer.weight", "regularizer.interval", "regularizer.t_min", "regularizer.t_max",
                    "regularizer.mode", "regularizer.scale_by_interval"}


def test_public_regularizer_keys_exist():
    assert REGULARIZER_KEYS <= config_keys()
    assert {"training.kimg", "seed", "device"} <= config_keys()


def test_defaults_are_paper_like():
    reg = RunConfig().regularizer
    assert (reg.mode, reg.scale_by_interval, reg.interval) == ("jacobian", False, 8)


def test_round_trip_and_overrides():
    cfg = RunConfig.from_dict({"regularizer": {"weight": 0.1}}, {"regularizer.interval": 4})
    assert cfg.regularizer.weight == 0.1 and cfg.regularizer.interval == 4
    assert RunConfig.from_dict(cfg.to_dict()) == cfg
    assert cfg.flat()["regularizer.interval"] == 4
    assert cfg.with_overrides({"seed": 3}).seed == 3


@pytest.mark.parametrize("overrides,key", [
    ({"regularizer.weight": -0.1}, "regularizer.weight"),
    ({"regularizer.interval": 0}, "regularizer.interval"),
    ({"regularizer.interval": 2.5}, "regularizer.interval"),
    ({"regularizer.t_max": 1000}, "regularizer.t_max"),
    ({"regularizer.t_min": 40, "regularizer.t_max": 30}, "regularizer.t_min"),
    ({"regularizer.mode": "score"}, "regularizer.mode"),
    ({"regularizer.lambda": 0.1}, "regularizer.lambda"),
    ({"data.kind": "cifar"}, "data.kind"),
    ({"training.kimg": "many"}, "training.kimg"),
    ({"training.eval_every_kimg": 1e9}, "training.eval_every_kimg"),
    ({"nonsense": 1}, "nonsense"),
    ({"regularizer.weight.x": 1}, "regularizer.weight"),
])
def test_bad_values_name_their_key(overrides, key):
    with pytest.raises(ConfigError) as info:
        RunConfig.from_dict({}, overrides)
    assert info.value.key == key, str(info.value)


def test_parse_assignment_reads_yaml_scalars():
    assert parse_assignment("regularizer.weight=1e-3") == ("regularizer.weight", 1e-3)
    assert parse_assignment("regularizer.scale_by_interval=true") == ("regularizer.scale_by_interval", True)
    with pytest.raises(ConfigError):
        parse_assignment("regularizer.weight")


def test_yaml_exponent_floats_and_safe_loading(tmp_path):
    from smart.config import load_yaml

    path = tmp_path / "c.yaml"
    path.write_text("regularizer:\n  weight: 1e-3\n  t_min: 25\n")
    assert RunConfig.from_dict(load_yaml(str(path))).regularizer.weight == 1e-3
    path.write_text("seed: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_yaml(str(path))
