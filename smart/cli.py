"""The contract every command line of the project keeps (`smart-train`, `smart-evaluate`,
`smart-generate`, `smart-pretrain`, `smart-study`, `smart-report`, ...): bad input is one line
`error: <key>: <why>` on stderr and exit code 2, raised as a `ConfigError` from anywhere below the
entry point; `--set key=value` means the same dotted key everywhere; library progress goes through
`logging`, which the entry point shows on stderr."""
from __future__ import annotations

import argparse
import atexit
import logging
import math
import os
import sys
import threading
from typing import Any, Callable, NoReturn, Sequence

from smart.config import ConfigError, RunConfig, load_yaml, parse_assignment


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors follow the one-line, exit-2 contract."""

    def error(self, message):
        raise ConfigError("usage", message)


def parser(prog: str, doc: str | None) -> Parser:
    """A parser whose description is the first paragraph of a module docstring."""
    return Parser(prog=prog, description=(doc or "").split("\n\n")[0].strip())


def add_set_option(p: argparse.ArgumentParser, example: str = "regularizer.weight=0.1") -> None:
    p.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override a dotted key, e.g. {example} (repeatable)")


def overrides(sets: Sequence[str]) -> dict[str, Any]:
    """`--set` values as {dotted key: value} (later ones win)."""
    return dict(parse_assignment(s) for s in sets)


def run_config(path: str, overrides: dict[str, Any]) -> RunConfig:
    """The run config in a YAML file — a run config, or a study file whose `config:` section is one —
    with dotted overrides."""
    doc = load_yaml(path)
    if doc is not None and not isinstance(doc, dict):
        raise ConfigError(path, f"must hold a mapping, got {type(doc).__name__}")
    if isinstance(doc, dict) and "name" in doc and "config" in doc:  # a study file
        doc = doc["config"]
    return RunConfig.from_dict(doc or {}, overrides)


def jsonable(metrics: dict) -> dict:
    """Metrics for JSON output: NaN and ±inf (which JSON lacks) become null."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in metrics.items()}


class _Stderr(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (a test's capture, a redirected stream)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


def show_logs(level: int = logging.INFO) -> None:
    """Library messages (`logging.getLogger("smart...")`, `"tuning..."`) on stderr, one per line."""
    if not any(getattr(h, "_smart_cli", False) for h in logging.getLogger("smart").handlers):
        handler = _Stderr()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._smart_cli = True  # type: ignore[attr-defined]
        for name in ("smart", "tuning"):
            lib = logging.getLogger(name)
            lib.setLevel(level)
            lib.addHandler(handler)
            lib.propagate = False


def report_error(exc: ConfigError) -> int:
    print(f"error: {exc}", file=sys.stderr)
    return 2


def run(main: Callable[[list[str]], int], argv: Sequence[str] | None = None) -> int:
    """Call `main(argv)`; a ConfigError anywhere inside becomes the one-line error and exit 2."""
    show_logs()
    try:
        return main(list(sys.argv[1:] if argv is None else argv))
    except ConfigError as exc:
        return report_error(exc)
    except BrokenPipeError:  # `... | head` closed the pipe: not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def exit_now(code: int) -> NoReturn:
    """End a finished command without the interpreter's teardown: the interpreter's own thread
    shutdown (idle thread pools told to stop, then every non-daemon thread joined), the atexit
    handlers (Ray's, logging's), the streams flushed, then `os._exit`. Garbage-collecting torch,
    Ray's core worker and MLflow's modules took ~3 s at the end of every study on 2 cores, with
    nothing left to write. Joining threads by hand instead hung on any idle ThreadPoolExecutor
    worker (they stop only when threading's shutdown hooks tell them to)."""
    threading._shutdown()  # what Py_FinalizeEx runs first; no public equivalent
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more to say
            pass
    os._exit(code)
