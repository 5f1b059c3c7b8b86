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


class DataConfig(_Section):
    """Real data. Toy mixtures are exact; image datasets arrive with the image path."""

    kind: Literal["ring8", "grid25"] = "ring8"
    std: float = Field(0.05, gt=0, le=0.5, description="per-mode standard deviation of toy mixtures")


class GeneratorConfig(_Section):
    arch: Literal["mlp"] = "mlp"
    z_dim: int = Field(8, ge=1)
    hidden: int = Field(128, ge=1)
    layers: int = Field(3, ge=1)


class DiscriminatorConfig(_Section):
    arch: Literal["mlp"] = "mlp"
    hidden: int = Field(128, ge=1)
    layers: int = Field(3, ge=1)


class ScoreConfig(_Section):
    """The frozen diffusion model ε_θ and its discrete noise schedule."""

    kind: Literal["analytic"] = "analytic"
    schedule: Literal["linear", "cosine"] = "cosine"
    num_timesteps: int = Field(1000, ge=2)


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


class EvalConfig(_Section):
    num_samples: int = Field(10_000, ge=100, description="samples of the EMA generator per eval")
    grad_samples: int = Field(2048, ge=16, description="samples for the gradient-norm diagnostics")
    metrics: list[Literal["fid", "modes", "grad_norms"]] = ["fid", "modes", "grad_norms"]
    cache_dir: str | None = Field(None, description="reference-statistics cache; default ~/.cache/smart")


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
