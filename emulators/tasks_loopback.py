"""Run `gcloud-tasks-emulator` bound to loopback only.

The emulator hard-codes `[::]:PORT` (every interface) and has no host option. This
launcher, run with the tasks emulator's own virtualenv (.venv-tasks), rewrites that
one address to 127.0.0.1 before the gRPC server binds, then hands over to the
emulator's own command line: `python emulators/tasks_loopback.py start -p PORT ...`.
"""

from __future__ import annotations

import sys

import grpc._server  # the emulator's own dependency


def _loopback_only(original):  # type: ignore[no-untyped-def]
    def add_insecure_port(self, address: str) -> int:  # type: ignore[no-untyped-def]
        if address.startswith("[::]:") or address.startswith("0.0.0.0:"):
            address = "127.0.0.1:" + address.rsplit(":", 1)[1]
        return original(self, address)  # type: ignore[no-any-return]

    return add_insecure_port


grpc._server._Server.add_insecure_port = _loopback_only(grpc._server._Server.add_insecure_port)  # type: ignore[method-assign]

if __name__ == "__main__":
    from gcloud_tasks_emulator.__main__ import main

    sys.argv[0] = "gcloud-tasks-emulator"
    main()
