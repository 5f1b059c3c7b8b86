"""OpenAI's ADM checkpoints in the score backend, checked against OpenAI's own code
(guided-diffusion-sdk's `guided_diffusion`, the test extra; the product never imports it).

Every released topology is built at reduced width with random weights (all of them: OpenAI zero-
initialises the output convs, which would hide mapping bugs), saved as the released files are
(`torch.save(model.state_dict())`), converted by the CLI and loaded through `score.kind: diffusers`.
"""
import hashlib
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from guided_diffusion.gaussian_diffusion import GaussianDiffusion, get_named_beta_schedule
from guided_diffusion.script_util import create_model
from guided_diffusion.unet import EncoderUNetModel, UNetModel

from smart.config import ConfigError, RunConfig
from smart.data import build_dataset
from smart.data.imagenet_classes import label_map, named_order, read_class_map
from smart.losses import ScoreMatchingRegularity
from smart.score import build_score_model
from smart.score.adm import ADMUNet2DModel, Attention, adm_unet, build_unet, convert_state_dict, infer_architecture
from smart.score.convert_adm import PRESETS, main as convert_main
from smart.score.schedule import Schedule
from smart.score.unet import DiffusersScore, load_unet_and_scheduler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PARITY = 1e-4  # max |diffusers − guided-diffusion| over the output's std

# The released models at reduced width (model_channels 32-64) and image side, attention at the same
# downsampling rates (ADM's attention_resolutions 32,16,8 at the released side), heads by size scaled
# from 64 to 32 channels. improved-* are improved-diffusion's layouts (conv resampling, heads by count).
TOPOLOGIES = {
    "imagenet64": dict(image_size=16, model_channels=32, channel_mult=(1, 2, 3, 4), num_res_blocks=3,
                       attention_resolutions=(2, 4, 8), num_classes=1000, learn_sigma=True, num_head_channels=32,
                       order="new", resblock_updown=True, use_scale_shift_norm=True, dropout=0.1, schedule="cosine"),
    "imagenet128": dict(image_size=32, model_channels=32, channel_mult=(1, 1, 2, 3, 4), num_res_blocks=2,
                        attention_resolutions=(4, 8, 16), num_classes=1000, learn_sigma=True, num_heads=4,
                        order="legacy", resblock_updown=True, use_scale_shift_norm=True, schedule="linear"),
    "imagenet256": dict(image_size=32, model_channels=32, channel_mult=(1, 1, 2, 2, 4, 4), num_res_blocks=2,
                        attention_resolutions=(8, 16, 32), num_classes=1000, learn_sigma=True, num_head_channels=32,
                        order="legacy", resblock_updown=True, use_scale_shift_norm=True, schedule="linear"),
    "imagenet256-uncond/lsun": dict(image_size=32, model_channels=32, channel_mult=(1, 1, 2, 2, 4, 4),
                                    num_res_blocks=2, attention_resolutions=(8, 16, 32), num_classes=None,
                                    learn_sigma=True, num_head_channels=32, order="legacy", resblock_updown=True,
                                    use_scale_shift_norm=True, dropout=0.1, schedule="linear"),
    "imagenet512": dict(image_size=64, model_channels=64, channel_mult=(0.5, 1, 1, 2, 2, 4, 4), num_res_blocks=2,
                        attention_resolutions=(16, 32, 64), num_classes=1000, learn_sigma=True, num_head_channels=32,
                        order="legacy", resblock_updown=True, use_scale_shift_norm=True, schedule="linear"),
    "improved-imagenet64-4000steps": dict(
        image_size=16, model_channels=32, channel_mult=(1, 2, 3, 4), num_res_blocks=3, attention_resolutions=(4, 8),
        num_classes=None, learn_sigma=True, num_heads=4, order="legacy", resblock_updown=False,
        use_scale_shift_norm=True, schedule="cosine", timesteps=4000, rescale_timesteps=True),
    "improved-no-scale-shift": dict(
        image_size=16, model_channels=32, channel_mult=(1, 2, 2), num_res_blocks=2, attention_resolutions=(2, 4),
        num_classes=10, learn_sigma=False, num_heads=2, order="new", resblock_updown=False,
        use_scale_shift_norm=False, schedule="linear"),
}


