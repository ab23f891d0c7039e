"""Download redemption against the Firestore and storage emulators, with a fixed clock."""

from __future__ import annotations

import hashlib
import urllib.request
from datetime import timedelta

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.delivery.download import (
    DownloadService,
    LicenseRevoked,
    LicenseSuspended,
    OrderDisputed,
    OrderRefunded,
    OrderRevoked,
    PlatformUnknown,
)
from commerce.domain.models import LicenseStatus
from commerce.domain.orders import OrderState
from commerce.domain.releases import Release
from commerce.domain.tokens import (
    DownloadTokenExhausted,
    DownloadTokenExpired,
    DownloadTokenUnknown,
    generate_token,
    hash_token,
)
from commerce.errors import RateLimited
from commerce.releases.service import verified_manifest
from tests.delivery.conftest import Bought, artifact_files, make_settings

NET = "203.0.113.7/32"
UA = "pytest-agent/1.0"
LINUX = "linux-x86_64"


def redeem(service: DownloadService, token: str, platform: str = LINUX, network: str = NET):
    return service.redeem(token, platform, network=network, user_agent=UA)


def test_redemption_redirects_to_signed_url_whose_bytes_match_the_signed_manifest(
    container: Container, release: Release, bought: Bought
) -> None:
    answer = redeem(container.download_service, bought.token)

    assert "X-Goog-Signature=" in answer.url
    assert "X-Goog-Expires=300" in answer.url
    assert "response-content-disposition=" in answer.url
    with urllib.request.urlopen(answer.url, timeout=10) as response:
        data = response.read()
    body, signature = container.publisher.fetch_manifest(release.version)
    manifest = verified_manifest(body, signature, container.signer.public_key)
    entry = next(f for f in manifest["files"] if f["platform"] == LINUX)
    assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    assert len(data) == entry["size"]
    assert answer.file.name == f"genx-{release.version}-{LINUX}.tar.gz"


def test_redemption_is_counted_and_audited_without_the_token(
    container: Container, release: Release, bought: Bought
) -> None:
    redeem(container.download_service, bought.token)

    grant = container.download_tokens.get(hash_token(bought.token))
    assert grant is not None
    assert grant.redemptions == 1
    entries = [
        e for e in container.audit_log.for_order(bought.order_id) if e.action == "download.redeemed"
    ]
    assert len(entries) == 1
    details = entries[0].details
    assert details["token_id"] == grant.token_id
    # the network by its keyed hash, the user agent by its family: no address, no string
    assert details["network"] == container.pseudonyms.network(NET)
    assert len(details["network"]) == 16
    assert details["agent"] == "other"
    assert "user_agent" not in details
    assert entries[0].purge_at == entries[0].at + timedelta(days=180)
    stored = repr(entries[0].model_dump())
    assert bought.token not in stored
    assert "203.0.113" not in stored
    assert UA not in stored


def test_unknown_token_answers_404(container: Container, release: Release) -> None:
    for token in (generate_token(), "not-a-token", ""):
        with pytest.raises(DownloadTokenUnknown) as caught:
            redeem(container.download_service, token)
        assert caught.value.status == 404
        assert caught.value.code == "token_unknown"


def test_expired_link_answers_410_token_expired(
    container: Container, clock: FixedClock, release: Release, bought: Bought
) -> None:
    clock.advance(hours=72)

    with pytest.raises(DownloadTokenExpired) as caught:
        redeem(container.download_service, bought.token)
    assert (caught.value.status, caught.value.code) == (410, "token_expired")


def test_used_up_link_answers_410_token_exhausted(
    container: Container, clock: FixedClock, release: Release, bought: Bought
) -> None:
    for _ in range(5):  # the factory's limit
        redeem(container.download_service, bought.token)

    with pytest.raises(DownloadTokenExhausted) as caught:
        redeem(container.download_service, bought.token)
    assert (caught.value.status, caught.value.code) == (410, "token_exhausted")


@pytest.mark.parametrize(
    ("state", "error", "code"),
    [
        (OrderState.REFUNDED, OrderRefunded, "order_refunded"),
        (OrderState.DISPUTED, OrderDisputed, "order_disputed"),
        (OrderState.REVOKED, OrderRevoked, "order_revoked"),
    ],
)
def test_link_is_refused_once_the_order_is_no_longer_entitled(
    container: Container,
    release: Release,
    bought: Bought,
    state: OrderState,
    error: type[Exception],
    code: str,
) -> None:
    redeem(container.download_service, bought.token)  # worked while fulfilled
    container.orders.update(bought.order_id, {"state": state})

    with pytest.raises(error) as caught:
        redeem(container.download_service, bought.token)
    assert getattr(caught.value, "status", None) == 410
    assert getattr(caught.value, "code", None) == code


def test_revoked_after_refund_even_though_the_link_was_issued_before(
    container: Container, release: Release, bought: Bought
) -> None:
    container.orders.update(bought.order_id, {"state": OrderState.REFUNDED})
    assert bought.purchase.license is not None
    container.licenses.update(bought.purchase.license.id, {"status": LicenseStatus.REVOKED})

    with pytest.raises(OrderRefunded):
        redeem(container.download_service, bought.token)
    grant = container.download_tokens.get(hash_token(bought.token))
    assert grant is not None
    assert grant.redemptions == 0


