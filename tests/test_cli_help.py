"""`gan-recipes --help` and each command's help: every word shown as written, flags without a type, no torch."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from gan_infogan_plugin.cli import app

COMMANDS = sorted(typer.main.get_command(app).commands)


def rendered_help(*command: str) -> str:
    """The help text as printed 200 columns wide, table borders removed and whitespace collapsed."""
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return " ".join(re.sub("[│╭╮╰╯─]", " ", result.output).split())


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_help_is_shown_as_written(command):
    shown = rendered_help(command)
    for param in typer.main.get_command(app).commands[command].params:
        if param.help:  # rich markup would eat "[data]" unless written "\[data]"
            assert " ".join(param.help.replace("\\[", "[").split()) in shown, param.name


def test_eval_help_names_the_data_table():
    assert "Set a key of the run's [data] table" in rendered_help("eval")


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_flags_show_no_type(command):
    shown = rendered_help(*([command] if command else []))
    # typer's own --help still reads "--help <bool>"; every flag of ours is bare.
    assert re.findall(r"(--[\w-]+) <bool>", shown) == ["--help"], shown


@pytest.mark.parametrize("args", [["--help"], ["list"]])
def test_help_and_list_load_no_torch(args):
    code = (
        "import sys\n"
        "from gan_infogan_plugin.cli import main\n"
        f"sys.argv = ['gan-recipes', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "print('torch loaded:', sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "torch loaded: []"
