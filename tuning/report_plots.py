"""The study report's plots: matplotlib PNGs of FID against λ, k and the t-range and over training,
and Optuna's fANOVA importances and parallel coordinates (PNG and interactive plotly HTML) on an
Optuna study rebuilt from the MLflow records."""
from __future__ import annotations

import math
import os
import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import optuna  # noqa: E402
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402

from tuning.report_data import INTERVAL, LAMBDA, T_MAX, T_MIN, StudyRecord  # noqa: E402
from tuning.status import TrialStatus  # noqa: E402

STATUS_MARKERS = {TrialStatus.FINISHED: "o", TrialStatus.STOPPED_EARLY: "v", TrialStatus.DIVERGED: "X",
                  TrialStatus.ERROR: "x"}
OTHER_MARKER = "s"
BASELINE_COLOUR = "black"


def save_png(fig, path: str) -> None:
    fig.savefig(path, format="png")
    plt.close(fig)


def _marker(status: str) -> str:
    return STATUS_MARKERS.get(status, OTHER_MARKER)


def _k_colours(values) -> dict:
    cmap = plt.get_cmap("viridis")
    ks = sorted(set(values))
    return {k: cmap(i / max(1, len(ks) - 1)) for i, k in enumerate(ks)}


def _status_legend(ax, statuses) -> None:
    handles = [plt.Line2D([], [], ls="", marker=_marker(s), color="grey", label=s) for s in sorted(statuses)]
    ax.add_artist(ax.legend(handles=handles, title="status", loc="lower left", bbox_to_anchor=(1.01, 0),
                            fontsize=7, title_fontsize=7))


def fid_vs_lambda(record: StudyRecord, path: str) -> bool:
    """Objective against λ on a log axis, coloured by k; λ = 0 trials as a dashed line and a
    diamond on the left edge (no place on a log axis)."""
    trials = [t for t in record.scored if t.number(LAMBDA) is not None]
    positive = [t for t in trials if t.number(LAMBDA) > 0]
    if not trials:
        return False
    fig, ax = plt.subplots(figsize=(7.2, 4), dpi=90)
    colours = _k_colours(t.number(INTERVAL) for t in positive)  # the baseline has no k
    for t in positive:
        ax.scatter(t.number(LAMBDA), record.objective(t), color=colours[t.number(INTERVAL)], marker=_marker(t.status),
                   s=40, edgecolors="black", linewidths=0.4)
    lams = [t.number(LAMBDA) for t in positive] or [1e-3, 1]
    left = min(lams) / 3
    for t in trials:
        if t.number(LAMBDA) == 0:
            ax.axhline(record.objective(t), color=BASELINE_COLOUR, ls="--", lw=1)
            ax.scatter(left, record.objective(t), color=BASELINE_COLOUR, marker="D", s=50, zorder=3)
    ax.set_xscale("log")
    ax.set_xlim(left / 1.5, max(lams) * 1.5)
    ax.set(xlabel="λ (regularizer.weight); ◆ and dashed: λ = 0 baseline", ylabel=record.metric,
           title=f"{record.name}: {record.metric} vs λ, coloured by k")
    _status_legend(ax, {t.status for t in trials})
    ax.legend(handles=[plt.Line2D([], [], ls="", marker="o", color=c, label=f"k={k:g}") for k, c in colours.items()],
              title="k", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, title_fontsize=7)
    fig.tight_layout()
    save_png(fig, path)
    return True


def fid_vs_trange(record: StudyRecord, path: str) -> bool:
    """Each trial's [t_min, t_max] band as a bar at its objective, coloured by log λ."""
    trials = [t for t in record.scored if t.number(T_MIN) is not None and t.number(T_MAX) is not None]
    if not trials:
        return False
    fig, ax = plt.subplots(figsize=(6, 4), dpi=90)
    lams = [t.number(LAMBDA) for t in trials if (t.number(LAMBDA) or 0) > 0]
    norm = matplotlib.colors.LogNorm(min(lams), max(lams) * 1.0001) if lams else None
    cmap = plt.get_cmap("plasma")
    for t in trials:
        lam = t.number(LAMBDA) or 0.0
        colour = BASELINE_COLOUR if lam == 0 or norm is None else cmap(norm(lam))
        y = record.objective(t)
        ax.plot([t.number(T_MIN), t.number(T_MAX)], [y, y], color=colour, lw=3, solid_capstyle="butt",
                ls=":" if lam == 0 else "-")
        ax.scatter([(t.number(T_MIN) + t.number(T_MAX)) / 2], [y], color=colour, marker=_marker(t.status), s=25)
    if norm is not None:
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label="λ (black dotted: λ = 0)")
    ax.set(xlabel="timestep band [t_min, t_max]", ylabel=record.metric, title=f"{record.name}: {record.metric} vs t-range")
    fig.tight_layout()
    save_png(fig, path)
    return True


