"""Typed run configuration: the one place where a run's options are validated.

Dotted keys (``regularizer.weight``) are the public names of every option: the same in YAML, in
``--set``, in a study's search space and in MLflow params.

The sections `data`, `generator`, `discriminator` and `score` are tagged: their `kind`/`arch` names a
registered kind (smart.registry), whose own config class (a subclass of the base here) holds that
kind's options and its cross-field checks. The fixed sections (`regularizer`, `loss`, `optim`, `training`,
`eval`) live here. `plugins:` names modules imported before anything else is validated, so that a
user's registered kinds work from YAML, `python -m smart.train` and Ray workers alike.
"""
from __future__ import annotations

import json
import re
import types
import typing
from typing import Any, ClassVar, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator,
                      model_validator)

from smart.errors import ConfigError
from smart.registry import (DATASETS, DISCRIMINATORS, FID_EXTRACTORS, GENERATORS, METRICS, SCORE_MODELS,
                            Registry, import_plugin)

__all__ = ["ConfigError", "RunConfig", "DataConfig", "GeneratorConfig", "DiscriminatorConfig", "ScoreConfig",
           "Section", "config_keys", "key_rows", "keys_markdown", "load_yaml", "parse_assignment", "set_dotted",
           "flatten"]


class YamlLoader(yaml.SafeLoader):
    """Safe loading, plus YAML 1.2 floats: `1e-3` is a number, not the string PyYAML 1.1 makes of it."""


YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d[\d_]*)?(?:\.\d*)?[eE][-+]?\d+$"),
    list("-+0123456789."),
)


