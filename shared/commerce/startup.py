"""How a function instance starts: no cyclic garbage collection until its first
answer, and no search for pydantic plugins.

A cold start imports a few hundred modules (Firestore's, gRPC's and protobuf's above
all) and keeps almost every object it creates for the instance's whole life. Python's
cyclic collector, left on, scans that growing heap again and again while it loads:
each full collection of a started instance walks about 80,000 objects, 35-50 ms of
CPU on the benchmark machine, and a cold start ran two or three of them
(docs/performance.md, "Cold start"). Almost nothing it finds is garbage: about 200-350
unreachable objects per start.

So `main.py` turns the collector off when it loads (`begin`), and the instance's
first answer turns it back on (`resume`, called by `commerce.http.endpoint`) after
`gc.freeze()` has moved every object alive at that moment to the permanent
generation, where later collections never scan it. That is the recipe of the `gc`
module's documentation for a process that loads once and then forks, applied to the
end of a cold start; gunicorn's master, which loads main.py before it forks the
worker, keeps the collector off (it runs no request).
Reference counting frees everything else as usual throughout; the few cyclic objects
left over from loading stay in memory.

No pydantic plugin is used here. Unless told so, pydantic looks for plugins when the
first model is defined, by reading the entry points of every installed distribution:
about 3 ms of every cold start with the development tools installed (fewer
distributions in the deployed bundle, so less there). An operator's own
PYDANTIC_DISABLE_PLUGINS stands.
"""

from __future__ import annotations

import gc
import os
import threading

_lock = threading.Lock()
_paused = False


def begin() -> None:
    """For main.py, before it imports anything of its own."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    pause()


def pause() -> None:
    """Collector off until `resume`; nothing to do if something else turned it off."""
    global _paused
    with _lock:
        if gc.isenabled():
            gc.disable()
            _paused = True


def resume() -> None:
    """After an answer: the first one freezes what loading left and turns the
    collector back on; every later call is one check of a flag."""
    global _paused
    if not _paused:
        return
    with _lock:
        if _paused:
            gc.freeze()
            gc.enable()
            _paused = False
