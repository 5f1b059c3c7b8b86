"""Typed run configuration: the one place where a run's options are declared and validated.

Dotted keys (``regularizer.weight``) are the public names of every option: the same in YAML, in
``--set``, in a study's search space and in MLflow params.
"""
from __future__ import annotations

import json
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator


class YamlLoader(yaml.SafeLoader):
    """Safe loading, plus YAML 1.2 floats: `1e-3` is a number, not the string PyYAML 1.1 makes of it."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$"),
    list("-+0123456789."),
)


class ConfigError(ValueError):
    """Bad user input, always tied to the dotted key (or file/flag) it concerns."""

    def __init__(self, key: str, why: str):
        super().__init__(f"{key}: {why}")
        self.key = key
        self.why = why


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


TOY_KINDS = ("ring8", "grid25")
IMAGE_KINDS = ("digits", "mnist5k", "fashion_mnist", "image_folder", "npz", "imagenet64")
# The resolution a dataset is served at when data.resolution is not set (None: read from the files).
NATIVE_RESOLUTION = {"digits": 8, "mnist5k": 32, "fashion_mnist": 32, "imagenet64": 64, "npz": None}


class DataConfig(_Section):
    """Real data: exact toy mixtures, or images (uint8 on disk, [-1, 1] in training)."""

    kind: Literal["ring8", "grid25", "digits", "mnist5k", "fashion_mnist", "image_folder", "npz",
                  "imagenet64"] = "ring8"
    std: float = Field(0.05, gt=0, le=0.5, description="per-mode standard deviation of toy mixtures")
    path: str | None = Field(None, description="image data location (fashion_mnist: optional; "
                             "image_folder, npz, imagenet64: required)")
    resolution: int | None = Field(None, ge=4, le=1024, description="image side; default the dataset's "
                                   "(digits 8, mnist5k 32, fashion_mnist 32, imagenet64 64, npz native)")
    channels: Literal[1, 3] | None = Field(None, description="convert images to 1 or 3 channels")
    conditional: bool = Field(False, description="class-conditional training (labels to G, D, score)")

    @property
    def is_toy(self) -> bool:
        return self.kind in TOY_KINDS

    @property
    def image_resolution(self) -> int | None:
        """The served image side, when known without reading the data."""
        return self.resolution or NATIVE_RESOLUTION.get(self.kind)


class GeneratorConfig(_Section):
    arch: Literal["mlp", "stylegan2", "aurora"] = "mlp"
    z_dim: int = Field(8, ge=1)
    hidden: int = Field(128, ge=1, description="mlp only")
    layers: int = Field(3, ge=1, description="mlp only")
    w_dim: int = Field(128, ge=1, description="stylegan2/aurora: intermediate latent size")
    mapping_layers: int = Field(2, ge=1)
    channel_base: int = Field(512, ge=1, description="channels at resolution r: min(base / r, max)")
    channel_max: int = Field(64, ge=1)
    num_experts: int = Field(4, ge=1, description="aurora: experts per MoE feed-forward")
    attn_resolutions: list[int] = Field([8, 16], description="aurora: resolutions with attention blocks")
    num_heads: int = Field(2, ge=1, description="aurora: attention heads")
    aux_weight: float = Field(0.01, ge=0, description="aurora: weight of the MoE load-balancing loss in L_G")


class DiscriminatorConfig(_Section):
    arch: Literal["mlp", "stylegan2"] = "mlp"
    hidden: int = Field(128, ge=1, description="mlp only")
    layers: int = Field(3, ge=1, description="mlp only")
    channel_base: int = Field(512, ge=1, description="stylegan2: min(base / r, max) channels")
    channel_max: int = Field(64, ge=1)
    mbstd_group: int = Field(4, ge=1, description="stylegan2: minibatch-std group size")


class PretrainConfig(_Section):
    """A small class-conditional DDPM that `prepare_assets` trains into score.path when it is missing."""

    steps: int = Field(0, ge=0, description="0: never pretrain (a missing score model is an error)")
    batch_size: int = Field(64, ge=1)
    lr: float = Field(1e-3, gt=0)
    channels: list[int] = Field([32, 64, 64], description="UNet block widths, one per resolution level")
    layers_per_block: int = Field(1, ge=1)
    seed: int = Field(0, ge=0)


class ScoreConfig(_Section):
    """The frozen diffusion model ε_θ and its discrete noise schedule."""

    kind: Literal["analytic", "diffusers"] = "analytic"
    schedule: Literal["linear", "cosine"] = Field(
        "cosine", description="analytic, and diffusers pretraining (a loaded model brings its own)")
    num_timesteps: int = Field(1000, ge=2)
    path: str | None = Field(None, description="diffusers: local save_pretrained dir (unet/ + scheduler/, "
                             "or the dir itself) or a hub id when online")
    prediction: Literal["auto", "epsilon", "v_prediction"] = Field(
        "auto", description="what the UNet predicts; auto: the scheduler config's prediction_type")
    learned_variance: bool | None = Field(None, description="UNet outputs 2C channels (ε first); "
                                          "None: when out_channels == 2·in_channels")
    autocast: Literal["none", "bf16", "fp16"] = Field("none", description="score-model autocast on CUDA")
    pretrain: PretrainConfig = PretrainConfig()


class RegularizerConfig(_Section):
    """SMaRt: L_G += λ·E‖ε_θ(α_t G(z) + σ_t ε, t) − ε‖² on every k-th generator step."""

    weight: float = Field(0.0, ge=0, description="λ; 0 trains a plain GAN")
    interval: int = Field(8, ge=1, description="k: apply the term every k-th G step")
    t_min: int = Field(25, ge=0)
    t_max: int = Field(35, ge=0)
    mode: Literal["jacobian", "sds"] = "jacobian"
    scale_by_interval: bool = False
    start_kimg: float = Field(0.0, ge=0, description="warm-up: the term is off before this kimg")
    phase: Literal["joint", "separate"] = Field(
        "joint",
        description="joint = paper (added to L_adv in the same G step); separate = StyleGAN2's lazy "
        "recipe (own backward/step every k steps, G's Adam rescaled by k/(k+1))",
    )


class OptimConfig(_Section):
    g_lr: float = Field(1e-3, gt=0)
    d_lr: float = Field(1e-3, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.99, ge=0, lt=1)
    r1_gamma: float = Field(0.05, ge=0, description="R1 weight γ (penalty γ/2·‖∇D‖²); 0 disables")
    r1_interval: int = Field(16, ge=1, description="lazy R1: every this many D steps")


class TrainingConfig(_Section):
    kimg: float = Field(256.0, gt=0, description="thousands of real samples shown to D")
    batch_size: int = Field(256, ge=1)
    eval_every_kimg: float = Field(32.0, gt=0)
    ema_kimg: float = Field(5.0, ge=0, description="EMA half-life of G in kimg; 0 disables")


FID_EXTRACTORS = ("toy-rbf", "classifier", "inception-v3-compat", "inception-torchscript")


class EvalConfig(_Section):
    num_samples: int = Field(10_000, ge=100, description="samples of the EMA generator per eval")
    grad_samples: int = Field(2048, ge=16, description="samples for the gradient-norm diagnostics")
    metrics: list[Literal["fid", "modes", "grad_norms"]] = ["fid", "modes", "grad_norms"]
    cache_dir: str | None = Field(None, description="reference-statistics cache; default ~/.cache/smart")
    fid_extractor: Literal["auto", "toy-rbf", "classifier", "inception-v3-compat", "inception-torchscript"] = (
        Field("auto", description="auto: toy-rbf for toy data, classifier for images"))
    extractor_weights: str | None = Field(
        None, description="inception-v3-compat: .pth file (else $SMART_INCEPTION_WEIGHTS); "
        "inception-torchscript: TorchScript .pt (else $SMART_INCEPTION_TORCHSCRIPT)")
    final_num_samples: int | None = Field(None, ge=100, description="images: samples for the last eval's FID")
    reference_samples: int | None = Field(None, ge=100, description="images: real images in the FID "
                                          "reference (default: the whole dataset)")

    def extractor_for(self, data: "DataConfig") -> str:
        if self.fid_extractor != "auto":
            return self.fid_extractor
        return "toy-rbf" if data.is_toy else "classifier"


class RunConfig(_Section):
    data: DataConfig = DataConfig()
    generator: GeneratorConfig = GeneratorConfig()
    discriminator: DiscriminatorConfig = DiscriminatorConfig()
    score: ScoreConfig = ScoreConfig()
    regularizer: RegularizerConfig = RegularizerConfig()
    optim: OptimConfig = OptimConfig()
    training: TrainingConfig = TrainingConfig()
    eval: EvalConfig = EvalConfig()
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="after")
    def _cross_checks(self) -> "RunConfig":
        reg, steps = self.regularizer, self.score.num_timesteps
        if reg.t_max >= steps:
            raise ValueError(f"regularizer.t_max: must be < score.num_timesteps ({steps}), got {reg.t_max}")
        if reg.t_min > reg.t_max:
            raise ValueError(f"regularizer.t_min: must be <= regularizer.t_max ({reg.t_max}), got {reg.t_min}")
        if self.training.eval_every_kimg > self.training.kimg:
            raise ValueError("training.eval_every_kimg: must be <= training.kimg")
        problem = _toy_checks(self) if self.data.is_toy else _image_checks(self)
        if problem:
            raise ValueError(problem)
        return self

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: Any, overrides: dict[str, Any] | None = None) -> "RunConfig":
        """Validate a nested mapping (plus dotted overrides); any problem is a ConfigError naming its key."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError("config", f"must be a mapping, got {type(raw).__name__}")
        data = json.loads(json.dumps(raw))  # deep copy; also rejects non-JSON values early
        for key, value in (overrides or {}).items():
            set_dotted(data, key, value)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _to_config_error(exc) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def flat(self) -> dict[str, Any]:
        """Dotted-key view (MLflow params, tables)."""
        return flatten(self.to_dict())

    def with_overrides(self, overrides: dict[str, Any]) -> "RunConfig":
        return RunConfig.from_dict(self.to_dict(), overrides)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _toy_checks(cfg: RunConfig) -> str | None:
    """Toy mixtures: MLP nets, the exact score, the RBF extractor."""
    why = "needs image data (data.kind one of " + ", ".join(IMAGE_KINDS) + ")"
    if cfg.generator.arch != "mlp":
        return f"generator.arch: {cfg.generator.arch} {why}"
    if cfg.discriminator.arch != "mlp":
        return f"discriminator.arch: {cfg.discriminator.arch} {why}"
    if cfg.score.kind != "analytic":
        return f"score.kind: {cfg.score.kind} {why}"
    if cfg.data.conditional:
        return "data.conditional: toy mixtures have no labels"
    if cfg.eval.fid_extractor not in ("auto", "toy-rbf"):
        return f"eval.fid_extractor: {cfg.eval.fid_extractor} {why}"
    return None


