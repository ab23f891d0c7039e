"""One Cloud Function on a local port, as `functions-framework --target NAME` runs it,
with gunicorn's control socket turned off.

gunicorn 25.1+ opens a control socket (for `gunicornc`) at
`$XDG_RUNTIME_DIR/gunicorn.ctl` or `~/.gunicorn/gunicorn.ctl`: one path shared by every
function of every stack on the machine, so they fight over it and log errors. Nothing
here uses `gunicornc`; functions-framework's command line has no option for it, so
this runs the same two calls as its command line (`create_app`, then the gunicorn
server) with `control_socket_disable`. Older gunicorns, which have no such socket,
get no option.

    python -m emulators.function_server --target checkout --source functions/main.py \\
        --host 127.0.0.1 --port 9320
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any


def server_options() -> dict[str, object]:
    """gunicorn settings beyond functions-framework's defaults (empty if unknown)."""
    from gunicorn.config import KNOWN_SETTINGS

    if any(setting.name == "control_socket_disable" for setting in KNOWN_SETTINGS):
        return {"control_socket_disable": True}
    return {}


def gunicorn_application(target: str, source: str, host: str, port: int) -> Any:
    """The gunicorn application functions-framework would run, with our options."""
    from functions_framework import create_app
    from functions_framework._http import create_server  # what its own CLI calls

    server = create_server(create_app(target, source), False, **server_options())
    return server.server_class(server.app, host, port, server.debug, **server.options)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m emulators.function_server")
    parser.add_argument("--target", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    gunicorn_application(args.target, args.source, args.host, args.port).run()


if __name__ == "__main__":
    main()