class Section(BaseModel):
    """A config section: strict types, no unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


# ---- the tagged sections' bases (each kind's subclass is registered with the kind) ---------------
DOMAINS = ("toy", "image")


class DataConfig(Section):
    """Base of every `data` section (smart.data declares the built-in kinds' subclasses)."""

    kind: str = Field(description="the dataset, a name registered in smart.registry.DATASETS")
    # "toy": low-dimensional points with an exact density; "image": (C, H, W) images in [-1, 1]
    domain: ClassVar[str]

    def check(self, run: RunConfig) -> None:
        """Checks involving other sections; a problem is a ConfigError naming its key."""


class GeneratorConfig(Section):
    """Base of every `generator` section (smart.nets declares the built-in archs' subclasses). A
    generator with an auxiliary loss (Aurora's MoE balance) has an `aux_weight` field."""

    arch: str = Field(description="the generator network, a name registered in smart.registry.GENERATORS")
    z_dim: int = Field(8, ge=1, description="latent size (toy data in R^d: below d, G's samples lie on a set of "
                       "dimension ≤ z_dim, as the data's plane does; above it, G can fill the space around the plane)")
    domains: ClassVar[tuple[str, ...]] = DOMAINS  # the data domains it can generate

    def check(self, run: RunConfig) -> None:
        """Checks involving other sections; a problem is a ConfigError naming its key."""

    @property
    def has_aux_loss(self) -> bool:
        return "aux_weight" in type(self).model_fields


class DiscriminatorConfig(Section):
    """Base of every `discriminator` section (smart.nets declares the built-in archs' subclasses)."""

    arch: str = Field(description="the discriminator network, a name registered in smart.registry.DISCRIMINATORS")
    domains: ClassVar[tuple[str, ...]] = DOMAINS

    def check(self, run: RunConfig) -> None:
        """Checks involving other sections; a problem is a ConfigError naming its key."""


class ScoreConfig(Section):
    """Base of every `score` section: the frozen diffusion model ε_θ and its discrete noise schedule
    (smart.score declares the built-in kinds' subclasses)."""

    kind: str = Field(description="the score model, a name registered in smart.registry.SCORE_MODELS")
    schedule: Literal["linear", "cosine"] = Field(
        "cosine", description="noise schedule of the analytic score and of score pretraining (a loaded model "
        "brings its own)")
    num_timesteps: int = Field(1000, ge=2, description="length of the discrete schedule")
    domains: ClassVar[tuple[str, ...]] = DOMAINS

    def check(self, run: RunConfig) -> None:
        """Checks involving other sections; a problem is a ConfigError naming its key."""


# section -> (registry, tag field, base class, default kind)
_TAGGED: dict[str, tuple[Registry, str, type[Section], str]] = {
    "data": (DATASETS, "kind", DataConfig, "ring8"),
    "generator": (GENERATORS, "arch", GeneratorConfig, "mlp"),
    "discriminator": (DISCRIMINATORS, "arch", DiscriminatorConfig, "mlp"),
    "score": (SCORE_MODELS, "kind", ScoreConfig, "analytic"),
}


def _select(section: str, value: Any) -> Section:
    """Validate a tagged section with the config class registered for its kind/arch."""
    registry, tag, base, default = _TAGGED[section]
    if isinstance(value, base):
        return value
    if not isinstance(value, dict):
        raise ConfigError(section, f"must be a mapping, got {type(value).__name__}")
    name = value.get(tag, default)
    entry = registry.get(name, f"{section}.{tag}")
    if entry.config is None or not issubclass(entry.config, base):
        raise TypeError(f"{registry.what} {name!r} is registered without a config class derived from {base.__name__}")
    try:
        return entry.config.model_validate({**value, tag: name})
    except ValidationError as exc:
        raise _to_config_error(exc, section, f"{section}.{tag} {name}") from None


def _default(section: str):
    def make() -> Section:
        return _select(section, {})
    return make


def _kinds_for(domains: tuple[str, ...]) -> str:
    return ", ".join(e.name for e in DATASETS.entries() if e.config is not None and e.config.domain in domains)


def needs_domain(key: str, name: str, domains: tuple[str, ...]) -> ConfigError:
    """The error for a kind used with data of a domain it cannot handle."""
    return ConfigError(key, f"{name} needs {' or '.join(domains)} data (data.kind one of {_kinds_for(domains)})")


# ---- the fixed sections ---------------------------------------------------------------------------
class RegularizerConfig(Section):
    """SMaRt: L_G += λ·E‖ε_θ(α_t G(z) + σ_t ε, t) − ε‖² on every k-th generator step."""

    weight: float = Field(0.0, ge=0, description="λ; 0 trains a plain GAN")
    interval: int = Field(8, ge=1, description="k: apply the term every k-th G step")
    t_min: int = Field(25, ge=0, description="smallest timestep t drawn for the term")
    t_max: int = Field(35, ge=0, description="largest timestep t drawn for the term (< score.num_timesteps)")
    mode: Literal["jacobian", "sds"] = Field(
        "jacobian", description="jacobian = paper (gradient through ε_θ); sds = ours, cheaper: ε_θ's Jacobian "
        "dropped")
    scale_by_interval: bool = Field(False, description="multiply λ by k (StyleGAN2's lazy scaling; the paper "
                                    "does not)")
    start_kimg: float = Field(0.0, ge=0, description="warm-up: the term is off before this kimg")
    phase: Literal["joint", "separate"] = Field(
        "joint",
        description="joint = paper (added to L_adv in the same G step); separate = StyleGAN2's lazy "
        "recipe (own backward/step every k steps, G's Adam rescaled by k/(k+1))",
    )


class LossConfig(Section):
    """The adversarial game's losses."""

    g_loss: Literal["non_saturating", "minimax"] = Field(
        "non_saturating", description="generator loss: non_saturating = −log D(G(z)) (the default of every GAN "
        "since Goodfellow et al. 2014); minimax = log(1 − D(G(z))), the original game, whose gradient vanishes "
        "where D rejects a sample with confidence — the saturation SMaRt's premise is about")


class OptimConfig(Section):
    """Adam for G and D, and D's lazy R1 penalty."""

    g_lr: float = Field(1e-3, gt=0, description="generator learning rate")
    d_lr: float = Field(1e-3, gt=0, description="discriminator learning rate")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam β1 of both networks")
    beta2: float = Field(0.99, ge=0, lt=1, description="Adam β2 of both networks")
    r1_gamma: float = Field(0.05, ge=0, description="R1 weight γ (penalty γ/2·‖∇D‖²); 0 disables")
    r1_interval: int = Field(16, ge=1, description="lazy R1: every this many D steps")


class TrainingConfig(Section):
    """Length, batch and evaluation schedule of a run."""

    kimg: float = Field(256.0, gt=0, description="thousands of real samples shown to D")
    batch_size: int = Field(256, ge=1, description="global batch (split evenly across DDP workers)")
    eval_every_kimg: float = Field(32.0, gt=0, description="evaluate (and checkpoint) every this many kimg")
    ema_kimg: float = Field(5.0, ge=0, description="EMA half-life of G in kimg; 0 disables")
    ema_rampup: float | None = Field(None, gt=0, description="EMA ramp-up (stylegan2-ada): the half-life is "
                                     "min(ema_kimg, ema_rampup × kimg so far); null: ema_kimg from the start")
    deterministic: bool = Field(False, description="deterministic algorithms (torch, cuDNN, cuBLAS): bit-for-bit "
                                "resume on CUDA too, at some speed; the CPU is always deterministic")


class EvalConfig(Section):
    """What an eval measures on the EMA generator."""

    num_samples: int = Field(10_000, ge=100, description="samples of the EMA generator per eval")
    grad_samples: int = Field(2048, ge=16, description="samples for the gradient-norm diagnostics")
    metrics: list[str] = Field(["fid", "modes", "grad_norms"],
                               description="metrics of every eval, names registered in smart.registry.METRICS")
    cache_dir: str | None = Field(None, description="reference-statistics cache; default $SMART_CACHE_DIR or "
                                  "~/.cache/smart")
    fid_extractor: str = Field("auto", description="FID features, a name registered in smart.registry."
                               "FID_EXTRACTORS; auto: toy-rbf for toy data, classifier for images")
    extractor_weights: str | None = Field(
        None, description="inception-v3-compat: .pth file (else $SMART_INCEPTION_WEIGHTS); "
        "inception-torchscript: TorchScript .pt (else $SMART_INCEPTION_TORCHSCRIPT)")
    final_num_samples: int | None = Field(None, ge=100, description="images: samples for the last eval's FID")
    reference_samples: int | None = Field(None, ge=100, description="images: real images in the FID "
                                          "reference (default: the whole dataset)")

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, names: list[str]) -> list[str]:
        for name in names:
            METRICS.get(name)
        return names

    @field_validator("fid_extractor")
    @classmethod
    def _known_extractor(cls, name: str) -> str:
        if name != "auto":
            FID_EXTRACTORS.get(name)
        return name

    def extractor_for(self, data: DataConfig) -> str:
        """The configured extractor, or for `auto` the one registered as the data domain's default."""
        if self.fid_extractor != "auto":
            return self.fid_extractor
        return next(e.name for e in FID_EXTRACTORS.entries() if e.info.get("default_for") == data.domain)

    def check(self, run: RunConfig) -> None:
        domain = run.data.domain
        name = self.extractor_for(run.data)
        if FID_EXTRACTORS.get(name).info["domain"] != domain:
            fitting = [e.name for e in FID_EXTRACTORS.entries() if e.info["domain"] == domain]
            raise ConfigError("eval.fid_extractor", f"{name} does not read {domain} data; use one of "
                              f"{', '.join(fitting)}")
        for metric in self.metrics:
            domains = METRICS.get(metric).info.get("domains", DOMAINS)
            if domain not in domains:
                raise needs_domain("eval.metrics", metric, domains)


