"""GENX commerce backend: licensing, tokens, orders and the services around them."""

__version__ = "0.1.0"
