"""The run config: dotted keys, validation naming the key, round trips."""
import os

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


IMAGE_RUN = {"data": {"kind": "digits"}, "generator": {"arch": "aurora"}, "discriminator": {"arch": "stylegan2"},
             "score": {"kind": "diffusers", "path": "x"}, "eval": {"metrics": ["fid"]}}


def test_each_arch_has_only_its_own_keys():
    stylegan2 = RunConfig.from_dict(IMAGE_RUN, {"generator.arch": "stylegan2"})
    assert "generator.w_dim" in config_keys(stylegan2) and "generator.num_experts" not in config_keys(stylegan2)
    assert "generator.hidden" in config_keys() and "generator.w_dim" not in config_keys()
    assert RunConfig.from_dict(stylegan2.to_dict()) == stylegan2  # dumps keep the arch's own fields
    with pytest.raises(ConfigError, match=r"^generator.num_experts: unknown key for generator.arch stylegan2"):
        stylegan2.with_overrides({"generator.num_experts": 2})
    # switching an arch by override keeps the options the two share and drops the others
    image = {"data.kind": "digits", "score.kind": "diffusers", "score.path": "x", "eval.metrics": ["fid"]}
    switched = RunConfig.from_dict({"generator": {"hidden": 5, "z_dim": 3}}, {"generator.arch": "stylegan2", **image})
    assert switched.generator.z_dim == 3 and not hasattr(switched.generator, "hidden")


def test_every_key_is_listed_with_a_description():
    from smart.config import key_rows

    rows = key_rows()
    listed = [r[0] for r in rows]
    assert len(listed) == len(set(listed)) and all(r[4] for r in rows), [r[0] for r in rows if not r[4]]
    concrete = config_keys() | config_keys(RunConfig.from_dict(IMAGE_RUN))
    assert concrete <= set(listed)  # the default (toy, mlp) and an image run (aurora, stylegan2, diffusers)


def test_list_keys_cli_prints_the_table():
    """In a fresh interpreter: the built-in kinds only (other test modules register their own here)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "smart.train", "--list-keys"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout.splitlines()
    assert table[:2] == ["| key | type | default | applies to | description |", "|---|---|---|---|---|"]
    assert "| generator.w_dim | int | 128 | generator.arch: aurora, stylegan2 | intermediate latent size |" in table
    assert any(line.startswith("| data.std | float | 0.05 | data.kind: grid25, ring8 |") for line in table)
    keys = {line.split(" | ")[0][2:] for line in table[2:]}
    assert keys == config_keys() | config_keys(RunConfig.from_dict(IMAGE_RUN))
    docs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "config.md")
    with open(docs, encoding="utf-8") as fh:
        assert fh.read().endswith(proc.stdout), "docs/config.md is stale: regenerate it with smart.train --list-keys"
