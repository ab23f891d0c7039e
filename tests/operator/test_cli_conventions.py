"""Conventions every `commerce` command keeps: help placeholders, where it talks to,
and a question before it changes production."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from commerce.bootstrap import Container, use_container
from commerce.cli import app
from commerce.secrets import EnvSecrets
from commerce.settings import Settings

TYPE_LABEL = re.compile(r"<(str|bool|int|float|Path|path|text|int range|list\[[^\]]*\])>")


def command_paths(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    command = command or typer.main.get_command(app)
    yield path
    if isinstance(command, TyperGroup):
        for name, sub in command.commands.items():
            yield from command_paths(sub, (*path, name))


PATHS = list(command_paths())


def help_of(*path: str) -> str:
    result = CliRunner().invoke(
        app, [*path, "--help"], prog_name="commerce", env={"COLUMNS": "120"}
    )
    assert result.exit_code == 0, result.output
    return result.output


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) or "commerce" for p in PATHS])
def test_help_shows_no_type_labels(path: tuple[str, ...]) -> None:
    assert TYPE_LABEL.findall(help_of(*path)) == []


def test_flags_take_no_placeholder_and_values_are_named_after_their_option() -> None:
    lookup = help_of("license", "lookup")
    reissue = help_of("license", "reissue")
    reconcile = help_of("reconcile")

    assert re.search(r"--key\s+KEY\s+A key the buyer sent in", lookup)
    assert re.search(r"--email\s+EMAIL\s+The buyer's address", lookup)
    assert re.search(r"--json\s+Print JSON", lookup)
    assert re.search(r"--yes\s+Do not ask", reissue)
    assert re.search(r"--help\s+Show this message", reissue)
    assert "Usage: commerce license reissue [OPTIONS] {LICENSE_ID}" in reissue
    assert re.search(r"--days\s+N \[1<=x<=30\]", reconcile)


# -- production: say so, and ask -----------------------------------------------------------


class RecordingPublisher:
    def __init__(self) -> None:
        self.yanked: list[str] = []

    def yank(self, version: str) -> Any:
        self.yanked.append(version)
        return type("Yanked", (), {"version": version})()


def installed(environment: str) -> RecordingPublisher:
    cloud = environment != "local"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        environment=environment,
        gcp_project=f"genx-{environment}",
        storefront_url="https://shop.example.com",
        public_base_url="https://shop.example.com",
        artifacts_bucket="genx-artifacts",
        secrets_backend="secret-manager" if cloud else "env",
        url_signing_key_file="",
        stripe_api_base="",
    )
    container = Container(settings, secrets=EnvSecrets({}))
    publisher = RecordingPublisher()
    container.__dict__["publisher"] = publisher
    use_container(container)
    return publisher


@pytest.fixture(autouse=True)
def _no_container_left() -> Iterator[None]:
    yield
    use_container(None)


def yank(*extra: str, answer: str | None = None) -> Any:
    return CliRunner().invoke(app, ["release", "yank", "1.0.0", *extra], input=answer)


def test_a_change_in_production_is_not_made_when_the_answer_is_no() -> None:
    publisher = installed("production")

    result = yank(answer="n\n")

    assert result.exit_code == 1
    assert "Yank release 1.0.0 in PRODUCTION (project genx-production)?" in result.output
    assert publisher.yanked == []


def test_a_change_in_production_is_made_after_yes_or_with_the_yes_option() -> None:
    publisher = installed("production")

    asked = yank(answer="y\n")
    told = yank("--yes")

    assert asked.exit_code == 0, asked.output
    assert told.exit_code == 0, told.output
    assert "PRODUCTION" not in told.output
    assert publisher.yanked == ["1.0.0", "1.0.0"]
    assert told.stderr.startswith("commerce: environment production, project genx-production")


@pytest.mark.parametrize("environment", ["local", "staging"])
def test_outside_production_the_change_is_made_without_a_question(environment: str) -> None:
    publisher = installed(environment)

    result = yank()

    assert result.exit_code == 0, result.output
    assert "?" not in result.output
    assert publisher.yanked == ["1.0.0"]
    assert f"commerce: environment {environment}, project genx-{environment}" in result.stderr
