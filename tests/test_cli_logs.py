"""smart/cli.py's logging for every CLI: library messages reach the stderr of the moment (a caller
may have redirected it since the first CLI call, as pytest's capsys does), once each however many
CLI calls one process makes (the tests and notebooks call `main` again and again)."""
import logging

from smart.cli import run


def test_first_cli_call_under_one_stderr(capsys):
    assert run(lambda argv: 0, []) == 0


def test_messages_reach_the_current_stderr_once(capsys):
    for _ in range(3):
        assert run(lambda argv: 0, []) == 0
    logging.getLogger("tuning.example").info("a message")
    assert capsys.readouterr().err == "a message\n"
