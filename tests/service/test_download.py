"""Download redemption on the in-memory unit of work: the checks, their order, the
counting and the audit (signed URLs and real files: tests/delivery, on the emulators)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.delivery.download import (
    DownloadService,
    LicenseRevoked,
    LicenseSuspended,
    OrderDisputed,
    OrderNotEntitled,
    OrderRefunded,
    OrderRevoked,
    PlatformUnknown,
    ReleaseUnavailable,
)
from commerce.domain.models import LicenseStatus
from commerce.domain.orders import OrderState
from commerce.domain.releases import Release, ReleaseFile
from commerce.domain.tokens import (
    DownloadTokenExhausted,
    DownloadTokenExpired,
    DownloadTokenUnknown,
    generate_token,
    hash_token,
)
from commerce.errors import RateLimited
from commerce.repositories.memory import MemoryStorage
from commerce.unit_of_work import UnitOfWork
from tests.support import factories

NET = "203.0.113.7/32"
UA = "pytest-agent/1.0"
LINUX = "linux-x86_64"


def release(version: str, *, yanked: bool = False, channel: str = "stable") -> Release:
    return Release(
        id=version,
        version=version,
        channel=channel,
        files=(
            ReleaseFile(
                name=f"genx-{version}-{LINUX}.tar.gz",
                platform=LINUX,
                size=10,
                sha256="0" * 64,
                object_name=f"releases/{version}/{LINUX}.tar.gz",
            ),
        ),
        published_at=datetime(2026, 1, 1, tzinfo=UTC),
        yanked=yanked,
    )


class Releases:
    def __init__(self, *releases: Release) -> None:
        self.releases = list(releases)

    def in_channel(self, channel: str) -> list[Release]:
        return [r for r in self.releases if r.channel == channel]


class SignedUrls:
    """The artifact store's signing, as the service uses it (no bucket)."""

    def warm_up_signing(self) -> None:
        return None

    def signed_url(self, object_name: str, *, download_name: str) -> str:
        return f"https://storage.test/{object_name}?signed&name={download_name}"


@pytest.fixture
def releases() -> Releases:
    return Releases(release("1.0.0"), release("1.1.0"), release("1.2.0", yanked=True))


@pytest.fixture
def service(container: Container, releases: Releases) -> DownloadService:
    container.releases = releases  # type: ignore[misc,assignment]
    container.artifacts = SignedUrls()  # type: ignore[misc,assignment]
    # Rate limits of the download path count inside its unit of work (no repository).
    container.rate_limits = None  # type: ignore[misc,assignment]
    return container.download_service


@pytest.fixture
def bought(container: Container, storage: MemoryStorage, clock: FixedClock) -> factories.Purchase:
    purchase = factories.purchase(container.keys, OrderState.FULFILLED, now=clock.now())

    def store(uow: UnitOfWork) -> None:
        uow.customers.put(purchase.customer)
        uow.orders.put(purchase.order)
        assert purchase.license is not None
        uow.licenses.put(purchase.license)
        for grant in purchase.grants:
            uow.download_tokens.put(grant)

    storage.run(store)
    return purchase


def redeem(service: DownloadService, token: str, platform: str = LINUX, network: str = NET) -> Any:
    return service.redeem(token, platform, network=network, user_agent=UA)


def redemptions(storage: MemoryStorage, token: str) -> int:
    grant = storage.load("download_tokens", hash_token(token))
    assert grant is not None
    return int(grant.redemptions)


def test_a_redemption_answers_the_newest_release_counts_once_and_is_audited(
    service: DownloadService, bought: factories.Purchase, storage: MemoryStorage
) -> None:
    answer = redeem(service, bought.tokens[0])

    assert answer.release.version == "1.1.0"  # 1.2.0 is yanked
    assert answer.url.startswith("https://storage.test/releases/1.1.0/")
    assert answer.remaining == bought.grants[0].max_redemptions - 1
    assert redemptions(storage, bought.tokens[0]) == 1
    assert storage.audit_actions() == ["download.redeemed"]
    assert bought.tokens[0] not in str(storage.all("audit_log"))


def test_an_unknown_or_malformed_token_is_404(
    service: DownloadService, bought: factories.Purchase
) -> None:
    with pytest.raises(DownloadTokenUnknown):
        redeem(service, generate_token())
    with pytest.raises(DownloadTokenUnknown):
        redeem(service, "not a token")


