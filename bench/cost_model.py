"""Google Cloud cost per 1,000 purchases, redemptions and validations, from the
operations `bench/launch_bench.py` counted in the function processes and the published
list prices below (USD, looked up 2026-12-01 in the pages named; no free tier applied:
it is a monthly allowance, not a per-request price).

Counted by the benchmark: Firestore document reads (documents asked for by batch gets,
found or not, and documents returned by queries, a query with no result billed as one
read), writes and deletes; Cloud Tasks task creations; each function's CPU seconds per
request and the requests they served. Not counted but implied by the design, and stated
as such: one Cloud Tasks push delivery per task created, one Cloud Storage object GET
(Class B) per redemption (the buyer follows the 302 to the signed URL once) and the
artifact's bytes to the internet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Price:
    usd: float
    per: float  # units the price is for
    what: str
    source: str


PRICES = {
    "firestore_read": Price(
        0.03,
        100_000,
        "Firestore document read (Standard edition)",
        "firebase.google.com/docs/firestore/standard-edition (us-central1 as shown there)",
    ),
    "firestore_write": Price(
        0.09,
        100_000,
        "Firestore document write",
        "same page",
    ),
    "firestore_delete": Price(
        0.01,
        100_000,
        "Firestore document delete",
        "same page",
    ),
    "invocation": Price(
        0.40,
        1_000_000,
        "Cloud Run functions request (request-based billing)",
        "cloud.google.com/run/pricing (Tier 1 regions, europe-west1 is Tier 1)",
    ),
    "vcpu_second": Price(
        0.000024,
        1,
        "vCPU-second (CPU allocated during requests only)",
        "same page",
    ),
    "gib_second": Price(0.0000025, 1, "GiB-second of memory", "same page"),
    "tasks_operation": Price(
        0.40,
        1_000_000,
        "Cloud Tasks billable operation (API call or push attempt)",
        "cloud.google.com/tasks/pricing",
    ),
    "storage_class_b": Price(
        0.0004,
        1_000,
        "Cloud Storage Class B operation (object GET), Standard, regional",
        "cloud.google.com/storage/pricing-examples",
    ),
    "egress_gib": Price(
        0.12,
        1,
        "data transfer out to the internet per GiB (Premium tier, first tier)",
        "cloud.google.com/storage/pricing-examples",
    ),
}

# Memory of each function's instance (infra/terraform/modules/shop/locals.tf), GiB.
MEMORY_GIB = {
    "stripe_webhook": 0.5,
    "send_email": 0.25,
    "email_sweeper": 0.25,
    "download": 0.25,
    "license_api": 0.25,
}
ARTIFACT_MIB = 50.0  # ASSUMED size of the downloaded file; the sample release is tiny

# Every count the benchmark prints per operation, with its label and the decimals it is
# printed with. The cost table is computed from these printed figures (`printed`), so
# the counts in the cost table are exactly those the benchmark prints: every count a
# cost line uses must be a row here (tests/unit/test_cost_model.py holds both to it).
ROWS = (
    ("firestore.billed_reads", "Firestore reads (billed)", 2),
    ("firestore.writes", "Firestore writes", 2),
    ("firestore.deletes", "Firestore deletes", 2),
    ("firestore.queries", "Firestore queries", 2),
    ("firestore.commits", "Firestore commits", 2),
    ("firestore.transactions", "transactions begun", 2),
    ("firestore.rollbacks", "rollbacks", 2),
    ("tasks.CreateTask", "Cloud Tasks tasks created", 2),
    ("requests", "HTTP requests served", 2),
    ("cpu_seconds", "CPU seconds in the function processes", 4),
    ("memory_gib_seconds", "GiB-seconds (CPU seconds x the function's memory)", 5),
)


def printed(units: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """The per-operation counts as the operations table prints them (rounded to its
    decimals; counts it does not print dropped): what the cost table is computed from."""
    return {
        kind: {key: round(unit[key], digits) for key, _, digits in ROWS if unit.get(key)}
        for kind, unit in units.items()
    }


def operations_table(units: Mapping[str, Mapping[str, float]]) -> str:
    shown = printed(units)
    kinds = list(shown)
    lines = [
        "| per operation | " + " | ".join(kinds) + " |",
        "|---|" + "---:|" * len(kinds),
    ]
    for key, label, digits in ROWS:
        values = [shown[kind].get(key, 0.0) for kind in kinds]
        if not any(values):
            continue
        lines.append(f"| {label} | " + " | ".join(f"{v:.{digits}f}" for v in values) + " |")
    return "\n".join(lines)


def cost_per_thousand(kind: str, unit: Mapping[str, float]) -> dict[str, float]:
    """USD per 1,000 operations of `kind`, by line."""

    def usd(price: str, quantity: float) -> float:
        p = PRICES[price]
        return 1000 * quantity * p.usd / p.per

    tasks_created = unit.get("tasks.CreateTask", 0.0)
    requests = unit.get("requests", 0.0)  # send_email's calls included (counted there)
    memory = unit.get("memory_gib_seconds", 0.0)
    lines = {
        "Firestore reads": usd("firestore_read", unit.get("firestore.billed_reads", 0.0)),
        "Firestore writes": usd("firestore_write", unit.get("firestore.writes", 0.0)),
        "Firestore deletes": usd("firestore_delete", unit.get("firestore.deletes", 0.0)),
        "invocations": usd("invocation", requests),
        "compute (vCPU-s)": usd("vcpu_second", unit.get("cpu_seconds", 0.0)),
        "compute (GiB-s)": usd("gib_second", memory),
        "Cloud Tasks (create + push)": usd("tasks_operation", 2 * tasks_created),
    }
    if kind == "redemption":
        lines["Storage Class B (1 GET)"] = usd("storage_class_b", 1.0)
        lines[f"artifact egress ({ARTIFACT_MIB:g} MiB, assumed)"] = usd(
            "egress_gib", ARTIFACT_MIB / 1024
        )
    return lines


def cost_tables(units: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """USD per 1,000 of each kind, by line, from the counts as printed (`printed`)."""
    return {kind: cost_per_thousand(kind, unit) for kind, unit in printed(units).items()}


def cost_section(units: Mapping[str, Mapping[str, float]], result: Mapping[str, Any]) -> str:
    tables = cost_tables(units)
    labels: list[str] = []
    for table in tables.values():
        labels += [label for label in table if label not in labels]
    lines = [
        "### Cost per 1,000",
        "",
        "Computed by `bench/cost_model.py` from the operations per request above, as "
        "printed there (this run), and list prices in USD looked up on 2026-12-01, without "
        "the free tiers:",
        "",
        "| USD per 1,000 | " + " | ".join(tables) + " |",
        "|---|" + "---:|" * len(tables),
    ]
    for label in labels:
        lines.append(
            f"| {label} | " + " | ".join(f"{tables[k].get(label, 0.0):.5f}" for k in tables) + " |"
        )
    totals = {kind: sum(table.values()) for kind, table in tables.items()}
    lines.append("| **total** | " + " | ".join(f"**{v:.4f}**" for v in totals.values()) + " |")
    lines.append("")
    for kind, table in tables.items():
        top = max(table, key=lambda label: table[label])
        share = table[top] / totals[kind] if totals[kind] else 0.0
        lines.append(f"- {kind}: dominated by {top} ({share:.0%} of its total).")
    lines += [
        "",
        "Prices used (list prices, USD, looked up 2026-12-01):",
        "",
    ]
    for price in PRICES.values():
        usd = f"{price.usd:.7f}".rstrip("0").rstrip(".")
        lines.append(f"- {price.what}: ${usd} per {price.per:,.0f} ({price.source})")
    lines += [
        "",
        "How the lines are made: Firestore from the counted billed reads, writes and "
        "deletes; invocations = requests the function processes served (for a purchase: the "
        "webhook deliveries and the `send_email` calls); "
        "Cloud Tasks = 2 billable operations per task (the create call and one push "
        "delivery attempt; retries would add one each); vCPU-seconds = CPU seconds the "
        "function processes used per request (counted with `time.process_time()` in each "
        "process, background threads included): a LOWER bound, since request-based billing "
        "charges an instance's whole active time rounded up to 100 ms, shared by the "
        "requests it serves at once (at concurrency 1, a 100 ms minimum per request would "
        "cost $0.0024 per 1,000 in vCPU alone); GiB-seconds = the same seconds times each "
        "function's memory (infra/terraform/modules/shop/locals.tf). The Firestore prices "
        "are those the Standard-edition page shows for us-central1; europe-west1's may "
        "differ slightly. A redemption's egress depends on the product's real file size, "
        f"assumed {ARTIFACT_MIB:g} MiB here.",
    ]
    return "\n".join(lines)
