"""Firestore access of the license API: activations, their slots, and the batched reads
that let one validation cost one round trip."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import firestore

from commerce.domain.models import License, Order
from commerce.licensing.models import Activation, ActivationSlots
from commerce.repositories import LicenseRepository, OrderRepository
from commerce.repositories.base import Repository, Transaction

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


class ActivationSlotRepository(Repository[ActivationSlots]):
    collection = "activation_slots"
    model = ActivationSlots


@dataclass(frozen=True)
class LicenseState:
    """Everything a license decision needs, read together."""

    license: License
    order: Order | None
    activation: Activation | None
    slots: ActivationSlots | None

    @property
    def activation_ids(self) -> tuple[str, ...]:
        return self.slots.activation_ids if self.slots is not None else ()


@dataclass(frozen=True)
class _Identity:
    license_id: str
    order_id: str


class LicenseStateStore:
    """Reads a license with its order, one activation and its slots in ONE batch get.

    Finding a license by key needs a query on `key_hash`. The answer (license id and
    order id) never changes for a given hash, so it is remembered per process; the
    documents themselves are read fresh every time, and a remembered hash is trusted
    only if the license document still carries it (a re-issued key stops working at
    once). A bounded LRU; misses are never remembered, so a new license is found.
    """

    def __init__(
        self,
        db: firestore.Client,
        licenses: LicenseRepository,
        orders: OrderRepository,
        activations: ActivationRepository,
        slots: ActivationSlotRepository,
        *,
        cache_size: int = 10_000,
    ) -> None:
        self.db = db
        self.licenses = licenses
        self.orders = orders
        self.activations = activations
        self.slots = slots
        self._cache: OrderedDict[str, _Identity] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # -- identity cache ----------------------------------------------------------------
    def _remembered(self, key_hash: str) -> _Identity | None:
        with self._lock:
            identity = self._cache.get(key_hash)
            if identity is not None:
                self._cache.move_to_end(key_hash)
            return identity

    def _remember(self, key_hash: str, license_: License) -> None:
        with self._lock:
            self._cache[key_hash] = _Identity(license_.id, license_.order_id)
            self._cache.move_to_end(key_hash)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def forget(self, key_hash: str) -> None:
        with self._lock:
            self._cache.pop(key_hash, None)

    # -- reads ---------------------------------------------------------------------------
    def identify(self, key_hash: str) -> tuple[str, str] | None:
        """(license id, order id) of the license whose key hashes to `key_hash`."""
        identity = self._remembered(key_hash)
        if identity is not None:
            return identity.license_id, identity.order_id
        license_ = self.licenses.by_key_hash(key_hash)
        if license_ is None:
            return None
        self._remember(key_hash, license_)
        return license_.id, license_.order_id

    def read(
        self,
        license_id: str,
        order_id: str | None,
        activation_id: str | None,
        tx: Transaction | None = None,
    ) -> LicenseState | None:
        """The license, its order, one activation and the slots, in one batch get.

        Without `order_id` the license is read first to learn it (two round trips).
        """
        if order_id is None:
            found = self.licenses.get(license_id, tx)
            if found is None:
                return None
            order_id = found.order_id
        state, _ = self._read_batch(license_id, order_id, activation_id, (), tx)
        return state

    def _read_batch(
        self,
        license_id: str,
        order_id: str,
        activation_id: str | None,
        extra: Sequence[firestore.DocumentReference],
        tx: Transaction | None = None,
    ) -> tuple[LicenseState | None, list[dict[str, Any] | None]]:
        """The license state and the data of `extra` documents (None: missing), all in
        ONE batch get."""
        refs = {
            "license": self.licenses.ref(license_id),
            "order": self.orders.ref(order_id),
            "slots": self.slots.ref(license_id),
        }
        if activation_id is not None:
            refs["activation"] = self.activations.ref(activation_id)
        by_path = {ref.path: name for name, ref in refs.items()}
        extra_paths = {ref.path: index for index, ref in enumerate(extra)}
        extras: list[dict[str, Any] | None] = [None] * len(extra)
        data: dict[str, tuple[str, dict[str, Any]]] = {}
        for snap in self.db.get_all([*refs.values(), *extra], transaction=tx):
            if not snap.exists:
                continue
            path = snap.reference.path
            if path in extra_paths:
                extras[extra_paths[path]] = snap.to_dict() or {}
            else:
                data[by_path[path]] = (snap.id, snap.to_dict() or {})
        if "license" not in data:
            return None, extras
        license_ = self.licenses.from_document(*data["license"])
        order = self.orders.from_document(*data["order"]) if "order" in data else None
        activation = (
            self.activations.from_document(*data["activation"]) if "activation" in data else None
        )
        slots = self.slots.from_document(*data["slots"]) if "slots" in data else None
        if activation is not None and activation.license_id != license_.id:
            activation = None
        return LicenseState(license_, order, activation, slots), extras

    def read_by_key(self, key_hash: str, activation_id_for: ActivationIdFor) -> LicenseState | None:
        """The state of the license whose key hashes to `key_hash`, or None (not found)."""
        identity = self.identify(key_hash)
        if identity is None:
            return None
        license_id, order_id = identity
        state = self.read(license_id, order_id, activation_id_for(license_id))
        if state is None or state.license.key_hash != key_hash:
            # Re-issued (or deleted) since we remembered it: ask storage again.
            self.forget(key_hash)
            fresh = self.licenses.by_key_hash(key_hash)
            if fresh is None:
                return None
            self._remember(key_hash, fresh)
            state = self.read(fresh.id, fresh.order_id, activation_id_for(fresh.id))
            if state is None or state.license.key_hash != key_hash:
                return None
        return state

    def read_by_key_with(
        self,
        key_hash: str,
        activation_id_for: ActivationIdFor,
        extra: Sequence[firestore.DocumentReference],
    ) -> tuple[LicenseState | None, list[dict[str, Any] | None]]:
        """`read_by_key` plus the data of `extra` documents (rate-limit counters) read in
        the same batch get (None: missing); a remembered key costs ONE round trip."""
        identity = self.identify(key_hash)
        if identity is None:
            return None, self.read_documents(extra)
        state, extras = self._read_batch(*identity, activation_id_for(identity[0]), extra)
        if state is None or state.license.key_hash != key_hash:
            # Re-issued (or deleted) since we remembered it: ask storage again.
            self.forget(key_hash)
            identity = self.identify(key_hash)
            if identity is None:
                return None, extras
            state, extras = self._read_batch(*identity, activation_id_for(identity[0]), extra)
            if state is None or state.license.key_hash != key_hash:
                return None, extras
        return state, extras

    def read_documents(
        self, refs: Sequence[firestore.DocumentReference]
    ) -> list[dict[str, Any] | None]:
        """The data of each document (None: missing), in one batch get."""
        found = {
            snap.reference.path: snap.to_dict() or {}
            for snap in self.db.get_all(list(refs))
            if snap.exists
        }
        return [found.get(ref.path) for ref in refs]
