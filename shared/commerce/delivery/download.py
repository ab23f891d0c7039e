"""Download redemption: token -> checks -> counted redemption -> short-lived signed URL.

Checks, in this order, each with its own answer: rate limits (per client network and
per token, 429 + Retry-After), unknown token (404), revoked/expired/used-up link
(410), order no longer entitled (refunded/disputed/revoked, 410), license suspended
or revoked (410). They run at every redemption, not only when the link was issued.

Everything is decided in ONE unit of work: a batched read of the grant and the
rate-limit counters (ids known up front; in Firestore it also begins the
transaction), a batched read of order and license, then the writes (counters,
redemption, audit entry) committed together: three round trips. A refused
request still commits its rate-limit counts, never a redemption. The token itself
is never stored or logged: storage and audit know its hash and `token_id`. The audit
entry names the client network by its keyed hash and the user agent by its family
(`commerce.pseudonyms`, `domain.network.agent_family`), never the address or the
full string.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from commerce.domain.models import Entitlement, License, Order, entitlement
from commerce.domain.network import agent_family
from commerce.domain.releases import Release, ReleaseFile, latest
from commerce.domain.tokens import (
    DownloadGrant,
    DownloadTokenUnknown,
    hash_token,
    looks_like_token,
)
from commerce.errors import CommerceError, Gone, NotFound, RateLimited
from commerce.logs import get_logger
from commerce.turns import Turns

if TYPE_CHECKING:
    from commerce.adapters.artifacts import ArtifactStore
    from commerce.audit import Auditor
    from commerce.clock import Clock
    from commerce.domain.rate_limits import RateWindow
    from commerce.ratelimit import RateLimiter
    from commerce.settings import Settings
    from commerce.unit_of_work import Storage, UnitOfWork

_log = get_logger("commerce.delivery.download")


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


_REFUSALS: dict[Entitlement, type[Gone]] = {
    Entitlement.ORDER_REFUNDED: OrderRefunded,
    Entitlement.ORDER_DISPUTED: OrderDisputed,
    Entitlement.ORDER_REVOKED: OrderRevoked,
    Entitlement.ORDER_NOT_ENTITLED: OrderNotEntitled,
    Entitlement.LICENSE_REVOKED: LicenseRevoked,
    Entitlement.LICENSE_SUSPENDED: LicenseSuspended,
}


def check_entitlement(order: Order | None, license_: License | None) -> None:
    """Raise why the order/license behind a grant no longer allows downloads: the
    license's entitlement rule, with the order's state as read from the order."""
    order_state = order.state if order is not None else None
    verdict = (
        license_.entitlement(order_state)
        if license_ is not None and order_state is not None
        else entitlement(order_state, None)
    )
    if verdict is not Entitlement.ENTITLED:
        raise _REFUSALS[verdict]()


class ReleaseSource(Protocol):
    def in_channel(self, channel: str) -> list[Release]: ...


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
        storage: Storage,
        releases: ReleaseSource,
        rate_limiter: RateLimiter,
        auditor: Auditor,
        artifacts: ArtifactStore,
        network_hash: Callable[[str], str],
        release_cache_seconds: float = 30.0,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.storage = storage
        self.releases = releases
        self.rate_limiter = rate_limiter
        self.auditor = auditor
        self.artifacts = artifacts
        self.network_hash = network_hash  # commerce.pseudonyms: audits keep no address
        self.release_cache_seconds = release_cache_seconds
        self._release_cache: dict[str, tuple[float, tuple[Release, ...]]] = {}
        self._cache_lock = threading.Lock()
        self._signing_warmed = False
        self._turns = Turns()

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

        def work(uow: UnitOfWork) -> _Outcome:
            grant_key = uow.download_tokens.key(token_hash or "-malformed-")
            counter_keys = [uow.rate_counters.key(window.doc_id) for window in windows]
            found = uow.read(grant_key, *counter_keys)
            counts = [counter.count if (counter := found[key]) else 0 for key in counter_keys]
            for window, count in zip(windows, counts, strict=True):
                if not window.allows(count):
                    return _Outcome(RateLimited(window.retry_after_seconds))
            grant = found[grant_key] if token_hash is not None else None
            order = license_ = None
            if grant is not None:
                order_key = uow.orders.key(grant.order_id)
                license_key = uow.licenses.key(grant.license_id)
                behind = uow.read(order_key, license_key)
                order, license_ = behind[order_key], behind[license_key]
            # All reads done; from here on only decisions and writes.
            outcome = self._check(grant, order, license_, now, platform)
            for window, count in zip(windows, counts, strict=True):
                if grant is not None or window is windows[0]:
                    uow.rate_counters.put(window.counted(count))
            if outcome.error is None and platform is not None and grant is not None:
                uow.download_tokens.update(grant.token_hash, {"redemptions": grant.redemptions + 1})
                assert outcome.release
                assert outcome.file
                self.auditor.record(
                    "download.redeemed",
                    uow=uow,
                    order_id=grant.order_id,
                    license_id=grant.license_id,
                    token_id=grant.token_id,
                    network=self.network_hash(network),
                    agent=agent_family(user_agent),
                    version=outcome.release.version,
                    platform=outcome.file.platform,
                    redemption=grant.redemptions + 1,
                )
            return outcome

        # Redemptions of one link take turns in this instance (commerce.turns).
        with self._turns.turn(token_hash or "-malformed-"):
            outcome = self.storage.run(work)
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
                    "network": self.network_hash(network),
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