@pytest.mark.parametrize(
    ("status", "error"),
    [(LicenseStatus.SUSPENDED, LicenseSuspended), (LicenseStatus.REVOKED, LicenseRevoked)],
)
def test_license_status_is_checked_at_every_redemption(
    container: Container,
    release: Release,
    bought: Bought,
    status: LicenseStatus,
    error: type[Exception],
) -> None:
    assert bought.purchase.license is not None
    container.licenses.update(bought.purchase.license.id, {"status": status})

    with pytest.raises(error) as caught:
        redeem(container.download_service, bought.token)
    assert getattr(caught.value, "status", None) == 410


def test_checks_run_in_order_expiry_before_entitlement(
    container: Container, clock: FixedClock, release: Release, bought: Bought
) -> None:
    container.orders.update(bought.order_id, {"state": OrderState.REFUNDED})
    clock.advance(hours=80)

    with pytest.raises(DownloadTokenExpired):
        redeem(container.download_service, bought.token)


def test_per_token_rate_limit_trips_with_retry_after_and_recovers_next_window(
    container: Container, clock: FixedClock, release: Release, bought: Bought
) -> None:
    service = container.download_service
    for _ in range(10):
        service.listing(bought.token, network=NET, user_agent=UA)

    with pytest.raises(RateLimited) as caught:
        service.listing(bought.token, network=NET, user_agent=UA)
    assert caught.value.status == 429
    assert int(caught.value.headers["Retry-After"]) >= 1

    clock.advance(seconds=int(caught.value.headers["Retry-After"]))
    assert service.listing(bought.token, network=NET, user_agent=UA).release.version == "1.0.0"


def test_per_network_rate_limit_trips_across_tokens(
    container: Container, release: Release, bought: Bought
) -> None:
    service = container.download_service
    for _ in range(30):
        with pytest.raises(DownloadTokenUnknown):
            redeem(service, generate_token(), network="2001:db8:1:2::/64")

    with pytest.raises(RateLimited):
        redeem(service, bought.token, network="2001:db8:1:2::/64")
    assert redeem(service, bought.token, network="2001:db8:9:9::/64").url


def test_rate_limited_and_refused_requests_never_count_a_redemption(
    container: Container, release: Release, bought: Bought
) -> None:
    with pytest.raises(PlatformUnknown) as caught:
        redeem(container.download_service, bought.token, platform="amiga-68k")
    assert caught.value.status == 404
    assert "linux-x86_64" in caught.value.detail

    grant = container.download_tokens.get(hash_token(bought.token))
    assert grant is not None
    assert grant.redemptions == 0


def test_listing_checks_the_link_but_does_not_use_a_redemption(
    container: Container, release: Release, bought: Bought
) -> None:
    listing = container.download_service.listing(bought.token, network=NET, user_agent=UA)

    assert {f.platform for f in listing.release.files} == {
        "linux-x86_64",
        "windows-x86_64",
        "macos-universal",
    }
    assert listing.grant.remaining == 5


def test_latest_non_yanked_release_of_the_grant_channel_is_served(
    container: Container, release: Release, bought: Bought, tmp_path
) -> None:
    container.publisher.publish(artifact_files(tmp_path / "b", "1.1.0"), "1.1.0")
    container.publisher.publish(
        artifact_files(tmp_path / "beta", "2.0.0-beta.1"), "2.0.0-beta.1", "beta"
    )
    assert redeem(container.download_service, bought.token).release.version == "1.1.0"

    container.publisher.yank("1.1.0")

    assert redeem(container.download_service, bought.token).release.version == "1.0.0"


def test_a_link_serves_only_releases_of_the_major_versions_the_license_covers(
    container: Container, release: Release, bought: Bought, tmp_path
) -> None:
    container.publisher.publish(artifact_files(tmp_path / "two", "2.0.0"), "2.0.0")
    assert bought.purchase.license is not None
    assert bought.purchase.license.entitled_major_versions == (1,)
    assert redeem(container.download_service, bought.token).release.version == "1.0.0"

    container.licenses.update(bought.purchase.license.id, {"entitled_major_versions": [1, 2]})

    assert redeem(container.download_service, bought.token).release.version == "2.0.0"


def test_a_tight_network_limit_from_settings_applies(
    container: Container, release: Release, bought: Bought, url_signer_file: str
) -> None:
    tight = make_settings(url_signing_key_file=url_signer_file, download_rate_limit_per_network=1)
    service = DownloadService(
        settings=tight,
        clock=container.clock,
        storage=container.storage,
        releases=container.releases,
        rate_limiter=container.rate_limiter,
        auditor=container.auditor,
        artifacts=container.artifacts,
        network_hash=container.pseudonyms.network,
    )
    redeem(service, bought.token)
    with pytest.raises(RateLimited):
        redeem(service, bought.token)


def test_grant_ttl_boundary_is_exclusive(
    container: Container, clock: FixedClock, release: Release, bought: Bought
) -> None:
    clock.advance(timedelta(hours=72) - timedelta(seconds=1))
    assert redeem(container.download_service, bought.token).remaining == 4
