"""Safe defaults: YAML is only ever safe-loaded (a python tag is a clear error), checkpoints are
loaded weights-only and refused across format or code versions, the dashboard stays on 127.0.0.1
unless exposed on purpose (with a warning), token authentication stays on, and bad cluster or
storage settings are one-line errors before anything starts."""
import ast
import os

import pytest

from smart.config import ConfigError, RunConfig, load_yaml
from smart.loop import CHECKPOINT_FORMAT, Trainer
from study_files import write_study
from tuning.cluster import exposure_warning, init_ray
from tuning.run_study import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPLOIT = "!!python/object/apply:os.system ['touch {marker}']\n"


def _sources():
    for folder in ("smart", "tuning", "benchmarks", "tests"):
        for dirpath, _, files in os.walk(os.path.join(ROOT, folder)):
            for name in files:
                if name.endswith(".py"):
                    with open(os.path.join(dirpath, name), encoding="utf-8") as fh:
                        yield os.path.relpath(os.path.join(dirpath, name), ROOT), fh.read()


def test_python_yaml_tags_are_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nconfig: " + EXPLOIT.format(marker=marker))
    with pytest.raises(ConfigError, match=r"bad.yaml: invalid YAML at line 2: could not determine a constructor"):
        load_yaml(str(bad))
    assert main([str(bad), "--storage", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err.startswith(f"error: {bad}: invalid YAML")
    assert not marker.exists() and not (tmp_path / "s").exists()


def _calls(text: str, module: str, names: tuple[str, ...]):
    """Every `module.name(...)` call in a source, parsed (a regex cuts calls at nested parentheses)."""
    for node in ast.walk(ast.parse(text)):
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in names
                and isinstance(node.func.value, ast.Name) and node.func.value.id == module):
            yield node, {k.arg: k.value for k in node.keywords}


def test_every_yaml_and_torch_load_in_the_project_is_safe():
    seen = 0
    for path, text in _sources():
        if path == os.path.join("tests", "test_safe_defaults.py"):
            continue
        for call, kwargs in _calls(text, "yaml", ("unsafe_load", "full_load", "load_all", "load")):
            loader = kwargs.get("Loader")
            assert isinstance(loader, ast.Name) and loader.id == "YamlLoader", \
                f"{path}:{call.lineno} (use smart.config.load_yaml)"
        assert "yaml.Loader" not in text and "yaml.UnsafeLoader" not in text, path
        for call, kwargs in _calls(text, "torch", ("load",)):
            seen += 1
            flag = kwargs.get("weights_only")
            assert isinstance(flag, ast.Constant) and flag.value is True, f"{path}:{call.lineno}: torch.load without weights_only=True"
    assert seen > 5  # the scan found the project's loads


def test_checkpoints_from_another_format_or_code_are_refused(tmp_path):
    trainer = Trainer(RunConfig.from_dict({"training": {"kimg": 1.0, "eval_every_kimg": 1.0}}))
    state = trainer.state_dict()
    with pytest.raises(ValueError, match=f"format 1; this code reads format {CHECKPOINT_FORMAT}"):
        trainer.load_state_dict({k: v for k, v in state.items() if k != "format"})
    with pytest.raises(ValueError, match="written by smart code version 0123456789abcdef, this is"):
        trainer.load_state_dict({**state, "code": "0123456789abcdef"})
    trainer.save(str(tmp_path / "c.pt"))
    assert os.listdir(tmp_path) == ["c.pt"]  # written to a temp name, renamed into place
    trainer.load(str(tmp_path / "c.pt"))


def test_dashboard_binds_loopback_unless_exposed():
    assert init_ray.__kwdefaults__["dashboard_host"] == "127.0.0.1"
    assert exposure_warning("127.0.0.1") is None and exposure_warning("localhost") is None
    assert "reachable from the network" in exposure_warning("0.0.0.0")


def test_token_authentication_is_on(ray_session):
    from ray._private.authentication.authentication_utils import is_token_auth_enabled

    assert is_token_auth_enabled()


@pytest.mark.parametrize("changes, expected", [
    ({("resources", "gpu"): 1.5}, "error: resources.gpu: above 1 it must be a whole number of GPUs"),
    ({("resources",): {"gpu": 0.5, "workers": 2}}, "error: resources.gpu: the workers of one DDP trial cannot"),
    ({("resources", "workers"): 3}, "error: resources.workers: must divide training.batch_size (256)"),
    ({("storage",): "nosuchscheme://bucket/x"}, "error: storage: cannot open 'nosuchscheme://bucket/x'"),
    ({("storage",): "mock:///studies"}, "error: mlflow.tracking_uri: required when storage is a URI"),
])
def test_bad_cluster_settings_are_one_line_errors(tmp_path, capsys, changes, expected):
    study = write_study(tmp_path / "s.yaml", changes)
    assert main([study]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1
    assert not os.path.exists("runs/tiny")