class RunConfig(Section):
    data: SerializeAsAny[DataConfig] = Field(default_factory=_default("data"))
    generator: SerializeAsAny[GeneratorConfig] = Field(default_factory=_default("generator"))
    discriminator: SerializeAsAny[DiscriminatorConfig] = Field(default_factory=_default("discriminator"))
    score: SerializeAsAny[ScoreConfig] = Field(default_factory=_default("score"))
    regularizer: RegularizerConfig = RegularizerConfig()
    loss: LossConfig = LossConfig()
    optim: OptimConfig = OptimConfig()
    training: TrainingConfig = TrainingConfig()
    eval: EvalConfig = EvalConfig()
    seed: int = Field(0, ge=0, description="seed of the run (nets, data order, latents, t and ε)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto: cuda when available")
    plugins: list[str] = Field([], description="modules imported before the rest of the config is validated, "
                               "to register their own kinds (datasets, nets, score models, metrics)")

    @model_validator(mode="before")
    @classmethod
    def _import_plugins(cls, raw: Any) -> Any:
        plugins = raw.get("plugins", []) if isinstance(raw, dict) else []
        if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
            raise ConfigError("plugins", f"must be a list of module names, got {plugins!r}")
        for name in plugins:
            import_plugin(name)
        return raw

    @field_validator("data", "generator", "discriminator", "score", mode="before")
    @classmethod
    def _tagged(cls, value: Any, info) -> Section:
        return _select(info.field_name, value)

    @model_validator(mode="after")
    def _cross_checks(self) -> RunConfig:
        reg, steps = self.regularizer, self.score.num_timesteps
        if reg.t_max >= steps:
            raise ConfigError("regularizer.t_max", f"must be < score.num_timesteps ({steps}), got {reg.t_max}")
        if reg.t_min > reg.t_max:
            raise ConfigError("regularizer.t_min", f"must be <= regularizer.t_max ({reg.t_max}), got {reg.t_min}")
        if self.training.eval_every_kimg > self.training.kimg:
            raise ConfigError("training.eval_every_kimg", "must be <= training.kimg")
        for section in ("generator", "discriminator", "score"):
            part, tag = getattr(self, section), _TAGGED[section][1]
            if self.data.domain not in part.domains:
                raise needs_domain(f"{section}.{tag}", getattr(part, tag), part.domains)
        for part in (self.data, self.generator, self.discriminator, self.score, self.eval):
            part.check(self)
        return self

    # ---- construction -------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, raw: Any, overrides: dict[str, Any] | None = None) -> RunConfig:
        """Validate a nested mapping (plus dotted overrides); any problem is a ConfigError naming its key.
        An override that switches a section's kind/arch keeps only the options the new one has."""
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise ConfigError("config", f"must be a mapping, got {type(raw).__name__}")
        data = json.loads(json.dumps(raw))  # deep copy; also rejects non-JSON values early
        for key, value in (overrides or {}).items():
            _switch_kind(data, key, value)
            set_dotted(data, key, value)
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise _to_config_error(exc) from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def flat(self) -> dict[str, Any]:
        """Dotted-key view (tables, the set of valid keys)."""
        return flatten(self.to_dict())

    def params(self) -> dict[str, Any]:
        """The dotted keys that shape this run (its MLflow params): `flat()` less the inert keys."""
        flat = self.flat()
        inert = inert_keys({}, flat)
        return {k: v for k, v in flat.items() if k not in inert}

    def with_overrides(self, overrides: dict[str, Any]) -> RunConfig:
        return RunConfig.from_dict(self.to_dict(), overrides)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


