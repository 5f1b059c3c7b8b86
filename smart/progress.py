"""Progress bars for long work (reference statistics, classifier training, score pretraining, a
training run): tqdm on stderr, shown only to a person watching — off when stderr is not a terminal
(Ray workers, pipes, tests) or when `smart` logging is quieter than INFO (the CLIs turn it on)."""
from __future__ import annotations

import logging
import sys

from tqdm import tqdm


def enabled() -> bool:
    return sys.stderr.isatty() and logging.getLogger("smart").isEnabledFor(logging.INFO)


def bar(total: float, desc: str, unit: str = "step") -> tqdm:
    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, disable=not enabled(), leave=False,
                dynamic_ncols=True)
