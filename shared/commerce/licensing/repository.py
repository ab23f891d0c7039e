"""What the license API reads: a license with one activation (and any rate-limit
counters it needs) in ONE batched read, and the identity of a key.

The license document carries all a decision needs besides the activation: its status,
its order's state and the ids of its machines (see `License`), so the order is not
read. Finding a license by key needs a query on `key_hash`. The answer (the license
id) never changes for a given hash, so it is remembered per process; the documents
themselves are read fresh every time, and a remembered hash is trusted only if the
license document still carries it (a re-issued key stops working at once). A bounded
LRU; misses are never remembered, so a new license is found.

Reads outside a change go through a batch unit of work (no transaction, no locks: one
round trip); inside an activation's unit of work they are locked like every read there.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from commerce.domain.models import Activation, License
from commerce.domain.rate_limits import RateCounter, RateWindow
from commerce.errors import NotFound
from commerce.unit_of_work import Key, Storage, UnitOfWork

# license id -> the id of the activation a request is about (or None)
ActivationIdFor = Callable[[str], str | None]


@dataclass(frozen=True)
class LicenseState:
    """Everything a license decision needs: the license (its status, its order's state
    and its machines' ids) and the activation a request is about."""

    license: License
    activation: Activation | None

    @property
    def activation_ids(self) -> tuple[str, ...]:
        return self.license.activation_ids


class LicenseStateStore:
    def __init__(self, storage: Storage, *, cache_size: int = 10_000) -> None:
        self.storage = storage
        self._cache: OrderedDict[str, str] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # -- identity cache ----------------------------------------------------------------
    def _remembered(self, key_hash: str) -> str | None:
        with self._lock:
            license_id = self._cache.get(key_hash)
            if license_id is not None:
                self._cache.move_to_end(key_hash)
            return license_id

    def _remember(self, key_hash: str, license_: License) -> None:
        with self._lock:
            self._cache[key_hash] = license_.id
            self._cache.move_to_end(key_hash)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def forget(self, key_hash: str) -> None:
        with self._lock:
            self._cache.pop(key_hash, None)

    # -- reads ---------------------------------------------------------------------------
    def identify(self, key_hash: str) -> str | None:
        """The id of the license whose key hashes to `key_hash`."""
        license_id = self._remembered(key_hash)
        if license_id is not None:
            return license_id
        with self.storage.batch() as uow:
            found = uow.licenses.where("key_hash", "==", key_hash, limit=1)
        if not found:
            return None
        self._remember(key_hash, found[0])
        return found[0].id

    def read(
        self, license_id: str, activation_id: str | None, uow: UnitOfWork | None = None
    ) -> LicenseState | None:
        """The license and one activation, in one batched read (in `uow` if given)."""
        if uow is not None:
            return self._read_batch(uow, license_id, activation_id, ())[0]
        with self.storage.batch() as alone:
            return self._read_batch(alone, license_id, activation_id, ())[0]

    def _read_batch(
        self,
        uow: UnitOfWork,
        license_id: str,
        activation_id: str | None,
        windows: Sequence[RateWindow],
    ) -> tuple[LicenseState | None, list[RateCounter | None]]:
        """The license state and the counters of `windows`, all in ONE batched read."""
        license_key = uow.licenses.key(license_id)
        keys: list[Key[Any]] = [license_key]
        activation_key = uow.activations.key(activation_id) if activation_id else None
        if activation_key is not None:
            keys.append(activation_key)
        counter_keys = [uow.rate_counters.key(window.doc_id) for window in windows]
        found = uow.read(*keys, *counter_keys)
        counters = [found[key] for key in counter_keys]
        license_ = found[license_key]
        if license_ is None:
            return None, counters
        activation = found[activation_key] if activation_key is not None else None
        if activation is not None and activation.license_id != license_.id:
            activation = None
        return LicenseState(license_, activation), counters

    def read_by_key(self, key_hash: str, activation_id_for: ActivationIdFor) -> LicenseState | None:
        """The state of the license whose key hashes to `key_hash`, or None (not found)."""
        return self.read_by_key_with(key_hash, activation_id_for, ())[0]

    def read_by_key_with(
        self,
        key_hash: str,
        activation_id_for: ActivationIdFor,
        windows: Sequence[RateWindow],
    ) -> tuple[LicenseState | None, list[RateCounter | None]]:
        """`read_by_key` plus the counters of `windows` read in the same batch (None:
        missing); a remembered key costs ONE round trip."""
        license_id = self.identify(key_hash)
        if license_id is None:
            return None, self.read_counters(windows)
        with self.storage.batch() as uow:
            state, counters = self._read_batch(
                uow, license_id, activation_id_for(license_id), windows
            )
        if state is None or state.license.key_hash != key_hash:
            # Re-issued (or deleted) since we remembered it: ask storage again.
            self.forget(key_hash)
            license_id = self.identify(key_hash)
            if license_id is None:
                return None, counters
            with self.storage.batch() as uow:
                state, counters = self._read_batch(
                    uow, license_id, activation_id_for(license_id), windows
                )
            if state is None or state.license.key_hash != key_hash:
                return None, counters
        return state, counters

    def read_counters(self, windows: Sequence[RateWindow]) -> list[RateCounter | None]:
        """The counter documents of `windows` (None: missing), in one batched read."""
        if not windows:
            return []
        with self.storage.batch() as uow:
            keys = [uow.rate_counters.key(window.doc_id) for window in windows]
            found = uow.read(*keys)
        return [found[key] for key in keys]

    def activations_of(self, license_id: str) -> list[Activation]:
        """Every activation document of the license, oldest first (support views)."""
        with self.storage.batch() as uow:
            found = uow.activations.where("license_id", "==", license_id)
        return sorted(found, key=lambda activation: activation.created_at)

    def touch(self, activation_id: str, now: datetime) -> bool:
        """Record that the machine was seen; False when the activation is gone."""
        try:
            with self.storage.batch() as uow:
                uow.activations.update(activation_id, {"last_seen_at": now})
                uow.commit()
        except NotFound:
            return False
        return True