def _switch_kind(tree: dict[str, Any], key: str, value: Any) -> None:
    """Before `generator.arch=stylegan2` lands on a full mlp section, drop the mlp-only options."""
    section, _, name = key.partition(".")
    spec, old = _TAGGED.get(section), tree.get(section)
    if spec is None or name != spec[1] or not isinstance(old, dict) or not isinstance(value, str):
        return
    if old.get(name, spec[3]) == value or value not in spec[0]:
        return
    fields = spec[0].get(value).config.model_fields
    tree[section] = {k: v for k, v in old.items() if k in fields}


def _to_config_error(exc: ValidationError, prefix: str = "", kind: str = "") -> ConfigError:
    err = exc.errors()[0]
    inner = (err.get("ctx") or {}).get("error")
    if isinstance(inner, ConfigError):  # raised by a validator or a nested section: names its key
        return inner
    key = ".".join([prefix] * bool(prefix) + [str(p) for p in err["loc"]])
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        return ConfigError(key, f"unknown key for {kind}" if kind else "unknown key")
    if err["type"] == "value_error":
        msg = msg.removeprefix("Value error, ")
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


# A key whose value 0 switches its section off: the section's other keys then cannot change the run.
SWITCHES = {"regularizer.weight": "regularizer"}


def inert_keys(overrides: dict[str, Any], flat: dict[str, Any]) -> set[str]:
    """The dotted keys that cannot change a run of the config `flat` (its `flat()` view) with
    `overrides` applied: with λ = 0 (a plain GAN) every other regularizer key. A study neither
    samples nor records them, so the baseline carries no k or t-range."""
    inert: set[str] = set()
    for switch, section in SWITCHES.items():
        if overrides.get(switch, flat.get(switch)) == 0:
            inert |= {k for k in flat if k.startswith(section + ".") and k != switch}
    return inert


