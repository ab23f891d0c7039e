"""The import structure every function's cold start relies on, seen from a fresh
interpreter (docs/performance.md, "Cold start").

All nine functions deploy the same main.py with a different entry point, so whatever
main.py imports at load time, every function pays before its first answer; the
composition root imports each service and client where it is first used instead.
What the functions import must also be what the deployed bundle holds: a package that
only the development environment has (httpx, a dev tool nothing here used) was picked
up by `import stripe` as an optional transport and cost the Stripe functions about
35 ms of CPU locally that the cloud never pays, so the benchmark measured the wrong
thing. The delivery functions' real first requests are checked the same way, against
the emulators, in tests/delivery/test_cold_start_imports.py.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from infra import lock

ROOT = Path(__file__).resolve().parents[2]
MAIN = ROOT / "functions" / "main.py"

# What no function may load before its first request reaches it: client libraries,
# the address validator's patterns, the domain models and the feature services (each
# is loaded by the requests that use it).
NOT_AT_LOAD_TIME = (
    "stripe",
    "sendgrid",
    "email_validator",
    "google.cloud.firestore",
    "google.cloud.storage",
    "google.cloud.tasks_v2",
    "google.cloud.secretmanager",
    "commerce.domain.models",
    "commerce.repositories",
    "commerce.purchase.gateway",
    "commerce.delivery.download",
    "commerce.delivery.email_worker",
    "commerce.licensing.service",
    "commerce.storefront.resend",
)

_LOADED = """
import json, sys
watched = sys.argv[1].split(",")
for line in sys.stdin.read().splitlines():
    exec(line)
print(json.dumps([name for name in watched if name in sys.modules]))
"""


def _loaded_after(code: str, watched: tuple[str, ...]) -> list[str]:
    """Which of `watched` are in sys.modules after a fresh interpreter runs `code`."""
    loaded: list[str] = _fresh_interpreter([_LOADED, ",".join(watched)], code)
    return loaded


def _fresh_interpreter(args: list[str], stdin: str) -> Any:
    """What a fresh interpreter running `python -c *args` on `stdin` prints last, as JSON."""
    done = subprocess.run(
        [sys.executable, "-c", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_loading_the_functions_source_for_an_entry_point_loads_no_client_model_or_service() -> None:
    loaded = _loaded_after(
        "from functions_framework import create_app\n"
        f"create_app('download', {str(MAIN)!r})\n"
        "import main\n",  # the module functions-framework loaded (its name is main)
        (*NOT_AT_LOAD_TIME, "main"),
    )

    assert loaded == ["main"]


def test_the_domain_models_and_repositories_load_without_the_address_validator() -> None:
    before = _loaded_after(
        "import commerce.domain.models, commerce.repositories, commerce.ratelimit",
        ("email_validator", "commerce.domain.models"),
    )
    after_a_check = _loaded_after(
        "from commerce.domain.models import mask_email\nmask_email('jane@example.com')",
        ("email_validator",),
    )

    assert before == ["commerce.domain.models"]
    assert after_a_check == ["email_validator"]  # loaded where an address is checked


def test_the_functions_models_read_no_distributions_entry_points() -> None:
    """main.py turns pydantic's plugin search off (PYDANTIC_DISABLE_PLUGINS): otherwise
    the first model a function defines reads every installed distribution's entry
    points, about 3 ms of its cold start."""
    calls: int = _fresh_interpreter(
        [
            "import importlib.metadata as md, json, sys\n"
            "calls = []\n"
            "real = md.entry_points\n"
            "md.entry_points = lambda *a, **k: calls.append(1) or real(*a, **k)\n"
            "exec(sys.stdin.read())\n"
            "print(json.dumps(len(calls)))\n"
        ],
        "from functions_framework import create_app\n"
        f"create_app('order_status', {str(MAIN)!r})\n"
        "from pydantic import BaseModel\n"
        "class Probe(BaseModel):\n"
        "    n: int\n"
        "Probe(n=1)\n",
    )

    assert calls == 0


_COLLECTOR = """
import gc, json, sys
states = []
for line in sys.stdin.read().splitlines():
    if line == "STATE":
        states.append([gc.isenabled(), gc.get_freeze_count() > 0])
    else:
        exec(line)
