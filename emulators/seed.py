"""`make seed`: realistic orders in the running local stack's Firestore emulator.

Writes one order in each interesting state (fulfilled, pending, paid, failed, refunded,
disputed) with its customer, license, download grant and e-mail job, built by the same
factories the tests use (tests/support/factories.py) and written through the
`commerce.repositories`. Keys and links derive from `.local/secrets.env`, so the seeded
license validates and the seeded link downloads through the local functions. Seeding
again overwrites the same documents (ids are derived).

Refuses to run unless a local stack is up: it only ever writes to the emulator.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from emulators.local_secrets import read_env_file
from emulators.stack import REPO_ROOT, read_state


def main(root: Path = REPO_ROOT) -> int:
    local_dir = root / ".local"
    state = read_state(local_dir)
    env = (state or {}).get("env", {})
    host = env.get("FIRESTORE_EMULATOR_HOST")
    project = env.get("GCP_PROJECT", "")
    if not host:
        print("The local stack is not running: start it with `make dev` first.", file=sys.stderr)
        return 1
    if not project.startswith("demo-"):
        print(f"Refusing to seed project {project!r}: not a demo- project.", file=sys.stderr)
        return 1
    os.environ["FIRESTORE_EMULATOR_HOST"] = host

    from commerce.grants import download_link
    from commerce.repositories.base import new_firestore_client
    from commerce.repositories.collections import (
        CustomerRepository,
        DownloadTokenRepository,
        EmailJobRepository,
        LicenseRepository,
        OrderRepository,
    )
    from tests.support import factories

    secrets = {**read_env_file(local_dir / "secrets.env"), **read_env_file(root / ".env")}
    keys = factories.key_service(secrets, env.get("LICENSE_KEY_PREFIX", "GENX"))
    purchases = factories.sample_purchases(keys, datetime.now(UTC))

    db = new_firestore_client(project)
    customers, orders = CustomerRepository(db), OrderRepository(db)
    licenses, grants, jobs = (
        LicenseRepository(db),
        DownloadTokenRepository(db),
        EmailJobRepository(db),
    )
    for item in purchases:
        customers.put(item.customer)
        orders.put(item.order)
        if item.license is not None:
            licenses.put(item.license)
        for grant in item.grants:
            grants.put(grant)
        for job in item.email_jobs:
            jobs.put(job)
    db.close()

    print(f"seeded {len(purchases)} orders into Firestore {host} (project {project}):")
    base_url = env.get("PUBLIC_BASE_URL", "")
    for item in purchases:
        print(f"  {item.order.state.value:<10} {item.order.id}  {item.customer.email}")
        if item.order.state.value == "fulfilled" and item.key and item.tokens:
            # Local demo data only: these derive from the throw-away .local secrets.
            print(f"             license key   {item.key}")
            print(f"             download link {download_link(base_url, item.tokens[0])}")
    return 0


if __name__ == "__main__":
    from emulators.closed_stdout import guard_stdout

    guard_stdout()  # `make seed | head`: the rest of the listing is dropped, no traceback
    sys.exit(main())
