"""`python -m emulators.stripe_double [--port N] [--webhook-url URL ...] [--webhook-secret S]`.

Prints `stripe-double listening on http://127.0.0.1:PORT` once it accepts requests.
"""

from __future__ import annotations

import logging
import sys

from .app import bind
from .config import from_environment


def main(argv: list[str] | None = None) -> int:
    config = from_environment(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr
    )
    state, server = bind(config)
    print(f"stripe-double listening on http://127.0.0.1:{config.port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        state.scheduler.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