print(json.dumps(states))
"""


def test_the_collector_is_off_while_an_instance_loads_and_on_after_its_first_answer() -> None:
    """commerce.startup: main.py turns the cyclic collector off; the first answer
    (here a 405, which needs no backend) freezes what loading left and turns it on."""
    states = _fresh_interpreter(
        [_COLLECTOR],
        "STATE\n"
        "from functions_framework import create_app\n"
        f"client = create_app('stripe_webhook', {str(MAIN)!r}).test_client()\n"
        "STATE\n"
        "assert client.get('/').status_code == 405\n"
        "STATE\n"
        "assert client.get('/').status_code == 405\n"
        "STATE\n",
    )

    assert states == [[True, False], [False, False], [True, True], [True, True]]


def test_the_collector_stays_off_when_something_else_turned_it_off() -> None:
    states = _fresh_interpreter(
        [_COLLECTOR],
        "gc.disable()\nfrom commerce import startup\nstartup.begin()\nstartup.resume()\nSTATE\n",
    )

    assert states == [[False, False]]


_FILES = """
import json, sys, sysconfig
at_start = set(sys.modules)  # the interpreter's own start-up (site hooks), not ours
for line in sys.stdin.read().splitlines():
    exec(line)
site = (sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"])
print(json.dumps(sorted({
    module.__file__ for name, module in list(sys.modules.items())
    if name not in at_start
    and getattr(module, "__file__", None) and module.__file__.startswith(site)
})))
"""
# Each function's path, as far as it loads without a backend: main.py, every feature
# service the composition root builds, and the clients with the parts they load on
# first use (Stripe's client and its services, Firestore's GAPIC layer).
_FUNCTION_PATHS = f"""\
from functions_framework import create_app; create_app('checkout', {str(MAIN)!r})
import commerce.purchase.checkout, commerce.purchase.webhooks, commerce.purchase.reconciliation
import commerce.delivery.download, commerce.delivery.email_worker, commerce.delivery.mailers
import commerce.storefront.order_status, commerce.storefront.resend
import commerce.licensing.endpoints, commerce.licensing.service
import commerce.adapters.tasks_queue, commerce.adapters.artifacts
import commerce.repositories.unit_of_work, commerce.secrets
import stripe; stripe.StripeClient('sk_test_probe').v1.checkout.sessions
import sendgrid, email_validator, jinja2
import google.cloud.firestore_v1.services.firestore.client, google.cloud.storage
import google.cloud.tasks_v2, google.cloud.secretmanager
"""


def _distribution_of_each_file() -> dict[str, str]:
    owners: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        for file in dist.files or ():
            owners[str(file.locate())] = lock.canonical(dist.metadata["Name"])
    return owners


def test_the_functions_load_only_packages_the_deployed_bundle_holds() -> None:
    files: list[str] = _fresh_interpreter([_FILES], _FUNCTION_PATHS)
    owners = _distribution_of_each_file()
    deployed = set(lock.parse_lock((ROOT / lock.LOCK).read_text(encoding="utf-8")))

    loaded = {owners.get(file, f"(no distribution: {file})") for file in files}

    assert len(loaded) > 20  # the probe saw the clients' packages
    assert {"stripe", "google-cloud-firestore", "pydantic"} <= loaded
    # A package here that the lock lacks is a development-only install that a library
    # imports when present: remove it from the virtualenv (`.venv/bin/pip uninstall`)
    # and from requirements-dev.txt, or the benchmarks measure what the cloud never runs.
    assert sorted(loaded - deployed) == []