def active_overrides(overrides: dict[str, Any], flat: dict[str, Any]) -> dict[str, Any]:
    """`overrides` less the keys they make inert (a λ = 0 point keeps no k or t-range)."""
    inert = inert_keys(overrides, flat)
    return {k: v for k, v in overrides.items() if k not in inert}


def config_keys(cfg: RunConfig | None = None) -> set[str]:
    """Every valid dotted key of `cfg` (default: the default config); which keys exist depends on
    the chosen kinds and archs."""
    return set((cfg or RunConfig()).flat())


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


# ---- the key reference (`python -m smart.train --list-keys`) ------------------------------------
def _type_name(annotation: Any) -> str:
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Literal:
        return " or ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    return getattr(annotation, "__name__", str(annotation))


def _field_rows(cls: type[BaseModel], prefix: str, skip: str = "") -> list[tuple[str, str, str, str]]:
    """(key, type, default, description) of a section's fields, nested sections expanded."""
    rows = []
    for name, info in cls.model_fields.items():
        if name == skip:
            continue
        key = f"{prefix}{name}"
        default = info.get_default(call_default_factory=True)
        if isinstance(default, Section):
            rows += _field_rows(type(default), key + ".")
            continue
        rows.append((key, _type_name(info.annotation), json.dumps(default), info.description or ""))
    return rows


def key_rows() -> list[tuple[str, str, str, str, str]]:
    """(key, type, default, applies to, description) of every key of every registered kind."""
    rows: list[tuple[str, str, str, str, str]] = []
    for section, info in RunConfig.model_fields.items():
        if section not in _TAGGED:
            default = info.get_default(call_default_factory=True)
            if isinstance(default, Section):
                rows += [(k, t, d, "", s) for k, t, d, s in _field_rows(type(default), section + ".")]
            else:
                rows.append((section, _type_name(info.annotation), json.dumps(default), "", info.description or ""))
            continue
        registry, tag, base, default_kind = _TAGGED[section]
        entries = [e for e in registry.entries() if e.config is not None]
        rows.append((f"{section}.{tag}", " or ".join(e.name for e in entries), json.dumps(default_kind), "",
                     base.model_fields[tag].description or ""))
        owners: dict[str, tuple[tuple[str, str, str, str], list[str]]] = {}
        for entry in entries:
            for row in _field_rows(entry.config, section + ".", skip=tag):
                owners.setdefault(row[0], (row, []))[1].append(entry.name)
        for (key, kind, default, text), names in owners.values():
            applies = "" if len(names) == len(entries) else f"{section}.{tag}: {', '.join(names)}"
            rows.append((key, kind, default, applies, text))
    return rows


def keys_markdown() -> str:
    """The key reference as a Markdown table (the README's table is generated from it)."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|")

    lines = ["| key | type | default | applies to | description |", "|---|---|---|---|---|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in key_rows()]
    return "\n".join(lines)
