"""Wiring: the Flask app and a server bound to 127.0.0.1 that can run in a thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import BaseWSGIServer, make_server

from .api import api, unrecognized_url
from .config import Config
from .control import control
from .engine import StripeDouble
from .hosted import hosted

HOST = "127.0.0.1"


def create_app(state: StripeDouble) -> Flask:
    app = Flask(__name__)
    app.extensions["stripe_double"] = state
    app.register_blueprint(api)
    app.register_blueprint(hosted)
    app.register_blueprint(control)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        if request.path.startswith("/v1/") or request.path == "/v1":
            return unrecognized_url()
        response = error.get_response()
        return Response(
            f"{error.code} {error.name}",
            status=error.code or 500,
            mimetype="text/plain",
            headers={k: v for k, v in response.headers.items() if k == "Allow"},
        )

    return app


@dataclass
class RunningDouble:
    """A double serving on 127.0.0.1 in a background thread; `stop()` ends it."""

    state: StripeDouble
    server: BaseWSGIServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server.server_port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)
        self.state.scheduler.stop()


def bind(config: Config) -> tuple[StripeDouble, BaseWSGIServer]:
    """Binds the port (0 = any free one) and records the real port in the config."""
    state = StripeDouble(config)
    server = make_server(HOST, config.port, create_app(state), threaded=True)
    config.port = server.server_port
    return state, server


def start_in_thread(config: Config) -> RunningDouble:
    state, server = bind(config)
    thread = threading.Thread(
        target=server.serve_forever,
        kwargs={"poll_interval": 0.1},
        name="stripe-double-http",
        daemon=True,
    )
    thread.start()
    return RunningDouble(state, server, thread)