def fid_over_kimg(record: StudyRecord, path: str) -> bool:
    """Every trial's objective over training; trials ASHA stopped end in a ▼, the best is thick,
    the λ = 0 baseline black."""
    trials = [t for t in record.trials if t.history]
    if not trials:
        return False
    fig, ax = plt.subplots(figsize=(6, 4), dpi=90)
    best, baseline = record.best, record.baseline
    for t in trials:
        steps, values = zip(*t.history)
        if t is baseline:
            style = {"color": BASELINE_COLOUR, "lw": 2, "label": f"λ=0 baseline ({t.trial_id})"}
        elif t is best:
            style = {"color": "tab:red", "lw": 2.5, "label": f"best ({t.trial_id})"}
        else:
            style = {"color": "tab:blue", "lw": 1, "alpha": 0.5}
        ax.plot(steps, values, **style)
        if t.status != TrialStatus.FINISHED:
            ax.scatter(steps[-1], values[-1], marker=_marker(t.status), color=style["color"], s=30, zorder=3)
    ax.set_yscale("log" if all(v > 0 for t in trials for _, v in t.history) else "linear")
    ax.set(xlabel="kimg", ylabel=record.metric, title=f"{record.name}: {record.metric} over training "
                                                      f"({len(trials)} trials; ▼ stopped by ASHA)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_png(fig, path)
    return True


def _distribution(entry: dict, key: str) -> dict:
    kind = entry.get("type")
    if kind == "loguniform":
        return {key: FloatDistribution(entry["low"], entry["high"], log=True)}
    if kind == "uniform":
        return {key: FloatDistribution(entry["low"], entry["high"])}
    if kind == "int":
        return {key: IntDistribution(entry["low"], entry["high"], log=entry.get("log", False))}
    if kind == "choice":
        return {key: CategoricalDistribution(entry["values"])}
    if kind == "range":
        width = entry.get("min_width", 1)
        return {key: IntDistribution(entry["low"], entry["high"] - width),
                entry["upper"]: IntDistribution(entry["low"] + width, entry["high"])}
    return {}  # fixed (or unknown): not a searched dimension


def optuna_study(record: StudyRecord) -> tuple[optuna.Study, list[str]]:
    """The scored trials as a finished Optuna study; trials whose values lie outside the searched
    distributions (the λ = 0 baseline under a log-uniform λ) are left out, and named."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists = {}
    for key, entry in record.search.items():
        dists.update(_distribution(entry, key))
    study = optuna.create_study(study_name=record.name, direction="minimize" if record.mode == "min" else "maximize")
    left_out = []
    for t in record.scored:
        params = {k: t.searched[k] for k in dists if k in t.searched}
        try:
            study.add_trial(optuna.trial.create_trial(params=params, distributions={k: dists[k] for k in params},
                                                      value=record.objective(t),
                                                      user_attrs={"trial_id": t.trial_id}))
        except ValueError:
            left_out.append(t.trial_id)
    return study, left_out


def optuna_plots(record: StudyRecord, out: str) -> tuple[dict, list[str]]:
    """Importances (fANOVA) and parallel coordinates as PNG and HTML. Returns the importances and
    notes on what could not be drawn."""
    study, left_out = optuna_study(record)
    notes = [f"trials {', '.join(left_out)} lie outside the searched distributions (the λ = 0 baseline) "
             "and are left out of the importances and parallel coordinates"] if left_out else []
    complete = study.get_trials(deepcopy=False)
    if len(complete) < 2:
        return {}, notes + ["importances and parallel coordinates need at least 2 trials inside the search space"]
    from optuna.importance import FanovaImportanceEvaluator  # here: it imports scikit-learn (~2 s)

    importances = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            importances = optuna.importance.get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0))
        except (ValueError, RuntimeError) as exc:
            notes.append(f"parameter importances unavailable: {exc}")
        if importances:  # fANOVA once: both pictures from these numbers
            _importance_png(importances, record, os.path.join(out, "importances.png"))
            _importance_html(importances, record, os.path.join(out, "importances.html"))
        fig = optuna.visualization.matplotlib.plot_parallel_coordinate(study).figure
        fig.set_size_inches(9, 4.8)
        fig.set_dpi(90)
        fig.tight_layout()
        save_png(fig, os.path.join(out, "parallel_coordinates.png"))
        optuna.visualization.plot_parallel_coordinate(study).write_html(
            os.path.join(out, "parallel_coordinates.html"), include_plotlyjs="directory")
    return importances, notes


def _importance_png(importances: dict, record: StudyRecord, path: str) -> None:
    fig, ax = plt.subplots(figsize=(6, 0.5 + 0.45 * len(importances)), dpi=90)
    names = list(importances)[::-1]
    ax.barh(names, [importances[n] for n in names], color="tab:green")
    ax.set(xlabel=f"fANOVA importance for {record.metric}", xlim=(0, 1), title=f"{record.name}: parameter importances")
    fig.tight_layout()
    save_png(fig, path)


def _importance_html(importances: dict, record: StudyRecord, path: str) -> None:
    import plotly.graph_objects as go

    names = list(importances)[::-1]
    fig = go.Figure(go.Bar(x=[importances[n] for n in names], y=names, orientation="h",
                           text=[f"{importances[n]:.2f}" for n in names], textposition="outside"))
    fig.update_layout(title=f"{record.name}: fANOVA parameter importances for {record.metric}",
                      xaxis={"title": "importance", "range": [0, 1]}, template="plotly_white")
    fig.write_html(path, include_plotlyjs="directory")


def confirmation_strip(entries: list[dict], metric: str, title: str, path: str) -> bool:
    """Every confirmed configuration's per-seed objective (one dot per seed, jittered), its mean and
    95% interval, the λ = 0 baseline's first and its mean as a dashed line across: whether a
    configuration beats the plain GAN shows as dots clear of the line."""
    shown = [e for e in entries if e["values"]]
    if not shown:
        return False
    fig, ax = plt.subplots(figsize=(max(4.5, 1.3 * len(shown) + 2), 4), dpi=90)
    for i, e in enumerate(shown):
        colour = BASELINE_COLOUR if e["baseline"] else ("tab:green" if e.get("beats_baseline") else "tab:blue")
        offsets = [0.12 * ((j % 5) - 2) / 2 for j in range(len(e["values"]))]
        ax.scatter([i + o for o in offsets], e["values"], color=colour, s=28, alpha=0.8, zorder=3)
        ax.hlines(e["mean"], i - 0.25, i + 0.25, color=colour, lw=2, zorder=4)
        if e["ci95"]:
            ax.vlines(i + 0.3, *e["ci95"], color=colour, lw=1.2)
        if e["baseline"]:
            ax.axhline(e["mean"], color=BASELINE_COLOUR, ls="--", lw=0.8, zorder=1)
    ax.set_xticks(range(len(shown)), [e["label"].replace(", ", "\n") for e in shown], fontsize=7)
    ax.set(ylabel=f"{metric} per seed", title=title)
    fig.tight_layout()
    save_png(fig, path)
    return True


def side_by_side(pictures: list[tuple[str, str]], path: str) -> None:
    """PNG files next to each other, each with its caption."""
    fig, axes = plt.subplots(1, len(pictures), figsize=(4.2 * len(pictures), 4.6), dpi=90, squeeze=False)
    for ax, (caption, file) in zip(axes[0], pictures):
        ax.imshow(plt.imread(file))
        ax.set_title(caption, fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    save_png(fig, path)


def fmt(value) -> str:
    if isinstance(value, float):
        return "-" if not math.isfinite(value) else f"{value:.4g}"
    return "-" if value is None else str(value)
