"""The license API: validate, activate, deactivate, certificate, updates.

Every call answers a stable `StatusCode`. The license (with its order's state) is read on every
call (a refund, lost dispute or revocation shows on the next one); a wrong key learns
NOT_FOUND and nothing else; a typo is INVALID_KEY before any lookup. Rate limits
count per key hash and per client network on every call and per license on
activations; every change of an activation is audited, refusals once per license (or
network), operation, status and hour and counted otherwise (`licensing.refusals`).

Cost of a validation: ONE batch read of the license (which carries its order's state and
its machines' ids) and the activation asked about; the hit itself is counted in memory
and written by a background thread, which also learns the other instances' counts from
its writes, so the two rate-limit counter documents are read on the request only when
this instance's view of them is missing or stale (`commerce.ratelimit.DeferredCounter`
says exactly how approximate that makes the per-key and per-network limits). The other
operations count the same way, so every operation sees the same counts; the
per-license activation limit stays exact (counted with a write before the activation).
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from commerce.domain.ids import activation_id
from commerce.errors import InvalidLicenseKey, RateLimited
from commerce.grants import download_link
from commerce.licensing.certificates import CertificatePolicy, issue_certificate, signer_key_id
from commerce.licensing.refusals import RefusalAudit
from commerce.licensing.rules import choose_update, standing
from commerce.licensing.schemas import (
    ActivateRequest,
    Activation,
    Answer,
    CertificateRequest,
    DeactivateRequest,
    StatusCode,
    UpdatesRequest,
    ValidateRequest,
    fingerprint_hash,
)
from commerce.licensing.verifier import CertificateState, load_public_key, verify_certificate
from commerce.logs import get_logger
from commerce.ratelimit import DeferredCounter
from commerce.turns import Turns
from commerce.update_links import random_download_grant

if TYPE_CHECKING:
    from commerce.audit import Auditor
    from commerce.clock import Clock
    from commerce.domain.models import License
    from commerce.domain.rate_limits import RateDecision, RateWindow
    from commerce.domain.releases import Release
    from commerce.keys import KeyService
    from commerce.licensing.repository import LicenseState, LicenseStateStore
    from commerce.ratelimit import RateLimiter
    from commerce.settings import Settings
    from commerce.signing import Signer
    from commerce.unit_of_work import Storage, UnitOfWork

T = TypeVar("T")
_log = get_logger("commerce.licensing")
TOUCH_INTERVAL = timedelta(hours=12)  # last_seen_at is refreshed at most this often
ACTIVATION_WINDOW_SECONDS = 3600
COUNTER_FLUSH_SECONDS = 0.25  # validate's rate-limit hits are written at most this late


class ReleaseSource(Protocol):
    def in_channel(self, channel: str) -> list[Release]: ...


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def license_view(license_: License, used: int) -> dict[str, Any]:
    return {
        "id": license_.id,
        "key_hint": license_.key_hint,
        "product": license_.product_id,
        "channel": license_.channel,
        "entitled_major_versions": sorted(set(license_.entitled_major_versions)),
        "activation_limit": license_.activation_limit,
        "activations_used": used,
    }


def activation_view(activation: Activation) -> dict[str, Any]:
    return {
        "id": activation.id,
        "label": activation.label,
        "created_at": unix(activation.created_at),
        "last_seen_at": unix(activation.last_seen_at),
    }


@dataclass
class _Activation:
    """What the activation transaction decided (audited/answered after commit)."""

    status: StatusCode
    license: License | None = None
    activation: Activation | None = None
    used: int = 0
    reactivated: bool = False
    released: list[Activation] = field(default_factory=list)
    holders: list[Activation] = field(default_factory=list)


class LicenseService:
    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        keys: KeyService,
        signer: Signer,
        store: LicenseStateStore,
        storage: Storage,
        rate_limiter: RateLimiter,
        auditor: Auditor,
        network_hash: Callable[[str], str],
        releases: ReleaseSource | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.keys = keys
        self.signer = signer
        self.store = store
        self.rate_limiter = rate_limiter
        self.auditor = auditor
        self.network_hash = network_hash
        self.storage = storage
        self.releases = releases
        self.policy = CertificatePolicy(
            refresh_after=timedelta(days=settings.license_certificate_refresh_days),
            grace=timedelta(days=settings.license_certificate_grace_days),
        )
        self.counter = DeferredCounter(
            rate_limiter.repository, clock, flush_seconds=COUNTER_FLUSH_SECONDS
        )
        self.refusals = RefusalAudit(auditor, clock)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._turns = Turns()  # changes of one license take turns in this instance

    # -- validate ----------------------------------------------------------------------
    def validate(self, request: ValidateRequest, network: str) -> Answer:
        key_hash = self._key_hash(request.key)
        if key_hash is None:
            return self._invalid_key("validate", network)
        fp_hash = fingerprint_hash(request.fingerprint) if request.fingerprint else None
        # The hot path: the hit is counted in memory and written in the background, and
        # the counter documents are read only when this instance's view of them is
        # missing or stale (see DeferredCounter for exactly how approximate that is).
        # The license (with its order's state) and the activation are read live.
        limits = self._key_limits(f"key:{key_hash}", network)
        windows = self._windows(limits)
        own_hits = self.counter.hit(windows)
        unknown = self.counter.needs_reading(windows)
        state, counters = self.store.read_by_key_with(
            key_hash,
            _activation_for(fp_hash),
            unknown,
        )
        self.counter.learn(unknown, counters)
        self._check_counted(limits, windows, own_hits, network, key_hash=key_hash)
        if state is None:
            return self._refused("validate", StatusCode.NOT_FOUND, network, key_hash=key_hash)
        verdict = standing(state.license)
        if verdict is not StatusCode.VALID:
            return self._refused("validate", verdict, network, license_=state.license)
        view = license_view(state.license, len(state.activation_ids))
        if fp_hash is not None:
            if state.activation is None:
                return self._refused(
                    "validate",
                    StatusCode.NO_ACTIVATION,
                    network,
                    license_=state.license,
                    fields={"license": view},
                )
            self._touch_if_due(state.activation)
        activation = activation_view(state.activation) if state.activation else None
        return Answer(StatusCode.VALID, {"license": view, "activation": activation})

    # -- activate ----------------------------------------------------------------------
    def activate(self, request: ActivateRequest, network: str) -> Answer:
        identity = self._identify("activate", request.key, network)
        if isinstance(identity, Answer):
            return identity
        key_hash, license_id = identity
        fp_hash = fingerprint_hash(request.fingerprint)
        self._enforce(
            [
                (
                    f"license:activate:{license_id}",
                    self.settings.license_activation_rate_limit_per_hour,
                )
            ],
            network=network,
            license_id=license_id,
            window_seconds=ACTIVATION_WINDOW_SECONDS,
        )
        now = self.clock.now()
        wanted = activation_id(license_id, fp_hash)

        def work(uow: UnitOfWork) -> _Activation:
            return self._activate_in(
                uow, license_id, key_hash, wanted, fp_hash, request.label, now, network
            )

        with self._turns.turn(license_id):
            outcome = self.storage.run(work)
        if outcome.status is not StatusCode.VALID or outcome.activation is None:
            fields: dict[str, Any] = {}
            if outcome.status is StatusCode.TOO_MANY_ACTIVATIONS and outcome.license is not None:
                fields = {
                    "license": license_view(outcome.license, outcome.used),
                    "activations": [activation_view(a) for a in outcome.holders],
                }
            return self._refused(
                "activate", outcome.status, network, license_=outcome.license, fields=fields
            )
        assert outcome.license is not None
        certificate, payload = issue_certificate(
            outcome.license, outcome.activation, now=now, policy=self.policy, signer=self.signer
        )
        return Answer(
            StatusCode.VALID,
            {
                "license": license_view(outcome.license, outcome.used),
                "activation": activation_view(outcome.activation),
                "reactivated": outcome.reactivated,
                "certificate": certificate,
                "offline_until": payload["refresh_by"] + payload["grace_seconds"],
            },
        )

    def _activate_in(
        self,
        uow: UnitOfWork,
        license_id: str,
        key_hash: str,
        wanted: str,
        fp_hash: str,
        label: str | None,
        now: datetime,
        network: str,
    ) -> _Activation:
        state = self.store.read(license_id, wanted, uow)
        if state is None or not _same_hash(state.license.key_hash, key_hash):
            return _Activation(StatusCode.NOT_FOUND)
        license_ = state.license
        verdict = standing(license_)
        if verdict is not StatusCode.VALID:
            return _Activation(verdict, license_)
        slots = list(state.activation_ids)
        if state.activation is not None:  # the same machine again: no new slot
            renewed = state.activation.model_copy(
                update={"last_seen_at": now, "label": label or state.activation.label}
            )
            if wanted not in slots:  # self-repair should the license ever lose it
                slots.append(wanted)
                self._record_slots(uow, license_id, slots, now)
            uow.activations.put(renewed)
            self.auditor.record(
                "license.reactivated",
                uow=uow,
                license_id=license_id,
                order_id=license_.order_id,
                activation_id=wanted,
                network=self._network_id(network),
            )
            return _Activation(StatusCode.VALID, license_, renewed, len(slots), reactivated=True)
        released: list[Activation] = []
        holders: list[Activation] = []
        if len(slots) >= license_.activation_limit:
            holders = uow.activations.get_many(slots)
            stale_before = now - timedelta(days=self.settings.activation_stale_days)
            slots, released, fits = license_.make_room(holders, stale_before=stale_before)
            if not fits:
                return _Activation(
                    StatusCode.TOO_MANY_ACTIVATIONS, license_, used=len(slots), holders=holders
                )
        activation = Activation(
            id=wanted,
            license_id=license_id,
            fingerprint_sha256=fp_hash,
            label=label,
            created_at=now,
            last_seen_at=now,
        )
        for old in released:
            uow.activations.delete(old.id)
            self.auditor.record(
                "license.activation_released",
                uow=uow,
                license_id=license_id,
                order_id=license_.order_id,
                activation_id=old.id,
                reason="stale",
                last_seen_at=unix(old.last_seen_at),
            )
        slots.append(wanted)
        uow.activations.create(activation)
        self._record_slots(uow, license_id, slots, now)
        self.auditor.record(
            "license.activated",
            uow=uow,
            license_id=license_id,
            order_id=license_.order_id,
            activation_id=wanted,
            slots_used=len(slots),
            network=self._network_id(network),
        )
        return _Activation(StatusCode.VALID, license_, activation, len(slots), released=released)

    # -- deactivate --------------------------------------------------------------------
    def deactivate(self, request: DeactivateRequest, network: str) -> Answer:
        identity = self._identify("deactivate", request.key, network)
        if isinstance(identity, Answer):
            return identity
        key_hash, license_id = identity
        fp_hash = fingerprint_hash(request.fingerprint) if request.fingerprint else None
        target = request.activation_id
        if target is None:
            assert fp_hash is not None  # the request model demands one of the two
            target = activation_id(license_id, fp_hash)
        now = self.clock.now()

        def work(uow: UnitOfWork) -> tuple[StatusCode, LicenseState | None]:
            state = self.store.read(license_id, target, uow)
            if state is None or not _same_hash(state.license.key_hash, key_hash):
                return StatusCode.NOT_FOUND, None
            verdict = standing(state.license)
            if verdict is not StatusCode.VALID:
                return verdict, state
            if state.activation is None:
                return StatusCode.NO_ACTIVATION, state
            if fp_hash is not None and not _same_hash(state.activation.fingerprint_sha256, fp_hash):
                return StatusCode.FINGERPRINT_MISMATCH, state
            remaining = tuple(a for a in state.activation_ids if a != target)
            uow.activations.delete(target)
            self._record_slots(uow, license_id, remaining, now)
            self.auditor.record(
                "license.deactivated",
                uow=uow,
                license_id=license_id,
                order_id=state.license.order_id,
                activation_id=target,
                slots_used=len(remaining),
                network=self._network_id(network),
            )
            return StatusCode.VALID, state

        with self._turns.turn(license_id):
            status, state = self.storage.run(work)
        license_ = state.license if state is not None else None
        if status is not StatusCode.VALID or license_ is None:
            return self._refused("deactivate", status, network, license_=license_)
        used = len([a for a in state.activation_ids if a != target]) if state else 0
        return Answer(
            StatusCode.VALID,
            {"deactivated": target, "license": license_view(license_, used)},
        )

    # -- certificate -------------------------------------------------------------------
    def certificate(self, request: CertificateRequest, network: str) -> Answer:
        key_hash = self._key_hash(request.key)
        if key_hash is None:
            return self._invalid_key("certificate", network)
        fp_hash = fingerprint_hash(request.fingerprint)
        state = self._limited(
            self._key_limits(f"key:{key_hash}", network),
            lambda: self.store.read_by_key(key_hash, _activation_for(fp_hash)),
            network=network,
            key_hash=key_hash,
        )
        if state is None:
            return self._refused("certificate", StatusCode.NOT_FOUND, network, key_hash=key_hash)
        verdict = standing(state.license)
        if verdict is not StatusCode.VALID:
            return self._refused("certificate", verdict, network, license_=state.license)
        now = self.clock.now()
        if state.activation is None or not self.store.touch(state.activation.id, now):
            return self._refused(
                "certificate", StatusCode.NO_ACTIVATION, network, license_=state.license
            )
        activation = state.activation.model_copy(update={"last_seen_at": now})
        certificate, payload = issue_certificate(
            state.license, activation, now=now, policy=self.policy, signer=self.signer
        )
        return Answer(
            StatusCode.VALID,
            {
                "license": license_view(state.license, len(state.activation_ids)),
                "activation": activation_view(activation),
                "certificate": certificate,
                "offline_until": payload["refresh_by"] + payload["grace_seconds"],
            },
        )

    # -- updates -----------------------------------------------------------------------
    def updates(self, request: UpdatesRequest, network: str) -> Answer:
        state: LicenseState | None
        if request.key is not None:
            key_hash = self._key_hash(request.key)
            if key_hash is None:
                return self._invalid_key("updates", network)
            fp_hash = fingerprint_hash(request.fingerprint) if request.fingerprint else None
            state = self._limited(
                self._key_limits(f"key:{key_hash}", network),
                lambda: self.store.read_by_key(key_hash, _activation_for(fp_hash)),
                network=network,
                key_hash=key_hash,
            )
            if state is None:
                return self._refused("updates", StatusCode.NOT_FOUND, network, key_hash=key_hash)
        else:
            assert request.certificate is not None
            public = load_public_key(self.signer.public_key_b64())
            check = verify_certificate(
                request.certificate,
                {signer_key_id(self.signer): public},
                now=unix(self.clock.now()),
            )
            # Time does not matter here: the license and activation are read live below.
            if check.payload is None or check.state in (
                CertificateState.MALFORMED,
                CertificateState.BAD_SIGNATURE,
            ):
                return self._refused("updates", StatusCode.NOT_FOUND, network)
            payload = check.payload
            if request.fingerprint is not None and not _same_hash(
                payload["fingerprint_sha256"], fingerprint_hash(request.fingerprint)
            ):
                return self._refused(
                    "updates",
                    StatusCode.FINGERPRINT_MISMATCH,
                    network,
                    license_id=payload["license_id"],
                )
            cert_license_id: str = payload["license_id"]
            cert_activation_id: str = payload["activation_id"]
            state = self._limited(
                self._key_limits(f"license:{cert_license_id}", network),
                lambda: self.store.read(cert_license_id, cert_activation_id),
                network=network,
                license_id=cert_license_id,
            )
            if state is None:
                return self._refused("updates", StatusCode.NOT_FOUND, network)
        verdict = standing(state.license)
        if verdict is not StatusCode.VALID:  # refunded, disputed, revoked: no links
            return self._refused("updates", verdict, network, license_=state.license)
        # Offers and links only for a machine activated now: a key alone (no
        # fingerprint) or a machine that was deactivated gets none.
        if state.activation is None:
            return self._refused(
                "updates", StatusCode.NO_ACTIVATION, network, license_=state.license
            )
        # The license's own channel; beta only when support opted the license in.
        if not state.license.allows_channel(request.channel):
            return self._refused(
                "updates", StatusCode.CHANNEL_NOT_ALLOWED, network, license_=state.license
            )
        return Answer(StatusCode.VALID, self._update_offer(state.license, request, network))

    def _update_offer(
        self, license_: License, request: UpdatesRequest, network: str
    ) -> dict[str, Any]:
        releases = self.releases.in_channel(request.channel) if self.releases else []
        choice = choose_update(
            releases,
            current_version=request.current_version,
            platform=request.platform,
            channel=request.channel,
            entitled_majors=license_.entitled_major_versions,
        )
        upgrade = {"version": choice.upgrade.version} if choice.upgrade else None
        offer = choice.offer
        if offer is None:
            return {"update_available": False, "update": None, "upgrade": upgrade}
        file = offer.file_for(request.platform)
        assert file is not None  # choose_update only offers releases with this platform
        update: dict[str, Any] = {
            "version": offer.version,
            "channel": offer.channel,
            "published_at": unix(offer.published_at),
            "notes": offer.notes,
            "file": {
                "name": file.name,
                "platform": file.platform,
                "size": file.size,
                "sha256": file.sha256,
            },
            "manifest": _manifest_text(offer),
            "manifest_signature": offer.signature or None,
            "download": None,
        }
        if choice.link_serves_offer:
            update["download"] = self._download_link(license_, offer, request, network)
        return {"update_available": True, "update": update, "upgrade": upgrade}

    def _download_link(
        self, license_: License, release: Release, request: UpdatesRequest, network: str
    ) -> dict[str, Any]:
        """A FRESH short-lived grant per offer: the link carries its token, never the key.
        The token is random (commerce.update_links): no derivation secret is needed."""
        now = self.clock.now()
        grant, token = random_download_grant(
            order_id=license_.order_id,
            license_id=license_.id,
            channel=release.channel,
            now=now,
            ttl=timedelta(minutes=self.settings.update_link_ttl_minutes),
            max_redemptions=self.settings.update_link_max_redemptions,
        )
        with self.storage.batch() as uow:
            uow.download_tokens.create(grant)
            uow.commit()
        self.auditor.record(
            "license.update_offered",
            license_id=license_.id,
            order_id=license_.order_id,
            token_id=grant.token_id,
            version=release.version,
            platform=request.platform,
            network=self._network_id(network),
        )
        url = download_link(str(self.settings.public_base_url), token)
        return {
            "url": f"{url}?platform={request.platform}",
            "expires_at": unix(grant.expires_at),
            "max_redemptions": grant.max_redemptions,
        }

    # -- guards and bookkeeping --------------------------------------------------------
    def _key_hash(self, raw_key: str) -> str | None:
        """The key's lookup hash, or None for a typo (caught by the check character)."""
        try:
            return self.keys.hash_key(raw_key)
        except InvalidLicenseKey:
            return None

    def _identify(self, operation: str, raw_key: str, network: str) -> tuple[str, str] | Answer:
        """(key hash, license id) of a key, counted against the key's and the network's
        limits; or the answer that refuses it (typo, unknown key)."""
        key_hash = self._key_hash(raw_key)
        if key_hash is None:
            return self._invalid_key(operation, network)
        license_id = self._limited(
            self._key_limits(f"key:{key_hash}", network),
            lambda: self.store.identify(key_hash),
            network=network,
            key_hash=key_hash,
        )
        if license_id is None:
            return self._refused(operation, StatusCode.NOT_FOUND, network, key_hash=key_hash)
        return key_hash, license_id

    def _invalid_key(self, operation: str, network: str) -> Answer:
        """A typo costs no lookup, but still counts against the client's network."""
        limits = [(f"license:net:{network}", self.settings.license_rate_limit_per_network)]
        windows = self._windows(limits)
        own_hits = self.counter.hit(windows)
        unknown = self.counter.needs_reading(windows)
        self.counter.learn(
            unknown,
            self.store.read_counters(unknown),
        )
        self._check_counted(limits, windows, own_hits, network)
        return self._refused(operation, StatusCode.INVALID_KEY, network)

    def _key_limits(self, credential_bucket: str, network: str) -> list[tuple[str, int]]:
        return [
            (f"license:{credential_bucket}", self.settings.license_rate_limit_per_key),
            (f"license:net:{network}", self.settings.license_rate_limit_per_network),
        ]

    @property
    def pool(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="license-rl")
            return self._pool

    def _limited(
        self,
        limits: Sequence[tuple[str, int]],
        read: Callable[[], T],
        *,
        network: str,
        key_hash: str | None = None,
        license_id: str | None = None,
    ) -> T:
        """Count the rate limits (in the background, like validate, so every operation
        sees the same counts), reading the counters this instance has no fresh view of
        while `read` (read-only work) runs; raise RateLimited if any bucket is over its
        limit, whatever `read` found."""
        windows = self._windows(limits)
        own_hits = self.counter.hit(windows)
        unknown = self.counter.needs_reading(windows)
        counted = (
            # In the request's context, so its time budget bounds the read too.
            self.pool.submit(contextvars.copy_context().run, self.store.read_counters, unknown)
            if unknown
            else None
        )
        try:
            result = read()
        finally:
            if counted is not None:
                self.counter.learn(unknown, counted.result())
        self._check_counted(
            limits, windows, own_hits, network, key_hash=key_hash, license_id=license_id
        )
        return result

    def _windows(self, limits: Sequence[tuple[str, int]]) -> list[RateWindow]:
        return [self.rate_limiter.window(bucket, limit) for bucket, limit in limits]

    def _check_counted(
        self,
        limits: Sequence[tuple[str, int]],
        windows: Sequence[RateWindow],
        own_hits: Sequence[int],
        network: str,
        *,
        key_hash: str | None = None,
        license_id: str | None = None,
    ) -> None:
        decisions = self.counter.decide(windows, own_hits)
        self._check(
            limits,
            decisions,
            network=network,
            key_hash=key_hash,
            license_id=license_id,
            first_refusals=[
                not decision.allowed and self.counter.first_refusal(window)
                for window, decision in zip(windows, decisions, strict=True)
            ],
        )

    def _enforce(
        self,
        limits: Sequence[tuple[str, int]],
        *,
        network: str,
        license_id: str | None = None,
        window_seconds: int | None = None,
    ) -> None:
        decisions = self.rate_limiter.hit_all(limits, window_seconds=window_seconds)
        self._check(limits, decisions, network=network, license_id=license_id)

    def _check(
        self,
        limits: Sequence[tuple[str, int]],
        decisions: Sequence[RateDecision],
        *,
        network: str,
        key_hash: str | None = None,
        license_id: str | None = None,
        first_refusals: Sequence[bool] | None = None,
    ) -> None:
        if first_refusals is None:  # exact counts: the first refusal counted limit + 1
            first_refusals = [
                d.count == limit + 1 for (_, limit), d in zip(limits, decisions, strict=True)
            ]
        refused = [
            (bucket, first, decision)
            for (bucket, _), decision, first in zip(limits, decisions, first_refusals, strict=True)
            if not decision.allowed
        ]
        if not refused:
            return
        # Audited once per bucket and window (the first refusal; per instance when counted
        # in the background), so a flood cannot turn the audit log into a write
        # amplifier; every refusal is still logged.
        for bucket, first, _decision in refused:
            if first:
                self.auditor.record(
                    "license.refused",
                    license_id=license_id,
                    status=StatusCode.RATE_LIMITED.value,
                    bucket=bucket.split(":")[1],
                    network=self._network_id(network),
                    key_hash_prefix=key_hash[:12] if key_hash else None,
                )
        _log.info(
            "license request rate limited",
            extra={"event": "license.rate_limited", "license_id": license_id},
        )
        raise RateLimited(max(decision.retry_after_seconds for _, _, decision in refused))

    def _record_slots(
        self, uow: UnitOfWork, license_id: str, slots: Sequence[str], now: datetime
    ) -> None:
        """The license's machine ids, rewritten in the activation's unit of work (the
        license was read in it, so concurrent activations serialise on it)."""
        uow.licenses.update(license_id, {"activation_ids": list(slots), "updated_at": now})

    def _touch_if_due(self, activation: Activation) -> None:
        now = self.clock.now()
        if now - activation.last_seen_at >= TOUCH_INTERVAL:
            self.store.touch(activation.id, now)

    def _network_id(self, network: str) -> str:
        """Audit entries name a client network by a keyed hash, never the address
        (commerce.pseudonyms: the same hash the download audit uses)."""
        return self.network_hash(network)

    def _refused(
        self,
        operation: str,
        status: StatusCode,
        network: str,
        *,
        license_: License | None = None,
        license_id: str | None = None,
        key_hash: str | None = None,
        fields: dict[str, Any] | None = None,
    ) -> Answer:
        # Audited once per subject (the license, else the network) and window; the
        # rest are counted (commerce.licensing.refusals).
        refused_license = license_.id if license_ is not None else license_id
        network_id = self._network_id(network)
        self.refusals.record(
            subject=f"license:{refused_license}" if refused_license else f"net:{network_id}",
            operation=operation,
            status=status.value,
            license_id=refused_license,
            order_id=license_.order_id if license_ is not None else None,
            network=network_id,
            key_hash_prefix=key_hash[:12] if key_hash else None,
        )
        return Answer(status, fields or {})

    def close(self) -> None:
        self.counter.close()
        self.refusals.flush()
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=False)
                self._pool = None


def _activation_for(fp_hash: str | None) -> Callable[[str], str | None]:
    def activation_of(license_id: str) -> str | None:
        return activation_id(license_id, fp_hash) if fp_hash is not None else None

    return activation_of


def _same_hash(left: str, right: str) -> bool:
    return hmac.compare_digest(left.encode(), right.encode())


def _manifest_text(release: Release) -> str | None:
    """The exact signed manifest text: stored with the release, or rebuilt from its
    fields when that reproduces the recorded SHA-256 (never a guess)."""
    from commerce.domain.releases import manifest_bytes, manifest_for

    stored = getattr(release, "manifest", None)
    if isinstance(stored, str) and stored:
        return stored
    rebuilt = manifest_bytes(
        manifest_for(release.version, release.channel, release.files, release.published_at)
    )
    if release.manifest_sha256 and hashlib.sha256(rebuilt).hexdigest() == release.manifest_sha256:
        return rebuilt.decode()
    return None
