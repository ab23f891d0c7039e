"""Firestore access of the license API: activations and the batched reads that let one
validation cost one round trip of at most two documents."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from commerce.domain.models import License
from commerce.licensing.models import Activation
from commerce.repositories import LicenseRepository, OrderRepository
from commerce.repositories.base import Repository, Transaction
from commerce.repositories.firestore_wire import document_path, read_documents

# license id -> the id of the activation a request is about (or None)
ActivationIdFor = Callable[[str], str | None]


class ActivationRepository(Repository[Activation]):
    collection = "activations"
    model = Activation

    def by_license(self, license_id: str) -> list[Activation]:
        found = self.where("license_id", "==", license_id)
        return sorted(found, key=lambda activation: activation.created_at)

    def touch(self, activation_id: str, now: datetime) -> bool:
        """Record that the machine was seen; False when the activation is gone."""
        try:
            self.update(activation_id, {"last_seen_at": now})
        except gexc.NotFound:
            return False
        return True


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
    """Reads a license with one activation in ONE batch get.

    The license document carries all a decision needs besides the activation: its
    status, its order's state and the ids of its machines (see `License`), so the
    order is not read. Finding a license by key needs a query on `key_hash`. The answer
    (the license id) never changes for a given hash, so it is remembered per process;
    the documents themselves are read fresh every time, and a remembered hash is
    trusted only if the license document still carries it (a re-issued key stops
    working at once). A bounded LRU; misses are never remembered, so a new license is
    found.
    """

    def __init__(
        self,
        db: firestore.Client,
        licenses: LicenseRepository,
        orders: OrderRepository,
        activations: ActivationRepository,
        *,
        cache_size: int = 10_000,
    ) -> None:
        self.db = db
        self.licenses = licenses
        self.orders = orders
        self.activations = activations
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
        license_ = self.licenses.by_key_hash(key_hash)
        if license_ is None:
            return None
        self._remember(key_hash, license_)
        return license_.id

    def read(
        self, license_id: str, activation_id: str | None, tx: Transaction | None = None
    ) -> LicenseState | None:
        """The license and one activation, in one batch get."""
        state, _ = self._read_batch(license_id, activation_id, (), tx)
        return state

    def _read_batch(
        self,
        license_id: str,
        activation_id: str | None,
        extra: Sequence[firestore.DocumentReference],
        tx: Transaction | None = None,
    ) -> tuple[LicenseState | None, list[dict[str, Any] | None]]:
        """The license state and the data of `extra` documents (None: missing), all in
        ONE batch get."""
        license_ref = self.licenses.ref(license_id)
        activation_ref = self.activations.ref(activation_id) if activation_id else None
        refs = [license_ref] if activation_ref is None else [license_ref, activation_ref]
        found = read_documents(self.db, [*refs, *extra], tx)
        extras = [found.get(document_path(ref)) for ref in extra]
        license_data = found.get(document_path(license_ref))
        if license_data is None:
            return None, extras
        license_ = self.licenses.from_document(license_id, license_data)
        activation = None
        if activation_ref is not None and document_path(activation_ref) in found:
            activation = self.activations.from_document(
                activation_ref.id, found[document_path(activation_ref)]
            )
            if activation.license_id != license_.id:
                activation = None
        return LicenseState(license_, activation), extras

    def read_by_key(self, key_hash: str, activation_id_for: ActivationIdFor) -> LicenseState | None:
        """The state of the license whose key hashes to `key_hash`, or None (not found)."""
        return self.read_by_key_with(key_hash, activation_id_for, ())[0]

    def read_by_key_with(
        self,
        key_hash: str,
        activation_id_for: ActivationIdFor,
        extra: Sequence[firestore.DocumentReference],
    ) -> tuple[LicenseState | None, list[dict[str, Any] | None]]:
        """`read_by_key` plus the data of `extra` documents read in the same batch get
        (None: missing); a remembered key costs ONE round trip."""
        license_id = self.identify(key_hash)
        if license_id is None:
            return None, self.read_documents(extra)
        state, extras = self._read_batch(license_id, activation_id_for(license_id), extra)
        if state is None or state.license.key_hash != key_hash:
            # Re-issued (or deleted) since we remembered it: ask storage again.
            self.forget(key_hash)
            license_id = self.identify(key_hash)
            if license_id is None:
                return None, extras
            state, extras = self._read_batch(license_id, activation_id_for(license_id), extra)
            if state is None or state.license.key_hash != key_hash:
                return None, extras
        return state, extras

    def read_documents(
        self, refs: Sequence[firestore.DocumentReference]
    ) -> list[dict[str, Any] | None]:
        """The data of each document (None: missing), in one batch get."""
        found = read_documents(self.db, refs)
        return [found.get(document_path(ref)) for ref in refs]