def _image_checks(cfg: RunConfig) -> str | None:
    data, gen = cfg.data, cfg.generator
    if data.kind in ("image_folder", "npz", "imagenet64") and not data.path:
        return f"data.path: required for data.kind {data.kind}"
    if data.kind == "image_folder" and data.resolution is None:
        return "data.resolution: required for data.kind image_folder"
    res = data.image_resolution
    styled = [a for a in (gen.arch, cfg.discriminator.arch) if a != "mlp"]
    if styled and res is not None and (res & (res - 1)):
        return f"data.resolution: {styled[0]} nets need a power of two, got {res}"
    if data.conditional and gen.arch == "mlp":
        return "data.conditional: the mlp generator ignores labels; use generator.arch stylegan2 or aurora"
    if any(r < 4 or r & (r - 1) for r in gen.attn_resolutions):
        return f"generator.attn_resolutions: powers of two >= 4 expected, got {gen.attn_resolutions}"
    if cfg.score.kind == "analytic":
        return "score.kind: analytic needs toy data (ring8, grid25); use diffusers with score.path"
    if not cfg.score.path:
        return "score.path: required for score.kind diffusers (a local model dir or a hub id)"
    if any(c < 8 or c % 8 for c in cfg.score.pretrain.channels) or not cfg.score.pretrain.channels:
        return f"score.pretrain.channels: multiples of 8 expected, got {cfg.score.pretrain.channels}"
    if cfg.eval.fid_extractor == "toy-rbf":
        return "eval.fid_extractor: toy-rbf needs toy data; use classifier, inception-v3-compat or inception-torchscript"
    if "modes" in cfg.eval.metrics:
        return "eval.metrics: modes needs toy data; use [fid, grad_norms] for images"
    return None


