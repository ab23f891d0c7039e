"""Download redemption: token -> checks -> counted redemption -> short-lived signed URL.

Checks, in this order, each with its own answer: rate limits (per client network and
per token, 429 + Retry-After), unknown token (404), revoked/expired/used-up link
(410), order no longer entitled (refunded/disputed/revoked, 410), license suspended
or revoked (410). They run at every redemption, not only when the link was issued.

Everything is decided in ONE Firestore transaction: a batch read of the grant and
the rate-limit counters (ids known up front), a batch read of order and license,
then the writes (counters, redemption, audit entry) committed together. A refused
request still commits its rate-limit counts, never a redemption. The token itself
is never stored or logged: storage and audit know its hash and `token_id`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from commerce.delivery.releases import Release, ReleaseFile, latest
from commerce.domain.models import License, LicenseStatus, Order
from commerce.domain.orders import OrderState, is_entitled
from commerce.domain.tokens import (
    DownloadGrant,
    DownloadTokenUnknown,
    hash_token,
    looks_like_token,
)
from commerce.errors import CommerceError, Gone, NotFound, RateLimited
from commerce.logs import get_logger

if TYPE_CHECKING:
    from commerce.audit import Auditor
    from commerce.clock import Clock
    from commerce.delivery.artifacts import ArtifactStore
    from commerce.delivery.repository import RedemptionStore, ReleaseRepository
    from commerce.ratelimit import RateLimiter
    from commerce.repositories import Transaction
    from commerce.repositories.rate_limits import RateWindow
    from commerce.settings import Settings

_log = get_logger("commerce.delivery.download")
USER_AGENT_MAX = 200


class OrderRefunded(Gone):
    code = "order_refunded"
    default_detail = "This order was refunded; its downloads are no longer available."


class OrderDisputed(Gone):
    code = "order_disputed"
    default_detail = "This order's payment is disputed; downloads are suspended meanwhile."


class OrderRevoked(Gone):
    code = "order_revoked"
    default_detail = "This order was revoked; its downloads are no longer available."


class OrderNotEntitled(Gone):
    code = "order_not_entitled"
    default_detail = "This order does not entitle to downloads."


class LicenseSuspended(Gone):
    code = "license_suspended"
    default_detail = "This license is suspended; downloads are unavailable meanwhile."


class LicenseRevoked(Gone):
    code = "license_revoked"
    default_detail = "This license was revoked; its downloads are no longer available."


class ReleaseUnavailable(NotFound):
    code = "release_unavailable"
    default_detail = "No release is available for download yet."


class PlatformUnknown(NotFound):
    code = "platform_unknown"
    default_detail = "There is no file for this platform."


_ORDER_REFUSALS: dict[OrderState, type[Gone]] = {
    OrderState.REFUNDED: OrderRefunded,
    OrderState.DISPUTED: OrderDisputed,
    OrderState.REVOKED: OrderRevoked,
}


def check_entitlement(order: Order | None, license_: License | None) -> None:
    """Raise why the order/license behind a grant no longer allows downloads."""
    if order is None:
        raise OrderNotEntitled()
    if not is_entitled(order.state):
        raise _ORDER_REFUSALS.get(order.state, OrderNotEntitled)()
    if license_ is None or license_.status is LicenseStatus.REVOKED:
        raise LicenseRevoked()
    if license_.status is LicenseStatus.SUSPENDED:
        raise LicenseSuspended()


@dataclass(frozen=True)
class Redirect:
    url: str
    file: ReleaseFile
    release: Release
    remaining: int


@dataclass(frozen=True)
class Listing:
    release: Release
    grant: DownloadGrant


@dataclass
class _Outcome:
    error: CommerceError | None = None
    grant: DownloadGrant | None = None
    release: Release | None = None
    file: ReleaseFile | None = None


class DownloadService:
    def __init__(
        self,
        *,
        settings: Settings,
        clock: Clock,
        store: RedemptionStore,
        releases: ReleaseRepository,
        rate_limiter: RateLimiter,
        auditor: Auditor,
        artifacts: ArtifactStore,
        release_cache_seconds: float = 30.0,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.store = store
        self.releases = releases
        self.rate_limiter = rate_limiter
        self.auditor = auditor
        self.artifacts = artifacts
        self.release_cache_seconds = release_cache_seconds
        self._release_cache: dict[str, tuple[float, tuple[Release, ...]]] = {}
        self._cache_lock = threading.Lock()
        self._signing_warmed = False

    # -- public ---------------------------------------------------------------------
    def redeem(self, token: str, platform: str, *, network: str, user_agent: str) -> Redirect:
        """Count one redemption and answer a signed URL for `platform`'s file."""
        if not self._signing_warmed:
            self._signing_warmed = True  # first redemption: prepare signing meanwhile
            self.artifacts.warm_up_signing()
        outcome = self._decide(token, network, user_agent, platform=platform)
        assert outcome.grant
        assert outcome.release
        assert outcome.file
        url = self.artifacts.signed_url(outcome.file.object_name, download_name=outcome.file.name)
        return Redirect(url, outcome.file, outcome.release, outcome.grant.remaining - 1)

    def listing(self, token: str, *, network: str, user_agent: str) -> Listing:
        """Same checks, no redemption: what the link offers (for a browser's page)."""
        outcome = self._decide(token, network, user_agent, platform=None)
        assert outcome.grant
        assert outcome.release
        return Listing(outcome.release, outcome.grant)

    def latest_release(self, channel: str, majors: Iterable[int] | None = None) -> Release | None:
        """The newest release of `channel` within the entitled major versions. Releases
        change rarely: the channel's list is cached per process for a short time."""
        now = time.monotonic()
        with self._cache_lock:
            cached = self._release_cache.get(channel)
        if cached is None or now - cached[0] >= self.release_cache_seconds:
            cached = (now, tuple(self.releases.in_channel(channel)))
            with self._cache_lock:
                self._release_cache[channel] = cached
        return latest(cached[1], channel, majors)

    # -- the transaction --------------------------------------------------------------
    def _windows(self, network: str, token_hash: str | None) -> list[RateWindow]:
        s = self.settings
        windows = [
            self.rate_limiter.window(f"download:net:{network}", s.download_rate_limit_per_network)
        ]
        if token_hash is not None:
            windows.append(
                self.rate_limiter.window(
                    f"download:token:{token_hash}", s.download_rate_limit_per_token
                )
            )
        return windows

    def _decide(
        self, token: str, network: str, user_agent: str, *, platform: str | None
    ) -> _Outcome:
        token_hash = hash_token(token) if looks_like_token(token) else None
        windows = self._windows(network, token_hash)
        now = self.clock.now()

        def work(tx: Transaction) -> _Outcome:
            reads = self.store.read_grant_and_counters(tx, token_hash or "-malformed-", windows)
            for window, count in zip(windows, reads.counts, strict=True):
                if not window.allows(count):
                    return _Outcome(RateLimited(window.retry_after_seconds))
            grant = reads.grant if token_hash is not None else None
            order = license_ = None
            if grant is not None:
                order, license_ = self.store.read_order_and_license(
                    tx, grant.order_id, grant.license_id
                )
            # All reads done; from here on only decisions and writes.
            outcome = self._check(grant, order, license_, now, platform)
            for window, count in zip(windows, reads.counts, strict=True):
                if grant is not None or window is windows[0]:
                    self.store.count_hit(tx, window, count)
            if outcome.error is None and platform is not None and grant is not None:
                self.store.count_redemption(tx, grant)
                assert outcome.release
                assert outcome.file
                self.auditor.record(
                    "download.redeemed",
                    tx=tx,
                    order_id=grant.order_id,
                    license_id=grant.license_id,
                    token_id=grant.token_id,
                    network=network,
                    user_agent=user_agent[:USER_AGENT_MAX],
                    version=outcome.release.version,
                    platform=outcome.file.platform,
                    redemption=grant.redemptions + 1,
                )
            return outcome

        outcome = self.store.run(work)
        if outcome.error is not None:
            grant = outcome.grant
            _log.info(
                "download refused: %s",
                outcome.error.code,
                extra={
                    "event": "download.refused",
                    "code": outcome.error.code,
                    "token_id": grant.token_id if grant else None,
                    "order_id": grant.order_id if grant else None,
                    "network": network,
                },
            )
            raise outcome.error
        return outcome

    def _check(
        self,
        grant: DownloadGrant | None,
        order: Order | None,
        license_: License | None,
        now: datetime,
        platform: str | None,
    ) -> _Outcome:
        if grant is None:
            return _Outcome(DownloadTokenUnknown())
        try:
            grant.check_redeemable(now)
            check_entitlement(order, license_)
            assert license_ is not None  # check_entitlement refused a missing license
            release = self.latest_release(grant.channel, license_.entitled_major_versions)
            if release is None:
                raise ReleaseUnavailable()
            file = None
            if platform is not None:
                file = release.file_for(platform)
                if file is None:
                    available = ", ".join(f.platform for f in release.files)
                    raise PlatformUnknown(f"There is no file for {platform!r}; try: {available}.")
        except CommerceError as error:
            return _Outcome(error, grant)
        return _Outcome(None, grant, release, file)
