"""Every command is reachable and documented: ``--help`` of each works, ``mobexport --help`` lists them all."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from mobexport.cli import COMMANDS, MAIN_EXAMPLE, main, main_parser
from mobexport.errors import EXIT_STATUSES

EXPECTED_COMMANDS = ["export", "list", "inspect", "devices", "bench", "cluster", "regress", "profile", "passes", "train-fixture"]


def python(*args, **kwargs):
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, **kwargs)


def test_the_command_table_has_every_command():
    assert sorted(COMMANDS) == sorted(EXPECTED_COMMANDS)


@pytest.mark.parametrize("command", EXPECTED_COMMANDS)
def test_help_of_every_command(command, capsys):
    assert main([command, "--help"]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert captured.out.startswith(f"usage: mobexport {command}")
    for option in ("-v", "-q", "--debug"):  # one logging setup, honoured by every command
        assert option in captured.out


def test_regress_help_renders_its_percent_signs(capsys):
    """It crashed with "unsupported format character ')'" (a bare '10%)' in a help string)."""
    assert main(["regress", "--help"]) == 0
    assert "10%" in capsys.readouterr().out


def test_main_help_lists_every_command_with_purpose_example_and_exit_statuses():
    done = python("-m", "mobexport", "--help")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    out = done.stdout
    for name, command in COMMANDS.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        assert command.purpose in line
        assert f"e.g. {command.example}" in out
    assert MAIN_EXAMPLE in out
    assert "exit status:" in out
    for code, meaning in EXIT_STATUSES.items():
        assert f"{code}" in out and meaning in out


def test_main_help_does_not_import_torch():
    code = ("import sys; from mobexport.cli import main; rc = main(['--help']); "
            "assert rc == 0; assert 'torch' not in sys.modules, 'torch imported'")
    done = python("-c", code)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("argv", [["help", "bench"], ["bench", "-h"]])
def test_help_spellings(argv, capsys):
    assert main(argv) == 0
    assert "usage: mobexport bench" in capsys.readouterr().out


def test_bare_mobexport_prints_the_command_list(capsys):
    assert main([]) == 2  # nothing asked: a usage error, with the help to fix it
    assert "commands (COMMAND defaults to export" in capsys.readouterr().out


def test_export_help_shows_quantize_and_pass_choices(capsys):
    from mobexport.export.passes.registry import available_passes
    from mobexport.export.quantize.support import MODES

    assert main(["export", "--help"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "{" + ",".join(MODES) + "}" in out
    for pass_id in available_passes():
        assert pass_id in out
    assert "exit status:" in out


def test_export_is_the_default_command():
    """``mobexport --model X`` and ``mobexport export --model X`` parse the same and fail the same way."""
    a = python("-m", "mobexport", "--model", "nope", "--target", "onnx")
    b = python("-m", "mobexport", "export", "--model", "nope", "--target", "onnx")
    assert a.returncode == b.returncode == 2
    assert a.stderr == b.stderr and "unknown model 'nope'" in a.stderr


def test_unknown_command_suggests_the_close_one(capsys):
    assert main(["benhc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unknown command 'benhc'" in err and "'bench'" in err


def test_profile_keeps_its_module_entry_point():
    done = python("-m", "mobexport.benchmarks.profile", "--help")
    assert done.returncode == 0 and "usage: mobexport profile" in done.stdout


def test_passes_lists_every_registered_pass(capsys):
    from mobexport.export.passes.registry import _PASSES, available_passes

    assert main(["passes"]) == 0
    out = capsys.readouterr().out
    for pass_id in available_passes():
        line = next(line for line in out.splitlines() if pass_id in line)
        assert _PASSES[pass_id].description[:40] in line
    assert main(["passes", "--json"]) == 0
    import json

    rows = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in rows] == available_passes()


@pytest.mark.parametrize("flag, mobexport_level, torch_level", [
    ("-q", "ERROR", "ERROR"), ("-v", "INFO", "WARNING"), ("--debug", "DEBUG", "INFO")])
def test_verbosity_reaches_commands_that_had_no_logging(flag, mobexport_level, torch_level, capsys):
    import logging

    assert main(["devices", flag]) == 0
    assert logging.getLevelName(logging.getLogger("mobexport").level) == mobexport_level
    assert logging.getLevelName(logging.getLogger("torch").level) == torch_level
    main(["devices"])  # back to the default for the tests after this one
    capsys.readouterr()


def test_readme_command_list_is_the_help_one(capsys):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("```text\n", 1)[1].split("```", 1)[0]
    assert main(["--help"]) == 0
    help_lines = [line[2:] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert block.splitlines() == help_lines[:len(block.splitlines())]
    assert "mobexport --model mobile_former_294m --target coreml" in readme


def test_the_scripts_the_help_names_exist():
    import importlib.util

    from mobexport.cli import RESEARCH_SCRIPTS

    for package, scripts in RESEARCH_SCRIPTS.items():
        for script in scripts:
            assert importlib.util.find_spec(f"{package}.{script}") is not None, script
            assert f"python -m {package}.{{" in main_parser().epilog