# head size changing with the width (heads by count), a timestep embedding wider than the first level
# (channel_mult 0.5), rescaled timesteps: what plain UNet2DModel cannot express
NEEDS_ADM_CLASS = {"imagenet128", "imagenet512", "improved-imagenet64-4000steps"}


def randomize(model, seed=0):
    """Every parameter random (norm scales around 1, biases around 0, weights ~ 1/sqrt(fan-in))."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
    return model.eval()


def guided_model(spec, seed=0):
    """guided-diffusion's UNetModel for a topology, random weights."""
    return randomize(UNetModel(
        image_size=spec["image_size"], in_channels=3, model_channels=spec["model_channels"],
        out_channels=6 if spec["learn_sigma"] else 3, num_res_blocks=spec["num_res_blocks"],
        attention_resolutions=spec["attention_resolutions"], dropout=spec.get("dropout", 0.0),
        channel_mult=spec["channel_mult"], num_classes=spec["num_classes"], num_heads=spec.get("num_heads", 1),
        num_head_channels=spec.get("num_head_channels", -1), use_scale_shift_norm=spec["use_scale_shift_norm"],
        resblock_updown=spec["resblock_updown"], use_new_attention_order=spec["order"] == "new"), seed)


def flags(spec):
    """The converter flags that say what the state dict cannot."""
    out = ["--schedule", spec["schedule"], "--attention-order", spec["order"], "--image-size", str(spec["image_size"])]
    out += ["--num-heads", str(spec["num_heads"])] if "num_heads" in spec else [
        "--num-head-channels", str(spec["num_head_channels"])]
    if "timesteps" in spec:
        out += ["--timesteps", str(spec["timesteps"])]
    if spec.get("rescale_timesteps"):
        out.append("--rescale-timesteps")
    return out


def saved(model, path):
    torch.save(model.state_dict(), path)  # how the released .pt files are saved
    return str(path)