def _to_config_error(exc: ValidationError) -> ConfigError:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        return ConfigError(key, "unknown key")
    if err["type"] == "value_error":
        msg = msg.removeprefix("Value error, ")
        if not key and ": " in msg:  # cross-field checks carry their key in the message
            key, msg = msg.split(": ", 1)
    if "input" in err and err["type"] not in ("missing",) and not isinstance(err["input"], dict):
        msg = f"{msg} (got {err['input']!r})"
    return ConfigError(key or "config", msg)


# ---- dotted keys ------------------------------------------------------------------------------
def set_dotted(tree: dict[str, Any], key: str, value: Any) -> None:
    """Set ``a.b.c`` in a nested dict, creating sections; a scalar in the way is an error."""
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(key or "--set", "malformed dotted key")
    node = tree
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(".".join(parts[: i + 1]), "is a value, not a section")
        node = child
    node[parts[-1]] = value


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, name + "."))
        else:
            out[name] = v
    return out


def config_keys() -> set[str]:
    """Every valid dotted key of a run config."""
    return set(RunConfig().flat())


def parse_assignment(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is read as a YAML scalar (1e-3, true, [1, 2])."""
    if "=" not in text:
        raise ConfigError("--set", f"expected key=value, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = yaml.load(raw, Loader=YamlLoader) if raw.strip() else ""
    except yaml.YAMLError:
        raise ConfigError(key, f"cannot parse value {raw!r}") from None
    return key, value


def load_yaml(path: str) -> Any:
    """Safe-load a YAML file; problems name the file."""
    try:
        with open(path, encoding="utf-8") as fh:
            return yaml.load(fh, Loader=YamlLoader)
    except FileNotFoundError:
        raise ConfigError(path, "no such file") from None
    except IsADirectoryError:
        raise ConfigError(path, "is a directory, expected a YAML file") from None
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(path, f"invalid YAML{line}: {problem}") from None
