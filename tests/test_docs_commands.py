"""The commands and links the README and docs/ show a user still exist: every `python -m MODULE` or
`python SCRIPT` they print names a module or file that answers `--help`, every `--flag` it passes is
one that CLI accepts, every study file and relative link they name is there. (What the commands do is
tested elsewhere; this catches a page that drifted from the code.)"""
import functools
import os
import re
import shlex
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs"))
                               if f.endswith(".md"))
NOT_OURS = {"pytest", "pip"}  # third-party modules the pages run


def _read(page: str) -> str:
    with open(os.path.join(ROOT, page), encoding="utf-8") as fh:
        return fh.read()


def commands(text: str) -> list[list[str]]:
    """The `python ...` commands of fenced shell blocks and of inline code spans, as token lists."""
    found = []
    for block in re.findall(r"```(?:bash|sh|console)?\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            found.append(line.split(" #")[0])
    found += re.findall(r"`([^`\n]*python [^`\n]*)`", text)
    out = []
    for cmd in found:
        for part in re.split(r"&&|\||;", cmd):
            words = part.split()
            if "python" in words:
                try:
                    tokens = shlex.split(" ".join(words[words.index("python"):]))
                except ValueError:
                    continue
                if len(tokens) > 1:
                    out.append(tokens)
    return out


def target(tokens: list[str]) -> tuple[str, ...] | None:
    """("-m", module) or (script,), or None for what is not a project CLI."""
    if tokens[1] == "-m":
        return None if tokens[2].split(".")[0] in NOT_OURS else ("-m", tokens[2])
    if tokens[1].endswith(".py"):
        return (tokens[1],)
    return None


@functools.lru_cache(maxsize=None)
def help_text(tgt: tuple[str, ...]) -> str:
    proc = subprocess.run([sys.executable, *tgt, "--help"], capture_output=True, text=True, cwd=ROOT,
                          timeout=300, env={**os.environ, "PYTHONPATH": ROOT})
    assert proc.returncode == 0, f"{' '.join(tgt)} --help failed: {proc.stderr[-1500:]}"
    return proc.stdout


def test_the_extractor_sees_blocks_continuations_and_inline_commands():
    text = ("```bash\npython -m smart.train a.yaml \\\n    --set x=1 --out o   # note\n```\n"
            "Run `python tuning/report.py runs/x` or `pip install -e . && python -m pytest -q`.")
    assert commands(text) == [["python", "-m", "smart.train", "a.yaml", "--set", "x=1", "--out", "o"],
                              ["python", "tuning/report.py", "runs/x"], ["python", "-m", "pytest", "-q"]]
    assert target(commands(text)[2]) is None and target(commands(text)[1]) == ("tuning/report.py",)


CASES = sorted({(page, " ".join(tokens)) for page in PAGES for tokens in commands(_read(page)) if target(tokens)})


@pytest.mark.slow
@pytest.mark.parametrize("page, command", CASES)
def test_documented_command_exists_with_its_flags(page, command):
    tokens = shlex.split(command)
    tgt = target(tokens)
    if tgt[0] != "-m":
        assert os.path.exists(os.path.join(ROOT, tgt[0])), f"{page}: {tgt[0]} does not exist"
    usage = help_text(tgt)
    flags = {t.split("=")[0] for t in tokens if t.startswith("--")}
    unknown = sorted(f for f in flags if not re.search(re.escape(f) + r"\b", usage))
    assert not unknown, f"{page}: `{command}` passes {unknown}, which `{' '.join(tgt)} --help` does not list"
    for path in (t for t in tokens if t.startswith("studies/")):
        assert os.path.exists(os.path.join(ROOT, path)), f"{page}: {path} does not exist"


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve(page):
    here = os.path.dirname(os.path.join(ROOT, page))
    for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", _read(page)):
        if "://" not in link:
            assert os.path.exists(os.path.join(here, link)), f"{page}: broken link {link}"
