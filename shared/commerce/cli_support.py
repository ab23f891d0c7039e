"""What every `commerce` command shares: where it talks to, exit codes, output, help.

- **Where.** With ENVIRONMENT or GCP_PROJECT set in the shell, the environment is the
  configuration (Google Cloud with default credentials, or anything else). With neither
  set, the CLI looks for a running `make dev` stack (`.local/stack.env` in the current
  directory or an ancestor, then in the checkout the package is installed from) and
  uses what the local functions use. Each command says on stderr which environment and
  project it talks to before it does anything.
- **Production.** A command that changes something asks first in production (`--yes`
  skips the question).
- **Exit codes** (`ExitCode`, also in README.md): a configuration problem is one line on
  stderr, never a traceback.
- **Help.** Typer 0.29 prints a type label (`<str>`, `<bool>`) after every parameter,
  flags and `--help` included; the command classes here show a value placeholder named
  after the option (`--key KEY`) and nothing after a flag.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from commerce.errors import CommerceError, ConfigurationError
from commerce.settings import Environment

if TYPE_CHECKING:
    from rich.table import Table

    from commerce.bootstrap import Container


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the shop refused, something failed, "no" at a confirmation, closed pipe
    USAGE = 2  # wrong options or arguments
    CONFIGURATION = 3  # no environment configured / local stack not running / bad setting
    UNREACHABLE = 4  # a backing service (Firestore, Storage, Stripe, ...) did not answer


# ----------------------------------------------------------------------- environment


def _configure_from_local_stack() -> str:
    """Put a running local stack's settings into the environment unless the shell
    configures one. Returns where the configuration comes from (for the banner)."""
    from commerce import local_stack

    if os.environ.get("ENVIRONMENT") or os.environ.get("GCP_PROJECT"):
        return "from the environment"
    root = local_stack.find_root(local_stack.candidate_roots(Path.cwd(), Path(__file__)))
    if root is None:
        raise ConfigurationError(
            "no environment configured: set ENVIRONMENT and GCP_PROJECT (see .env.example), "
            "or run `make dev` in a checkout and call commerce from there"
        )
    stack = local_stack.load(root)
    os.environ.update(stack.values)
    return f"local stack {stack.addresses_file}"


def container() -> Container:
    """The container the command works with; says on stderr where it points."""
    from commerce import bootstrap

    source = "installed"
    if not bootstrap.has_container():
        source = _configure_from_local_stack()
    built = bootstrap.get_container()
    _log_to_stderr()
    settings = built.settings
    production = settings.environment is Environment.PRODUCTION
    typer.secho(
        f"commerce: environment {settings.environment.value}, project {settings.gcp_project}"
        f" ({source})",
        err=True,
        fg="red" if production else None,
        bold=production,
    )
    return built


def _log_to_stderr() -> None:
    """Building the container points the log records at stdout (how a function reaches
    Cloud Logging); a command's stdout is its output (`--json` is JSON only), so its
    records (the services', the stripe library's requests) go to stderr."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stdout:
            handler.setStream(sys.stderr)


def confirm(built: Container, question: str, *, yes: bool, always: bool = False) -> None:
    """Ask before a change in production (or always, for destructive support actions)."""
    production = built.settings.environment is Environment.PRODUCTION
    if yes or not (always or production):
        return
    where = f" in PRODUCTION (project {built.settings.gcp_project})" if production else ""
    typer.confirm(f"{question}{where}?", abort=True)


Yes = typer.Option("--yes", help="Do not ask for confirmation.")


# ---------------------------------------------------------------------------- output


def fail(error: CommerceError) -> NoReturn:
    """One line for an error of the shop; configuration problems get their own code."""
    code = ExitCode.CONFIGURATION if isinstance(error, ConfigurationError) else ExitCode.FAILED
    typer.secho(f"error: {error.detail} ({error.code})", err=True, fg="red")
    raise typer.Exit(code=code)


def _json_default(value: object) -> object:
    from datetime import datetime

    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=_json_default))


def table(*columns: str, title: str | None = None) -> Table:
    from rich.table import Table

    grid = Table(title=title, title_justify="left", header_style="bold")
    for column in columns:
        grid.add_column(column, overflow="fold")
    return grid


PIPE_WIDTH = 400


def print_table(grid: Table) -> None:
    from rich.console import Console

    # A terminal gets its width; a pipe or file gets whole rows (a table only takes
    # the width it needs), so ids are never folded for grep.
    console = Console(file=sys.stdout)
    if not console.is_terminal:
        console = Console(file=sys.stdout, width=PIPE_WIDTH)
    console.print(grid)


def text(value: object) -> Any:
    """A table cell shown as written (no Rich markup interpretation)."""
    from rich.text import Text

    return Text("" if value is None else str(value))


# ------------------------------------------------------------------- help and errors


def _placeholder(param: TyperOption) -> str:
    name = next((opt for opt in param.opts if opt.startswith("--")), param.opts[0])
    return name.lstrip("-").replace("-", "_").upper()


class _Option(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        if self.is_flag or self.count:
            return None  # a flag takes no value
        return self.metavar or _placeholder(self)


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the argument's name (the metavar) is the placeholder already


def _tidy(params: Sequence[Any]) -> None:
    for param in params:
        if type(param) is TyperOption:
            param.__class__ = _Option
        elif type(param) is TyperArgument:
            param.__class__ = _Argument
            if param.metavar is None and param.name:
                param.metavar = param.name.upper()


class OperatorCommand(TyperCommand):
    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # includes --help, added late by Typer
        _tidy(params)
        return params


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text if len(text) <= 300 else text[:297] + "..."


def _handled(error: Exception) -> tuple[ExitCode, str] | None:
    """Known failures of the outside world, as (exit code, one line); None = a bug."""
    from google.api_core import exceptions as api_errors
    from google.auth import exceptions as auth_errors

    if isinstance(error, BrokenPipeError):
        # Our own stdout's reader went away (`| head`), not a service: Typer (for
        # typer.echo) and Rich (tables, help) end quietly with exit code 1.
        return None
    if isinstance(error, ConfigurationError):
        return ExitCode.CONFIGURATION, f"configuration: {error.detail}"
    if isinstance(error, auth_errors.DefaultCredentialsError):
        return ExitCode.CONFIGURATION, f"configuration: no Google credentials ({_one_line(error)})"
    if isinstance(error, api_errors.PermissionDenied | api_errors.Unauthenticated):
        return ExitCode.CONFIGURATION, f"configuration: access denied ({_one_line(error)})"
    if isinstance(error, api_errors.GoogleAPIError | ConnectionError | TimeoutError):
        return ExitCode.UNREACHABLE, f"unreachable: {_one_line(error)}"
    if isinstance(error, CommerceError):
        return ExitCode.FAILED, f"{error.detail} ({error.code})"
    return None


class OperatorGroup(TyperGroup):
    """The root group: every command's failures end as one line and an exit code."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # --help and the completion options included
        _tidy(params)
        return params

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as error:  # re-raised below unless it is a known failure
            handled = _handled(error)
            if handled is None:
                raise
            code, line = handled
            typer.secho(f"error: {line}", err=True, fg="red")
            raise typer.Exit(code=code) from None


class OperatorTyper(typer.Typer):
    """A Typer app whose commands and groups use the classes above."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", OperatorGroup)
        super().__init__(**kwargs)

    def command(self, *args: Any, **kwargs: Any) -> Callable[[Any], Any]:
        kwargs.setdefault("cls", OperatorCommand)
        return super().command(*args, **kwargs)
