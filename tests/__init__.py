"""Test suite (a package, so `tests.support` is importable from conftest and tools)."""
