"""`python -m emulators.stack dev|stop|status|test-services` (see emulators/stack/cli.py)."""

import sys

from emulators.stack.cli import main

sys.exit(main())
