"""The launch benchmark's cost table is arithmetic on the counted operations: pin it."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench import cost_model


def test_every_counted_operation_is_priced_per_thousand_at_its_list_price():
    unit = {
        "firestore.billed_reads": 10.0,
        "firestore.writes": 4.0,
        "firestore.deletes": 2.0,
        "requests": 2.0,
        "cpu_seconds": 0.5,
        "memory_gib_seconds": 0.25,
        "tasks.CreateTask": 1.0,
    }
    lines = cost_model.cost_per_thousand("purchase", unit)
    assert lines["Firestore reads"] == pytest.approx(1000 * 10 * 0.03 / 100_000)
    assert lines["Firestore writes"] == pytest.approx(1000 * 4 * 0.09 / 100_000)
    assert lines["Firestore deletes"] == pytest.approx(1000 * 2 * 0.01 / 100_000)
    assert lines["invocations"] == pytest.approx(1000 * 2 * 0.40 / 1_000_000)
    assert lines["compute (vCPU-s)"] == pytest.approx(1000 * 0.5 * 0.000024)
    assert lines["compute (GiB-s)"] == pytest.approx(1000 * 0.25 * 0.0000025)
    assert lines["Cloud Tasks (create + push)"] == pytest.approx(1000 * 2 * 0.40 / 1_000_000)
    assert not any("Storage" in label for label in lines)


def test_a_redemption_adds_one_object_get_and_the_artifact_egress():
    lines = cost_model.cost_per_thousand("redemption", {"requests": 1.0})
    assert lines["Storage Class B (1 GET)"] == pytest.approx(1000 * 0.0004 / 1000)
    egress = next(value for label, value in lines.items() if label.startswith("artifact"))
    assert egress == pytest.approx(1000 * cost_model.ARTIFACT_MIB / 1024 * 0.12)


def test_the_operations_table_prints_the_counts_it_is_given():
    table = cost_model.operations_table(
        {"purchase": {"firestore.writes": 11.66}, "validation": {"firestore.writes": 1.85}}
    )
    assert "| Firestore writes | 11.66 | 1.85 |" in table
    assert "reads" not in table  # rows with nothing counted are left out


def parse_operations_table(table: str) -> dict[str, dict[str, float]]:
    """The counts per operation read back from the printed table, by kind and key."""
    lines = table.splitlines()
    kinds = [cell.strip() for cell in lines[0].strip("|").split("|")[1:]]
    keys = {label: key for key, label, _ in cost_model.ROWS}
    parsed: dict[str, dict[str, float]] = {kind: {} for kind in kinds}
    for line in lines[2:]:
        label, *cells = [cell.strip() for cell in line.strip("|").split("|")]
        for kind, cell in zip(kinds, cells, strict=True):
            if float(cell):
                parsed[kind][keys[label]] = float(cell)
    return parsed


counts = st.floats(min_value=0, max_value=50, allow_nan=False, allow_infinity=False)
COST_INPUTS = (
    "firestore.billed_reads",
    "firestore.writes",
    "firestore.deletes",
    "requests",
    "cpu_seconds",
    "memory_gib_seconds",
    "tasks.CreateTask",
)


@settings(deadline=None)  # no timing assertions in tests
@given(
    units=st.fixed_dictionaries(
        {
            kind: st.fixed_dictionaries({key: counts for key in COST_INPUTS})
            for kind in ("purchase", "redemption", "validation")
        }
    )
)
def test_the_cost_table_is_computed_from_exactly_the_counts_the_benchmark_prints(units):
    """The acceptance check: the counts behind the cost table equal the printed ones.
    Read the printed operations table back, price what it says, and get the very
    numbers the cost section uses (not merely equal after rounding to cents)."""
    from_print = parse_operations_table(cost_model.operations_table(units))
    expected = {kind: cost_model.cost_per_thousand(kind, unit) for kind, unit in from_print.items()}
    assert cost_model.cost_tables(units) == expected
    section = cost_model.cost_section(units, {})
    for label in expected["purchase"]:
        row = " | ".join(f"{expected[k][label]:.5f}" for k in expected)
        assert f"| {label} | {row} |" in section


def test_a_count_printed_rounded_is_priced_rounded():
    """11.304 writes per purchase print as 11.30, and 11.30 is what is priced."""
    unit = {"purchase": {"firestore.writes": 11.304}}
    assert "| Firestore writes | 11.30 |" in cost_model.operations_table(unit)
    assert (
        cost_model.cost_tables(unit)["purchase"]["Firestore writes"]
        == (
            cost_model.cost_per_thousand("purchase", {"firestore.writes": 11.30})[
                "Firestore writes"
            ]
        )
    )


@pytest.mark.parametrize("key", COST_INPUTS)
def test_every_count_a_cost_line_uses_is_printed_and_priced(key):
    """A count the table did not print would silently drop out of the cost."""
    unit = {"purchase": {key: 1.0}}
    assert f"| {dict((k, label) for k, label, _ in cost_model.ROWS)[key]} | 1." in (
        cost_model.operations_table(unit)
    )
    assert sum(cost_model.cost_tables(unit)["purchase"].values()) > 0
