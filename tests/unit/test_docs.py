"""Docs that fall behind the code fail here: CLI commands and API routes in the README."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main
import yaml

from oncallm.api import create_app
from oncallm.cli import app as cli_app
from oncallm.config import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _commands(group: Any, prefix: str = "") -> list[str]:
    names = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            names += _commands(command, f"{prefix}{name} ")
        else:
            names.append(f"{prefix}{name}")
    return names


def test_every_cli_command_is_in_the_readme() -> None:
    commands = _commands(typer.main.get_command(cli_app))
    assert "db upgrade" in commands
    run_it = README.split("## Run it", 1)[1].split("##", 1)[0]
    for command in commands:
        first, _, rest = command.partition(" ")
        pattern = (
            rf"oncallm {first}\b"
            if not rest
            else rf"oncallm {first} {rest}\b|\| {first} {rest}\b|{first} {rest}\b"
        )
        assert re.search(pattern, run_it), f"`oncallm {command}` is not documented in README"


def test_every_api_route_is_in_the_readme() -> None:
    app = create_app(Settings())
    schema = app.openapi()
    for path, operations in schema["paths"].items():
        for method in operations:
            assert f"{method.upper()} {path}" in README, (
                f"{method.upper()} {path} is missing from the README's API table"
            )


def test_every_oncallm_configuration_example_in_the_readme_is_valid() -> None:
    # A YAML block whose keys are all sections of ours is an OncallM example (the others
    # are Alertmanager's); it must load as it is printed.
    sections = set(Settings.model_fields)
    examples = [
        block
        for text in re.findall(r"```yaml\n(.*?)```", README, flags=re.DOTALL)
        if isinstance(block := yaml.safe_load(text), dict) and set(block) <= sections
    ]
    assert {"kubernetes", "metrics", "llm"} <= {key for block in examples for key in block}
    for block in examples:
        Settings.model_validate(block)
