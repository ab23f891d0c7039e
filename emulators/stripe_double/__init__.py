"""Local Stripe test double: the subset of Stripe's API this project uses, in memory.

Run it with `python -m emulators.stripe_double --help`; see docs in `__main__`.
"""

from .app import RunningDouble, create_app, start_in_thread
from .config import Config
from .engine import StripeDouble

__all__ = ["Config", "RunningDouble", "StripeDouble", "create_app", "start_in_thread"]
