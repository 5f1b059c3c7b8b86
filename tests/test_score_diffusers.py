"""The diffusers score backend (round trip through save_pretrained, ε shapes, learned-variance
slicing, v-prediction conversion, labels) and the pretraining CLI."""
import json
import subprocess
import sys

import pytest
import torch
from diffusers import DDPMScheduler, UNet2DModel

from image_helpers import image_config
from smart.config import ConfigError
from smart.data import build_dataset
from smart.score import build_score_model
from smart.score.pretrain import main as pretrain_main
from smart.score.unet import DiffusersScore, load_unet_and_scheduler


def tiny_unet(out_channels=1, num_class_embeds=None):
    torch.manual_seed(0)
    return UNet2DModel(sample_size=8, in_channels=1, out_channels=out_channels, block_out_channels=(8, 16),
                       layers_per_block=1, down_block_types=("DownBlock2D",) * 2, up_block_types=("UpBlock2D",) * 2,
                       norm_num_groups=8, num_class_embeds=num_class_embeds)


def save(unet, scheduler, root, nested=True):
    unet.save_pretrained(root / "unet" if nested else root)
    scheduler.save_pretrained(root / "scheduler" if nested else root)
    return str(root)


@pytest.mark.parametrize("nested", [True, False])
def test_round_trip_learned_variance_and_v_prediction(tmp_path, nested):
    unet = tiny_unet(out_channels=2, num_class_embeds=10)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction")
    path = save(unet, sched, tmp_path, nested)
    cfg = image_config(path, str(tmp_path / "cache"), data={"kind": "digits", "conditional": True},
                       generator={"arch": "stylegan2"})
    model = build_score_model(cfg, build_dataset(cfg))
    assert isinstance(model, DiffusersScore) and model.prediction == "v_prediction" and model.learned_variance
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    x_t = torch.randn(4, 1, 8, 8, requires_grad=True)
    t, labels = torch.tensor([0, 25, 300, 999]), torch.tensor([0, 3, 5, 9])
    eps = model.eps(x_t, t, labels)
    assert eps.shape == x_t.shape
    with torch.no_grad():
        raw = unet(x_t, t, class_labels=labels).sample
    alpha, sigma = model.schedule.alpha_sigma(t)
    expected = sigma.view(-1, 1, 1, 1) * x_t + alpha.view(-1, 1, 1, 1) * raw[:, :1]  # first C channels = v
    torch.testing.assert_close(eps, expected, rtol=1e-5, atol=1e-5)
    # ᾱ in float64 from the scheduler's betas (diffusers' own cumprod is float32)
    torch.testing.assert_close(model.schedule.alphas_cumprod, torch.cumprod(1 - sched.betas.double(), 0))
    (grad,) = torch.autograd.grad(eps.square().sum(), x_t)  # SMaRt's Jacobian mode needs this
    assert grad.abs().sum() > 0


def test_epsilon_model_without_classes_ignores_labels(tmp_path):
    unet = tiny_unet()
    path = save(unet, DDPMScheduler(num_train_timesteps=1000), tmp_path)
    loaded, scheduler = load_unet_and_scheduler(path)
    model = DiffusersScore(loaded, scheduler).freeze()
    x_t, t = torch.randn(3, 1, 8, 8), torch.tensor([1, 2, 3])
    with torch.no_grad():
        torch.testing.assert_close(model.eps(x_t, t, torch.tensor([1, 2, 3])), unet(x_t, t).sample)
    assert model.prediction == "epsilon" and not model.learned_variance


def test_missing_and_mismatched_models_are_config_errors(tmp_path):
    cfg = image_config(str(tmp_path / "absent"), str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match=r"score.path: no score model at .*smart.score.pretrain"):
        build_score_model(cfg, build_dataset(cfg))
    path = save(tiny_unet(), DDPMScheduler(num_train_timesteps=500), tmp_path / "m")
    cfg = image_config(path, str(tmp_path / "cache"))
    with pytest.raises(ConfigError, match=r"score.num_timesteps: .* has 500 steps"):
        build_score_model(cfg, build_dataset(cfg))
    cfg = image_config(path, str(tmp_path / "cache"), data={"resolution": 16},
                       score={"num_timesteps": 500}, regularizer={"t_max": 35})
    with pytest.raises(ConfigError, match=r"score.path: .* is for 8px 1-channel images; the data is 16px"):
        build_score_model(cfg, build_dataset(cfg))


def test_pretrain_cli_writes_a_loadable_class_conditional_model(tmp_path, capsys):
    out = tmp_path / "score"
    argv = ["--data", "digits", "--out", str(out), "--set", "score.pretrain.steps=4", "--set", "score.pretrain.batch_size=8",
            "--set", "score.pretrain.channels=[8, 16]"]
    assert pretrain_main(argv) == 0
    meta = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert meta["null_class"] == 10 and meta["steps"] == 4
    assert (out / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert not list(tmp_path.glob("score.tmp*"))  # written atomically
    for conditional in (True, False):  # the null class serves unconditional GANs
        cfg = image_config(str(out), str(tmp_path / "cache"), data={"conditional": conditional},
                           generator={"arch": "stylegan2" if conditional else "mlp"})
        model = build_score_model(cfg, build_dataset(cfg))
        labels = torch.tensor([1, 2]) if conditional else None
        assert model.eps(torch.randn(2, 1, 8, 8), torch.tensor([30, 30]), labels).shape == (2, 1, 8, 8)
    assert pretrain_main(argv) == 2
    assert capsys.readouterr().err.startswith("error: --out:")
    proc = subprocess.run([sys.executable, "-m", "smart.score.pretrain", "--data", "digits", "--out",
                           str(tmp_path / "x"), "--set", "data.resolution=2"], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.startswith("error: data.resolution:")
