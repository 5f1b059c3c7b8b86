"""The phase table (stylegan2-ada's shape): what each training iteration runs, how often, and with
which Adam ratio — pure configuration, read by the objective (smart.losses) and by
`smart.metrics.reported_metrics`.

    Dmain  every D step       adversarial D loss                      → loss_d
    Dreg   every r1_interval  R1 × r1_interval, fused into Dmain      → loss_r1
    Gmain  every G step       adversarial G loss (+ aux_weight · aux) → loss_g (loss_aux)
    Greg   every k G steps    SMaRt; joint: fused into Gmain,         → loss_smart
                              separate: its own backward and step, on fresh latents

A fused regularization phase adds its loss to its main phase's (one backward, one step) and leaves
Adam as it is; a separate one takes its own step, and its network's Adam runs with the ratio
r = k/(k+1) (lr·r, β^r) so that the two steps together move as one step would (Karras et al. 2020).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Phase:
    name: str                 # Dmain, Dreg, Gmain, Greg
    terms: tuple[str, ...]    # the statistics its loss terms report
    interval: int = 1         # runs on the network's steps s with s % interval == 0
    ratio: float = 1.0        # Adam ratio of the phase's network
    fused: bool = False       # a regularization phase whose loss joins its main phase's
    active: bool = True       # off when the term's weight is 0 (its statistic is then NaN)
    start_kimg: float = 0.0   # off before this many kimg

    def due(self, step: int, kimg: float = 0.0) -> bool:
        return self.active and kimg >= self.start_kimg and step % self.interval == 0


def phase_table(cfg) -> dict[str, Phase]:
    """The four phases of a run config, by name."""
    o, reg = cfg.optim, cfg.regularizer
    separate = reg.weight > 0 and reg.phase == "separate"
    g_ratio = reg.interval / (reg.interval + 1) if separate else 1.0
    aux = ("loss_aux",) if cfg.generator.has_aux_loss else ()
    phases = (
        Phase("Dmain", ("loss_d",)),
        Phase("Dreg", ("loss_r1",), interval=o.r1_interval, fused=True, active=o.r1_gamma > 0),
        Phase("Gmain", ("loss_g", *aux), ratio=g_ratio),
        Phase("Greg", ("loss_smart",), interval=reg.interval, ratio=g_ratio, fused=not separate,
              active=reg.weight > 0, start_kimg=reg.start_kimg),
    )
    return {p.name: p for p in phases}


def loss_names(cfg) -> list[str]:
    """Every loss statistic a run of `cfg` reports at an eval, in phase order."""
    return [term for phase in phase_table(cfg).values() for term in phase.terms]
