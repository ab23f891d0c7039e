"""Every `commerce ...` command line shown in README.md and docs/ is true as written:
its subcommands and options exist, it passes no more arguments than the command takes
(README's table also gives every required one), and `--help` of it works."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from commerce.cli import app

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
INLINE = re.compile(r"`(commerce [^`]+)`")
FENCE = re.compile(r"^```")


@dataclass(frozen=True)
class Shown:
    where: str  # file:line
    line: str
    complete: bool  # a command line as such (README's table, code blocks), not prose


def shown_in(path: Path) -> list[Shown]:
    found: list[Shown] = []
    fenced = False
    name = str(path.relative_to(ROOT))
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if FENCE.match(raw.strip()):
            fenced = not fenced
            continue
        text = raw.replace("\\|", "|")  # a pipe inside a Markdown table cell
        if fenced:
            command = text.split("#", 1)[0].strip()
            if command.startswith("commerce "):
                found.append(Shown(f"{name}:{number}", command, complete=True))
            continue
        in_table = text.lstrip().startswith("|")
        for match in INLINE.finditer(text):
            complete = in_table and name == "README.md"
            found.append(Shown(f"{name}:{number}", match.group(1), complete=complete))
    return found


SHOWN = [shown for path in DOCUMENTS for shown in shown_in(path)]


def test_the_documents_show_commands_at_all() -> None:
    readme = [s for s in SHOWN if s.where.startswith("README.md") and s.complete]
    assert len(readme) >= 14  # one row per command in "Operating the shop"


def words(line: str) -> list[str]:
    """The words of a usage line: optional brackets, alternatives and `...` dropped."""
    plain = line.replace("[", " ").replace("]", " ")
    return [w.removesuffix("...") for w in plain.split() if w not in ("|", "...")]


def check(shown: Shown) -> list[str]:
    command: Any = typer.main.get_command(app)
    tokens = words(shown.line)
    assert tokens[0] == "commerce"
    path: list[str] = []
    rest = tokens[1:]
    while isinstance(command, TyperGroup) and rest and rest[0] in command.commands:
        path.append(rest[0])
        command = command.commands[rest.pop(0)]
    options = {opt: p for p in command.params for opt in (*p.opts, *p.secondary_opts)}
    positional = 0
    given: set[str] = set()
    while rest:
        word = rest.pop(0)
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            assert name in options or name == "--help", f"{shown.where}: no option {name}"
            given.add(name)
            option = options.get(name)
            if option is not None and not option.is_flag and "=" not in word and rest:
                rest.pop(0)  # its value
        else:
            positional += 1
    arguments = [p for p in command.params if p.param_type_name == "argument"]
    if isinstance(command, TyperGroup):
        assert positional == 0, f"{shown.where}: no subcommand {tokens[len(path) + 1]!r}"
    elif not any(a.nargs == -1 for a in arguments):
        assert positional <= len(arguments), f"{shown.where}: too many arguments"
    if shown.complete and not isinstance(command, TyperGroup):
        assert positional >= sum(1 for a in arguments if a.required), (
            f"{shown.where}: a required argument is missing"
        )
        for p in command.params:
            if p.param_type_name == "option" and p.required:
                assert given & set(p.opts), f"{shown.where}: {p.opts[0]} is required"
    return path


@pytest.mark.parametrize("shown", SHOWN, ids=[f"{s.where} {s.line}" for s in SHOWN])
def test_a_documented_command_line_exists_as_written(shown: Shown) -> None:
    path = check(shown)

    result = CliRunner().invoke(app, [*path, "--help"], prog_name="commerce")

    assert result.exit_code == 0, result.output
    assert f"Usage: commerce {' '.join(path)}".rstrip() in result.output
