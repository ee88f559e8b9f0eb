"""Every command has help and appears in the README (the README stays true)."""

from __future__ import annotations

from pathlib import Path

import typer
from typer.testing import CliRunner

from edgeclf.cli import app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _commands(group, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out = []
    for name, cmd in group.commands.items():
        if hasattr(cmd, "commands"):      # a sub-group (e.g. `edgeclf data`)
            out += _commands(cmd, prefix + (name,))
        else:
            out.append(prefix + (name,))
    return out


def test_every_command_has_help_and_is_in_the_readme():
    commands = _commands(typer.main.get_command(app))
    assert len(commands) >= 11
    runner = CliRunner()
    for cmd in commands:
        result = runner.invoke(app, [*cmd, "--help"])
        assert result.exit_code == 0, (cmd, result.output)
        assert "Usage" in result.output
        assert f"edgeclf {' '.join(cmd)}" in README, f"README does not show `edgeclf {' '.join(cmd)}`"


def test_readme_has_the_two_setup_commands():
    assert 'pip install -e ".[train,dev]" && .venv/bin/edgeclf demo' in README
    assert 'pip install -e ".[train,dev]" && .venv/bin/python -m pytest' in README
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "pytest" in ci and '-e ".[train,dev]"' in ci
