"""The `commerce` command (installed with the package): operator tools by feature.

Each feature registers its own Typer group here with one line; the commands live in
the feature's package and import their services lazily. Where the commands talk to,
exit codes and help conventions: `commerce.cli_support`.
"""

from __future__ import annotations

from commerce.cli_support import OperatorTyper
from commerce.delivery.cli import emails_app, release_app
from commerce.licensing.cli import license_app
from commerce.purchase.cli import fraud_cleared, orders_app, reconcile
from commerce.rotation_cli import keys_app

app = OperatorTyper(
    help=(
        "GENX commerce operator tools. Without ENVIRONMENT/GCP_PROJECT in the shell they "
        "talk to the running `make dev` stack; exit codes: 0 ok, 1 failed, 2 usage, "
        "3 configuration, 4 a service did not answer."
    ),
    no_args_is_help=True,
)

app.add_typer(release_app, name="release")
app.add_typer(emails_app, name="emails")
app.add_typer(license_app, name="license")
app.add_typer(keys_app, name="keys")
app.add_typer(orders_app, name="orders")
app.command("reconcile")(reconcile)
app.command("fraud-cleared")(fraud_cleared)