def test_a_used_up_link_is_410(
    service: DownloadService, bought: factories.Purchase, storage: MemoryStorage
) -> None:
    for _ in range(bought.grants[0].max_redemptions):
        redeem(service, bought.tokens[0])

    with pytest.raises(DownloadTokenExhausted):
        redeem(service, bought.tokens[0])
    assert redemptions(storage, bought.tokens[0]) == bought.grants[0].max_redemptions


@pytest.mark.parametrize(
    ("state", "error"),
    [
        (OrderState.REFUNDED, OrderRefunded),
        (OrderState.DISPUTED, OrderDisputed),
        (OrderState.REVOKED, OrderRevoked),
        (OrderState.PAID, OrderNotEntitled),
    ],
)
def test_the_order_is_checked_at_every_redemption(
    service: DownloadService,
    bought: factories.Purchase,
    storage: MemoryStorage,
    state: OrderState,
    error: type[Exception],
) -> None:
    redeem(service, bought.tokens[0])
    storage.run(lambda uow: uow.orders.update(bought.order.id, {"state": state}))

    with pytest.raises(error) as refused:
        redeem(service, bought.tokens[0])
    assert getattr(refused.value, "status", None) == 410
    assert redemptions(storage, bought.tokens[0]) == 1


@pytest.mark.parametrize(
    ("status", "error"),
    [(LicenseStatus.SUSPENDED, LicenseSuspended), (LicenseStatus.REVOKED, LicenseRevoked)],
)
def test_the_license_is_checked_at_every_redemption(
    service: DownloadService,
    bought: factories.Purchase,
    storage: MemoryStorage,
    status: LicenseStatus,
    error: type[Exception],
) -> None:
    assert bought.license is not None
    license_id = bought.license.id
    storage.run(lambda uow: uow.licenses.update(license_id, {"status": status}))

    with pytest.raises(error):
        redeem(service, bought.tokens[0])


def test_a_refund_answers_refunded_though_the_license_was_revoked_too(
    service: DownloadService, bought: factories.Purchase, storage: MemoryStorage
) -> None:
    assert bought.license is not None
    license_id = bought.license.id

    def refund(uow: UnitOfWork) -> None:
        uow.orders.update(bought.order.id, {"state": OrderState.REFUNDED})
        uow.licenses.update(license_id, {"status": LicenseStatus.REVOKED})

    storage.run(refund)

    with pytest.raises(OrderRefunded):
        redeem(service, bought.tokens[0])


def test_expiry_is_checked_before_entitlement(
    service: DownloadService, bought: factories.Purchase, storage: MemoryStorage, clock: FixedClock
) -> None:
    storage.run(lambda uow: uow.orders.update(bought.order.id, {"state": OrderState.REFUNDED}))
    clock.advance(hours=80)

    with pytest.raises(DownloadTokenExpired):
        redeem(service, bought.tokens[0])


def test_an_unknown_platform_is_404_naming_the_ones_there_are_and_counts_nothing(
    service: DownloadService, bought: factories.Purchase, storage: MemoryStorage
) -> None:
    with pytest.raises(PlatformUnknown) as refused:
        redeem(service, bought.tokens[0], platform="amiga-68k")

    assert LINUX in refused.value.detail
    assert redemptions(storage, bought.tokens[0]) == 0
    assert storage.audit_actions() == []


def test_no_release_yet_is_404(
    service: DownloadService, bought: factories.Purchase, releases: Releases
) -> None:
    releases.releases.clear()

    with pytest.raises(ReleaseUnavailable):
        redeem(service, bought.tokens[0])


def test_the_per_token_limit_trips_and_recovers_in_the_next_window(
    service: DownloadService, bought: factories.Purchase, clock: FixedClock
) -> None:
    for _ in range(10):
        service.listing(bought.tokens[0], network=NET, user_agent=UA)

    with pytest.raises(RateLimited) as limited:
        service.listing(bought.tokens[0], network=NET, user_agent=UA)
    assert limited.value.status == 429

    clock.advance(timedelta(seconds=int(limited.value.headers["Retry-After"])))
    assert service.listing(bought.tokens[0], network=NET, user_agent=UA).grant.redemptions == 0


def test_the_per_network_limit_counts_unknown_tokens_too(
    service: DownloadService, bought: factories.Purchase
) -> None:
    for _ in range(30):
        with pytest.raises(DownloadTokenUnknown):
            redeem(service, generate_token(), network="2001:db8:1:2::/64")

    with pytest.raises(RateLimited):
        redeem(service, bought.tokens[0], network="2001:db8:1:2::/64")
    assert redeem(service, bought.tokens[0], network="2001:db8:9:9::/64").url
