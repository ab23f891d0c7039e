"""The launch benchmark's cost table is arithmetic on the counted operations: pin it."""

import pytest

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
