"""Shared test helpers: emulator fixtures, factories."""
