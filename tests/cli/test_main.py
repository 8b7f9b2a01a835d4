import subprocess
import sys

import pytest

from transfercore.cli import SUBCOMMANDS, build_parser, main
from transfercore.cli.exitcodes import ExitCode


def test_every_subcommand_module_registers_its_parser():
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    # a module named a_b_cmd registers the command a-b
    assert {name.replace("_", "-") for name in SUBCOMMANDS} <= set(choices)


def test_project_errors_become_one_line_and_a_documented_exit_code(capsys):
    code = main(["copy", "nosuchdriver:///x", "/tmp/y"])
    assert code == ExitCode.FAILED
    err = capsys.readouterr().err
    assert err.startswith("transfercore: error: no transfercore driver named 'nosuchdriver'")
    assert "Traceback" not in err


def test_usage_errors_exit_2():
    with pytest.raises(SystemExit) as info:
        main(["copy"])
    assert info.value.code == ExitCode.USAGE


def test_the_module_runs_as_a_program():
    out = subprocess.run([sys.executable, "-m", "transfercore", "--version"], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("transfercore ")
