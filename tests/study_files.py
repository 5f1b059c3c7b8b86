"""Small study files for the study tests (tiny trials: a few seconds each)."""
import copy

import yaml

TINY_STUDY = {
    "name": "tiny",
    "config": {
        "data": {"kind": "ring8"},
        "training": {"kimg": 16.0, "eval_every_kimg": 4.0},
        "eval": {"num_samples": 1000, "metrics": ["fid", "modes"]},
    },
    "objective": {"metric": "fid", "mode": "min"},
    "search": {
        "regularizer.weight": {"type": "loguniform", "low": 1e-3, "high": 1.0},
        "regularizer.interval": {"type": "choice", "values": [1, 4, 16]},
        "regularizer.t_min": {"type": "range", "upper": "regularizer.t_max", "low": 0, "high": 200,
                              "min_width": 5},
    },
    "sampler": {"kind": "tpe", "seed": 3, "n_startup_trials": 2,
                "points_to_evaluate": [{"regularizer.weight": 0.0}]},
    "budget": {"num_samples": 4, "max_concurrent": 2},
    "scheduler": {"kind": "asha", "grace_period": 8.0, "reduction_factor": 2.0},
}


def write_study(path, changes=None, drop=()):
    """Write TINY_STUDY with `changes` ({(section, key, ...): value}) applied and `drop` keys removed."""
    doc = copy.deepcopy(TINY_STUDY)
    for where, value in (changes or {}).items():
        node = doc
        for part in where[:-1]:
            node = node.setdefault(part, {})
        node[where[-1]] = value
    for where in drop:
        node = doc
        for part in where[:-1]:
            node = node[part]
        del node[where[-1]]
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return str(path)