def inputs(spec, n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    side, steps = spec["image_size"], spec.get("timesteps", 1000)
    x = torch.randn(n, 3, side, side, generator=g)
    t = torch.tensor([0, 25, steps // 2, steps - 1])[:n]
    y = torch.randint(0, spec["num_classes"], (n,), generator=g) if spec["num_classes"] else None
    return x, t, y


def reference(model, spec, x, t, y):
    """guided-diffusion's output; with rescale_timesteps, the network sees t·1000/T as improved-diffusion feeds it."""
    t_in = t.float() * (1000.0 / spec["timesteps"]) if spec.get("rescale_timesteps") else t
    with torch.no_grad():
        return model(x, t_in, y)


def parity(reference_out, out):
    return float((out - reference_out).abs().max() / reference_out.std())


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """name -> (guided model, spec, converted dir); converted in-process once per topology."""
    cache = {}

    def get(name):
        if name not in cache:
            spec, tmp = TOPOLOGIES[name], tmp_path_factory.mktemp(name.replace("/", "-"))
            model = guided_model(spec)
            out = str(tmp / "converted")
            assert convert_main([saved(model, tmp / "model.pt"), "--out", out, *flags(spec)]) == 0
            cache[name] = (model, spec, out)
        return cache[name]

    return get


@pytest.mark.parametrize("name", sorted(TOPOLOGIES))
def test_converted_model_equals_guided_diffusion(converted, name):
    model, spec, out = converted(name)
    unet, scheduler = load_unet_and_scheduler(out)  # the score backend's loader
    x, t, y = inputs(spec)
    ref = reference(model, spec, x, t, y)
    with torch.no_grad():
        got = unet(x, t, class_labels=y).sample
    assert got.shape == ref.shape and ref.std() > 0.1
    assert parity(ref, got) <= PARITY, f"{name}: max|diff|/std = {parity(ref, got):.2e}"
    assert isinstance(unet, ADMUNet2DModel) == (name in NEEDS_ADM_CLASS)
    assert scheduler.config.prediction_type == "epsilon"
    assert scheduler.config.variance_type == ("learned_range" if spec["learn_sigma"] else "fixed_small")
    score = DiffusersScore(unet, scheduler).freeze()  # ε = the first 3 channels of a learned-σ output
    with torch.no_grad():
        torch.testing.assert_close(score.eps(x, t, y), got[:, :3])


def test_a_wrong_attention_order_or_head_split_breaks_parity(converted, tmp_path):
    """The parity check can fail: the same checkpoint read with the other q/k/v order, or other heads."""
    model, spec, _ = converted("imagenet64")
    ckpt = saved(model, tmp_path / "m.pt")
    x, t, y = inputs(spec)
    ref = reference(model, spec, x, t, y)
    for i, wrong in enumerate((["--attention-order", "legacy"], ["--num-head-channels", "16"])):
        out = str(tmp_path / f"wrong{i}")
        args = flags(spec)
        for flag, value in zip(wrong[::2], wrong[1::2]):
            args[args.index(flag) + 1] = value
        assert convert_main([ckpt, "--out", out, *args]) == 0
        unet, _ = load_unet_and_scheduler(out)
        with torch.no_grad():
            assert parity(ref, unet(x, t, class_labels=y).sample) > 100 * PARITY


def test_cli_subprocess_writes_the_layout_and_provenance(tmp_path):
    spec = TOPOLOGIES["imagenet128"]
    ckpt = saved(guided_model(spec, seed=3), tmp_path / "128x128_small.pt")
    out = tmp_path / "models" / "adm"
    proc = subprocess.run([sys.executable, "-m", "smart.score.convert_adm", ckpt, "--out", str(out), *flags(spec)],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    printed = json.loads(proc.stdout.strip().splitlines()[-1])
    assert printed["unet_class"] == "ADMUNet2DModel" and printed["variance"] == "learned_range"
    assert sorted(os.listdir(out)) == ["scheduler", "smart_score.json", "unet"]
    assert sorted(os.listdir(tmp_path / "models")) == ["adm"]  # no temp dir left behind
    meta = json.loads((out / "smart_score.json").read_text())
    with open(ckpt, "rb") as fh:
        assert meta["source"] == {"file": "128x128_small.pt", "sha256": hashlib.sha256(fh.read()).hexdigest(),
                                  "bytes": os.path.getsize(ckpt)}
    assert meta["architecture"]["block_channels"] == [32, 32, 64, 96, 128]
    assert meta["architecture"]["attention_resolutions"] == [8, 4, 2] and meta["architecture"]["num_classes"] == 1000
    assert meta["flags"]["num_heads"] == 4 and meta["flags"]["attention_order"] == "legacy"
    assert meta["schedule"] == "linear" and meta["class_order"] == "wnid-sorted"
    assert meta["class_wnids"] == sorted(meta["class_wnids"]) and len(meta["class_wnids"]) == 1000


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_presets_are_the_released_architectures(preset):
    """Full width, on the meta device: create_model with the README's MODEL_FLAGS has the preset's
    architecture, and converts onto a diffusers model with the same parameter count."""
    p = PRESETS[preset]
    with torch.device("meta"):
        model = create_model(p.image_size, p.num_channels, p.num_res_blocks, learn_sigma=True, class_cond=p.class_cond,
                             attention_resolutions=",".join(map(str, p.attention_resolutions)),
                             num_heads=p.num_heads or 1, num_head_channels=p.num_head_channels or -1,
                             use_scale_shift_norm=True, resblock_updown=True, dropout=p.dropout,
                             use_new_attention_order=p.attention_order == "new")
    sd = model.state_dict()
    arch = infer_architecture(sd)
    assert arch == p.arch()
    attention = Attention(p.attention_order, p.num_heads, p.num_head_channels)
    from smart.score.adm import unet_config

    unet = build_unet(*unet_config(arch, attention, sample_size=p.image_size), convert_state_dict(sd, arch, attention))
    assert sum(v.numel() for v in unet.parameters()) == sum(v.numel() for v in model.parameters())


def test_preset_checks_the_checkpoint(tmp_path, capsys):
    ckpt = saved(guided_model(TOPOLOGIES["imagenet64"]), tmp_path / "small.pt")
    assert convert_main([ckpt, "--out", str(tmp_path / "o"), "--preset", "imagenet64"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --preset: the checkpoint is not imagenet64")
    assert "model_channels 32 (expected 192)" in err
    assert not os.path.exists(tmp_path / "o")


@pytest.mark.parametrize("name,timesteps", [("cosine", 1000), ("linear", 1000), ("cosine", 4000), ("linear", 4000)])
def test_schedule_equals_guided_diffusion(tmp_path, name, timesteps):
    spec = dict(TOPOLOGIES["improved-no-scale-shift"], schedule=name, timesteps=timesteps)
    out = str(tmp_path / "m")
    assert convert_main([saved(guided_model(spec), tmp_path / "m.pt"), "--out", out, *flags(spec)]) == 0
    _, scheduler = load_unet_and_scheduler(out)
    ref = np.cumprod(1 - get_named_beta_schedule(name, timesteps))
    assert len(scheduler.alphas_cumprod) == timesteps
    assert np.abs(scheduler.alphas_cumprod.double().numpy() - ref).max() <= 1e-6  # diffusers' float32 ᾱ
    ours = Schedule.from_scheduler(scheduler).alphas_cumprod.numpy()  # what SMaRt uses: float64 from the betas
    assert np.abs(ours - ref).max() <= 1e-7


def test_smart_term_and_its_gradient_equal_guided_diffusions(converted):
    """λ·E‖ε_θ(α_t x + σ_t ε, t, y) − ε‖² and ∂/∂x through the score backend equal the same
    built from GaussianDiffusion.q_sample and guided-diffusion's UNetModel (ε = first 3 channels)."""
    model, spec, out = converted("imagenet64")
    score = DiffusersScore(*load_unet_and_scheduler(out)).freeze()
    reg = ScoreMatchingRegularity(score, weight=0.1, interval=1, t_min=25, t_max=35)
    x = torch.tanh(torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(5))).requires_grad_(True)
    y = torch.tensor([0, 7, 278, 500, 998, 999])
    loss, value = reg(x, y, generator=torch.Generator().manual_seed(9))
    (grad,) = torch.autograd.grad(loss, x)

    g = torch.Generator().manual_seed(9)  # the same draws ScoreMatchingRegularity makes: t, then ε
    t = torch.randint(25, 36, (6,), generator=g)
    noise = torch.randn(x.shape, generator=g)
    diffusion = GaussianDiffusion(betas=get_named_beta_schedule("cosine", 1000), model_mean_type=None,
                                  model_var_type=None, loss_type=None)
    x_ref = x.detach().clone().requires_grad_(True)
    eps = model(diffusion.q_sample(x_ref, t, noise), t, y)[:, :3]
    err = (eps - noise).square().flatten(1).mean(1)
    ref_loss = 0.1 * err.mean()
    (ref_grad,) = torch.autograd.grad(ref_loss, x_ref)
    loss, ref_loss, ref_value = float(loss.detach()), float(ref_loss.detach()), float(err.mean().detach())
    assert abs(loss - ref_loss) <= 1e-5 * ref_loss and abs(float(value) - ref_value) <= 1e-5 * ref_value
    assert float((grad - ref_grad).abs().max()) <= 1e-4 * float(ref_grad.abs().max())


# ---- bad input: one line, exit 2, nothing at --out --------------------------------------------------

def _evil_checkpoint(path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo owned",))

    torch.save({"input_blocks.0.0.weight": Evil()}, path)


def _truncated(path):
    saved(guided_model(TOPOLOGIES["improved-no-scale-shift"]), path)
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])


def _other_network(path):
    from diffusers import UNet2DModel

    torch.save(UNet2DModel(block_out_channels=(32, 64), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                           up_block_types=("AttnUpBlock2D", "UpBlock2D")).state_dict(), path)


def _classifier(path):
    torch.save(EncoderUNetModel(image_size=16, in_channels=3, model_channels=32, out_channels=1000, num_res_blocks=1,
                                attention_resolutions=(2,), channel_mult=(1, 2), num_head_channels=32,
                                pool="attention").state_dict(), path)


def _wrapped(path):
    torch.save({"model": guided_model(TOPOLOGIES["improved-no-scale-shift"]).state_dict(), "step": 3}, path)


def _argv(ckpt, out, drop=(), extra=()):
    args = flags(TOPOLOGIES["improved-no-scale-shift"])  # ... --num-heads 2
    for flag in drop:
        i = args.index(flag)
        del args[i:i + 2]
    return [ckpt, "--out", out, *args, *extra]


def _good(path):
    saved(guided_model(TOPOLOGIES["improved-no-scale-shift"]), path)


@pytest.mark.parametrize("make,argv,expected", [
    (None, {}, "error: checkpoint: no such file"),
    (_truncated, {}, "error: checkpoint: cannot read .* \\(truncated, or not a PyTorch file\\)"),
    (_evil_checkpoint, {}, "error: checkpoint: .* is not a plain state dict; torch.load\\(weights_only=True\\) "
                           "refused it: .*GLOBAL posix.system"),
    (_other_network, {}, "error: checkpoint: not an ADM .*no time_embed.0.weight"),
    (_classifier, {}, "error: checkpoint: no output_blocks or out.2: an encoder"),
    (_wrapped, {}, "error: checkpoint: .* holds a dict with keys \\['model', 'step'\\], not a state dict"),
    (_good, {"drop": ["--num-heads"], "extra": ["--num-heads", "3"]}, "error: --num-heads: 3 heads do not divide"),
    (_good, {"extra": ["--attention-order"]}, "error: usage: argument --attention-order: expected one argument"),
    (_good, {"drop": ["--schedule"]}, "error: --schedule: required without --preset"),
    ("out-exists", {}, "error: --out: .* already exists"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_written(tmp_path, capsys, make, argv, expected):
    ckpt, out = tmp_path / "in.pt", tmp_path / "out"
    if make == "out-exists":
        _good(ckpt)
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    elif make is not None:
        make(str(ckpt))
    before = sorted(os.listdir(tmp_path))
    code = convert_main(_argv(str(ckpt), str(out), **argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and re.match(expected, err[0]), err
    assert sorted(os.listdir(tmp_path)) == before  # no --out, no temp dir
    if make == "out-exists":
        assert os.listdir(out) == ["keep.txt"]


# ---- class order ----------------------------------------------------------------------------------

def test_packaged_imagenet_orders():
    devkit, ordered = named_order("ilsvrc-devkit"), named_order("wnid-sorted")
    assert len(devkit) == 1000 == len(set(devkit)) and ordered == sorted(devkit)
    assert devkit[:3] == ["n02119789", "n02100735", "n02110185"] and ordered[0] == "n01440764"
    # ILSVRC2012 validation images 1, 2, 3: devkit labels 490, 361, 171 (Imagenet32_Scripts utils.py),
    # sorted-order labels 65, 970, 230 (caffe's val.txt): the same three wnids.
    assert [devkit[i - 1] for i in (490, 361, 171)] == [ordered[i] for i in (65, 970, 230)]
    assert label_map(devkit, ordered, "k")[0] == 278  # kit fox


def test_class_map_files(tmp_path):
    (tmp_path / "indexed.txt").write_text("n03 2 c\nn01 3 a\nn02 1 b\n")
    assert read_class_map(str(tmp_path / "indexed.txt"), "k") == ["n02", "n03", "n01"]
    (tmp_path / "plain.txt").write_text("n05\nn04\n")
    assert read_class_map(str(tmp_path / "plain.txt"), "k") == ["n05", "n04"]
    (tmp_path / "bad.txt").write_text("n01 1\nn02 1\n")
    with pytest.raises(ConfigError, match="k: .*indices are not 1..2"):
        read_class_map(str(tmp_path / "bad.txt"), "k")
    with pytest.raises(ConfigError, match="same wnids"):
        label_map(["n01", "n02"], ["n01", "n03"], "k")


def test_converter_class_order_flag(tmp_path, capsys):
    spec = TOPOLOGIES["improved-no-scale-shift"]  # 10 classes: no class order unless one is given
    ckpt = saved(guided_model(spec), tmp_path / "m.pt")
    wnids = [f"n0{i}" for i in range(10, 0, -1)]
    (tmp_path / "classes.txt").write_text("\n".join(wnids))
    assert convert_main([ckpt, "--out", str(tmp_path / "a"), *flags(spec)]) == 0
    assert json.loads((tmp_path / "a" / "smart_score.json").read_text())["class_wnids"] is None
    assert convert_main([ckpt, "--out", str(tmp_path / "b"), *flags(spec), "--class-order",
                         str(tmp_path / "classes.txt")]) == 0
    meta = json.loads((tmp_path / "b" / "smart_score.json").read_text())
    assert meta["class_order"] == "classes.txt" and meta["class_wnids"] == wnids
    capsys.readouterr()
    assert convert_main([ckpt, "--out", str(tmp_path / "c"), *flags(spec), "--class-order", "wnid-sorted"]) == 2
    assert capsys.readouterr().err.startswith("error: --class-order: wnid-sorted names 1000 classes; the model has 10")
    assert not (tmp_path / "c").exists()


def _fake_imagenet64(root, labels_1_based):
    rng = np.random.default_rng(0)
    np.savez(root / "train_data_batch_1.npz", labels=np.asarray(labels_1_based),
             data=rng.integers(0, 256, (len(labels_1_based), 12288), dtype=np.uint8))


def _imagenet64_cfg(data_path, score_path):
    return RunConfig.from_dict({"data": {"kind": "imagenet64", "path": str(data_path), "conditional": True,
                                         "resolution": 16},
                                "generator": {"arch": "stylegan2"}, "eval": {"metrics": ["fid"]},
                                "score": {"kind": "diffusers", "path": score_path}})


def test_imagenet64_labels_reach_adm_in_its_class_order(converted, tmp_path):
    _, spec, out = converted("imagenet64")  # a converted conditional ADM: wnid-sorted classes
    _fake_imagenet64(tmp_path, [1, 2, 3, 1000])
    cfg = _imagenet64_cfg(tmp_path, out)
    dataset = build_dataset(cfg)
    score = build_score_model(cfg, dataset)
    ordered = named_order("wnid-sorted")
    expected = [ordered.index(w) for w in named_order("ilsvrc-devkit")]
    assert score.class_map.tolist() == expected and expected[0] == 278
    x, t, _ = inputs(spec)
    labels = dataset.labels  # the data's own indices: 0 = kit fox (file label 1)
    with torch.no_grad():
        got = score.eps(x, t, labels)
        want = score.unet(x, t, class_labels=torch.tensor(expected)[labels]).sample[:, :3]
        unmapped = score.unet(x, t, class_labels=labels).sample[:, :3]
    torch.testing.assert_close(got, want)
    assert (got - unmapped).abs().max() > 1e-3

    # a copy of the devkit's map next to the batches wins over the packaged one
    shuffled = named_order("wnid-sorted")[::-1]
    (tmp_path / "map_clsloc.txt").write_text("".join(f"{w} {i + 1} x\n" for i, w in enumerate(shuffled)))
    dataset = build_dataset(cfg)
    assert build_score_model(cfg, dataset).class_map.tolist() == list(range(999, -1, -1))


def test_a_data_set_without_class_order_is_exit_2(converted, tmp_path):
    _, _, out = converted("imagenet64")
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", images=rng.integers(0, 256, (8, 16, 16, 3), dtype=np.uint8),
             labels=np.array([0, 999, 5, 6, 7, 8, 9, 10]))
    run_cfg = tmp_path / "run.yaml"
    run_cfg.write_text(f"data: {{kind: npz, path: {tmp_path / 'd.npz'}, conditional: true}}\n"
                       f"generator: {{arch: stylegan2}}\nscore: {{kind: diffusers, path: {out}}}\n"
                       "eval: {metrics: [fid], num_samples: 100}\ntraining: {kimg: 0.1, eval_every_kimg: 0.1}\n")
    proc = subprocess.run([sys.executable, "-m", "smart.train", str(run_cfg), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": ROOT}, timeout=300)
    err = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(err) == 1, proc.stderr
    assert err[0].startswith("error: data.kind: the score model at") and "wnid-sorted" in err[0]
    assert not os.path.exists(tmp_path / "run")


# ---- an ADM-like UNet to train ----------------------------------------------------------------------

def test_adm_unet_builder_is_adm(tmp_path):
    """adm_unet(...) is guided-diffusion's UNetModel with the same flags: its weights load strictly and
    give the same output."""
    unet = adm_unet(16, 3, (32, 64, 64), 2, [8, 4], num_head_channels=32, num_class_embeds=11, learned_variance=True)
    assert unet.config.down_block_types == ["ResnetDownsampleBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"]
    assert unet.config.resnet_time_scale_shift == "scale_shift" and unet.config.out_channels == 6
    ref = randomize(UNetModel(image_size=16, in_channels=3, model_channels=32, out_channels=6, num_res_blocks=2,
                              attention_resolutions=(2, 4), channel_mult=(1, 2, 2), num_classes=11,
                              num_head_channels=32, use_scale_shift_norm=True, resblock_updown=True,
                              use_new_attention_order=True))
    sd = ref.state_dict()
    unet.load_state_dict(convert_state_dict(sd, infer_architecture(sd), Attention("new", num_head_channels=32)))
    spec = dict(image_size=16, num_classes=11)
    x, t, y = inputs(spec)
    with torch.no_grad():
        assert parity(ref(x, t, y), unet.eval()(x, t, class_labels=y).sample) <= PARITY
    with pytest.raises(ConfigError, match="score.pretrain.attention_resolutions: \\[2\\] are not UNet levels"):
        adm_unet(16, 3, (32, 64, 64), 2, [2])


# ---- the paper's study ------------------------------------------------------------------------------

def _aurora_config(**overrides):
    from smart.config import load_yaml

    return RunConfig.from_dict(load_yaml(os.path.join(ROOT, "studies", "aurora_weight.yaml"))["config"], overrides)


def test_aurora_weight_score_settings_fit_a_converted_adm64(converted, tmp_path):
    _, spec, out = converted("imagenet64")
    _fake_imagenet64(tmp_path, [1, 500, 1000])
    cfg = _aurora_config(**{"data.path": str(tmp_path), "data.resolution": 16, "score.path": out})
    score = build_score_model(cfg, build_dataset(cfg))
    assert len(score.schedule) == cfg.score.num_timesteps == 1000
    assert score.prediction == "epsilon" and score.learned_variance and score.class_conditional
    assert score.class_map is not None  # devkit labels -> ADM's sorted wnids


def test_aurora_weight_without_a_score_model_points_at_the_conversion(tmp_path, capsys, monkeypatch):
    from tuning.run_study import main as study_main

    monkeypatch.setenv("SMART_INCEPTION_WEIGHTS", str(tmp_path / "none.pth"))
    _fake_imagenet64(tmp_path, [1, 2])
    code = study_main([os.path.join(ROOT, "studies", "aurora_weight.yaml"), "--set", f"data.path={tmp_path}",
                       "--set", f"score.path={tmp_path / 'adm'}", "--storage", str(tmp_path / "store")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: score.path: no score model at {tmp_path / 'adm'}; download OpenAI's "
                          "64x64_diffusion.pt")
    assert "smart.score.convert_adm 64x64_diffusion.pt --preset imagenet64" in err
    assert not (tmp_path / "store").exists()
