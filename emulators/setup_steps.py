"""Set-up steps: run once the emulators, the Stripe double and maildev answer, before
the functions start (`make dev`, and end-to-end tests that start a `LocalStack`).

A step is a plain function `(StackInfo) -> Mapping[str, str]`. It may create things in
the running emulators (a Stripe product and price in the double, a sample release in
the storage emulator) and returns environment variables to add for the functions
(e.g. `{"STRIPE_PRICE_ID": "price_..."}`); later steps see earlier additions in
`info.env`. A variable the user sets in `.env` always wins over a step's value.

`StackInfo` gives `root` (repo), `project`, `urls` (service name -> base URL, e.g.
`urls["stripe_double"]`, `urls["storage"]`), `env` (what the functions will get,
including the local secrets) and `mode` ("dev" or "test").

To add a step: write it in your own module under emulators/ (import `StackInfo` from
`emulators.stack` only under TYPE_CHECKING, or at run time: no cycle, since the stack
(emulators/stack/launch.py) imports this module lazily), import it here and append it
to STEPS. Steps must be idempotent: `make dev` usually starts from empty emulators, but
with `KEEP_DATA=dir` Firestore and Storage hold what the last run saved. A step that
raises stops the stack with its message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from emulators.stack import StackInfo

SetupStep = Callable[["StackInfo"], Mapping[str, str]]

# In order. Append yours, e.g.:
#   from emulators.stripe_setup import create_catalog
#   STEPS.append(create_catalog)
STEPS: list[SetupStep] = []

# Purchase: the product and its one-time price in the Stripe double -> STRIPE_PRICE_ID.
from emulators.stripe_setup import create_catalog  # noqa: E402

STEPS.append(create_catalog)

from emulators.release_seed import seed_sample_release  # noqa: E402

STEPS.append(seed_sample_release)  # a sample release, so `make dev` downloads work

# Keep last: builds build/site from the final environment and the published release.
from emulators.storefront_site import build_site_step  # noqa: E402

STEPS.append(build_site_step)
