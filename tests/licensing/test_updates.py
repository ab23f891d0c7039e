"""The update check against the Firestore emulator: entitled, non-yanked releases only,
the signed manifest, and a fresh short-lived download grant per offer; only for an
activated machine, and only from the license's own channel (beta by opt-in)."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta

import pytest

from commerce.bootstrap import Container
from commerce.clock import FixedClock
from commerce.domain.orders import OrderState
from commerce.domain.releases import Release, ReleaseFile, manifest_bytes, manifest_for
from commerce.domain.tokens import hash_token
from commerce.licensing.schemas import StatusCode
from commerce.signing import public_key_from_b64, verify
from tests.licensing.conftest import PUBLIC_BASE, Bought, Plugin, buy, machine

pytestmark = pytest.mark.emulators
PLATFORM = "linux-x86_64"


def add_release(
    container: Container,
    version: str,
    *,
    channel: str = "stable",
    platforms: tuple[str, ...] = (PLATFORM,),
    yanked: bool = False,
) -> Release:
    """A release record as the publisher writes it (manifest hash and signature)."""
    files = tuple(
        ReleaseFile(
            name=f"genx-{version}-{platform}.tar.gz",
            platform=platform,
            size=1000 + n,
            sha256=hashlib.sha256(f"{version}/{platform}".encode()).hexdigest(),
            object_name=f"releases/{version}/genx-{version}-{platform}.tar.gz",
        )
        for n, platform in enumerate(platforms)
    )
    published_at = container.clock.now()
    body = manifest_bytes(manifest_for(version, channel, files, published_at))
    release = Release(
        id=version,
        version=version,
        channel=channel,
        files=files,
        published_at=published_at,
        yanked=yanked,
        manifest_sha256=hashlib.sha256(body).hexdigest(),
        signature=container.signer.sign(body),
    )
    container.releases.create(release)
    return release


@pytest.fixture
def ours(plugin: Plugin, bought: Bought) -> str:
    """The fingerprint of a machine activated for `bought` (offers need one)."""
    assert plugin.activate(bought.key, machine(1)).status is StatusCode.VALID
    return machine(1)


def test_a_newer_entitled_release_is_offered_with_its_signed_manifest_and_a_fresh_link(
    container: Container, plugin: Plugin, bought: Bought, ours: str, clock: FixedClock
) -> None:
    add_release(container, "1.0.0")
    newer = add_release(container, "1.1.0", platforms=(PLATFORM, "windows-x86_64"))

    answer = plugin.updates(
        key=bought.key, fingerprint=ours, current_version="1.0.0", platform=PLATFORM
    )

    assert answer.status is StatusCode.VALID
    assert answer.fields["update_available"] is True
    update = answer.fields["update"]
    assert update["version"] == "1.1.0"
    file = newer.file_for(PLATFORM)
    assert file is not None
    assert update["file"] == {
        "name": file.name,
        "platform": PLATFORM,
        "size": file.size,
        "sha256": file.sha256,
    }
    manifest = update["manifest"].encode()
    public_key = public_key_from_b64(container.signer.public_key_b64())
    assert verify(public_key, manifest, update["manifest_signature"])
    listed = {f["name"]: f for f in json.loads(manifest)["files"]}
    assert listed[file.name]["sha256"] == file.sha256
    assert listed[file.name]["size"] == file.size

    link = update["download"]
    assert link["url"].startswith(f"{PUBLIC_BASE}/d/")
    assert link["url"].endswith(f"?platform={PLATFORM}")
    assert bought.key not in link["url"]
    token = link["url"].split("/d/", 1)[1].split("?", 1)[0]
    grant = container.download_tokens.get(hash_token(token))
    assert grant is not None
    assert grant.license_id == bought.license_id
    assert grant.expires_at == clock.now() + timedelta(hours=1)
    assert grant.max_redemptions == link["max_redemptions"] == 3
    assert link["expires_at"] == int(grant.expires_at.timestamp())


def test_every_offer_gets_its_own_grant(
    container: Container, plugin: Plugin, bought: Bought, ours: str
) -> None:
    add_release(container, "1.1.0")

    first = plugin.updates(key=bought.key, fingerprint=ours).fields["update"]["download"]["url"]
    second = plugin.updates(key=bought.key, fingerprint=ours).fields["update"]["download"]["url"]

    assert first != second
    offered = container.audit_log.recent(action="license.update_offered")
    assert len(offered) == 2


def test_the_current_version_gets_no_offer(
    container: Container, plugin: Plugin, bought: Bought, ours: str
) -> None:
    add_release(container, "1.1.0")

    answer = plugin.updates(key=bought.key, fingerprint=ours, current_version="1.1.0")

    assert answer.status is StatusCode.VALID
    assert answer.fields == {"update_available": False, "update": None, "upgrade": None}


def test_yanked_releases_are_never_offered(
    container: Container, plugin: Plugin, bought: Bought, ours: str
) -> None:
    add_release(container, "1.0.5")
    add_release(container, "1.1.0", yanked=True)

    update = plugin.updates(key=bought.key, fingerprint=ours).fields["update"]

    assert update["version"] == "1.0.5"
    assert update["download"] is not None


def test_a_platform_without_a_file_gets_no_offer(
    container: Container, plugin: Plugin, bought: Bought, ours: str
) -> None:
    add_release(container, "1.1.0", platforms=("windows-x86_64",))

    assert plugin.updates(key=bought.key, fingerprint=ours).fields["update_available"] is False


def test_a_major_version_outside_the_entitlement_is_named_as_an_upgrade_only(
    container: Container, plugin: Plugin, bought: Bought, ours: str
) -> None:
    add_release(container, "1.1.0")
    add_release(container, "2.0.0")

    answer = plugin.updates(key=bought.key, fingerprint=ours)

    assert answer.fields["upgrade"] == {"version": "2.0.0"}
    update = answer.fields["update"]
    assert update["version"] == "1.1.0"
    # A download link serves the channel's latest release (2.0.0), so none is given
    # for 1.1.0 until grants can name a version (reported to the delivery feature).
    assert update["download"] is None


def test_a_license_entitled_to_two_majors_is_offered_the_newest(
    container: Container, plugin: Plugin
) -> None:
    bought = buy(container, entitled_major_versions=(1, 2))
    plugin.activate(bought.key, machine(1))
    add_release(container, "1.1.0")
    add_release(container, "2.0.0")

    update = plugin.updates(key=bought.key, fingerprint=machine(1)).fields["update"]

    assert update["version"] == "2.0.0"
    assert update["download"] is not None


def test_the_beta_channel_is_refused_without_the_licenses_opt_in(
    container: Container, plugin: Plugin, bought: Bought, ours: str
) -> None:
    add_release(container, "1.1.0")
    add_release(container, "1.2.0-beta.1", channel="beta")
    grants_before = len(container.download_tokens.by_order(bought.order_id))

    stable = plugin.updates(key=bought.key, fingerprint=ours).fields["update"]
    beta = plugin.updates(key=bought.key, fingerprint=ours, channel="beta")

    assert stable["version"] == "1.1.0"
    assert beta.status is StatusCode.CHANNEL_NOT_ALLOWED
    assert beta.fields == {}
    assert len(container.download_tokens.by_order(bought.order_id)) == grants_before + 1


def test_a_channel_the_license_does_not_have_is_refused(
    container: Container, plugin: Plugin, bought: Bought, ours: str
) -> None:
    add_release(container, "1.2.0-nightly.1", channel="nightly")

    answer = plugin.updates(key=bought.key, fingerprint=ours, channel="nightly")

    assert answer.status is StatusCode.CHANNEL_NOT_ALLOWED


def test_a_license_opted_in_by_support_gets_the_beta_channel(
    container: Container, plugin: Plugin, bought: Bought, ours: str
) -> None:
    add_release(container, "1.1.0")
    add_release(container, "1.2.0-beta.1", channel="beta")
    container.license_support.set_beta(bought.license_id, on=True, actor="support:test")

    stable = plugin.updates(key=bought.key, fingerprint=ours).fields["update"]
    beta = plugin.updates(key=bought.key, fingerprint=ours, channel="beta").fields["update"]
    container.license_support.set_beta(bought.license_id, on=False, actor="support:test")
    after_opt_out = plugin.updates(key=bought.key, fingerprint=ours, channel="beta")

    assert stable["version"] == "1.1.0"
    assert beta["version"] == "1.2.0-beta.1"
    assert beta["download"] is not None
    token = beta["download"]["url"].split("/d/", 1)[1].split("?", 1)[0]
    grant = container.download_tokens.get(hash_token(token))
    assert grant is not None
    assert grant.channel == "beta"
    assert after_opt_out.status is StatusCode.CHANNEL_NOT_ALLOWED
    opted_in = container.audit_log.recent(action="license.beta_opt_in")
    opted_out = container.audit_log.recent(action="license.beta_opt_out")
    assert [(e.license_id, e.actor) for e in opted_in + opted_out] == [
        (bought.license_id, "support:test")
    ] * 2


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        (OrderState.REFUNDED, StatusCode.REFUNDED),
        (OrderState.DISPUTED, StatusCode.DISPUTED),
        (OrderState.REVOKED, StatusCode.REVOKED),
    ],
)
def test_a_license_that_is_not_in_good_standing_gets_no_links(
    container: Container, plugin: Plugin, state: OrderState, expected: StatusCode
) -> None:
    bought = buy(container, state)
    add_release(container, "1.1.0")
    grants_before = len(container.download_tokens.by_order(bought.order_id))

    answer = plugin.updates(key=bought.key)

    assert answer.status is expected
    assert answer.fields == {}
    assert len(container.download_tokens.by_order(bought.order_id)) == grants_before


def test_updates_by_certificate_follow_the_live_activation(
    container: Container, plugin: Plugin, bought: Bought
) -> None:
    add_release(container, "1.1.0")
    certificate = plugin.activate(bought.key, machine(1)).fields["certificate"]

    by_certificate = plugin.updates(certificate=certificate, fingerprint=machine(1))
    plugin.deactivate(bought.key, fingerprint=machine(1))
    after_deactivation = plugin.updates(certificate=certificate)

    assert by_certificate.status is StatusCode.VALID
    assert by_certificate.fields["update"]["download"] is not None
    assert after_deactivation.status is StatusCode.NO_ACTIVATION


def test_a_forged_certificate_learns_only_not_found(
    container: Container, plugin: Plugin, bought: Bought
) -> None:
    certificate = plugin.activate(bought.key, machine(1)).fields["certificate"]
    prefix, payload, signature = certificate.split(".")
    forged = ".".join([prefix, payload, ("A" if signature[0] != "A" else "B") + signature[1:]])

    assert plugin.updates(certificate=forged).status is StatusCode.NOT_FOUND


def test_a_fingerprint_that_is_not_activated_gets_no_offer(
    container: Container, plugin: Plugin, bought: Bought
) -> None:
    add_release(container, "1.1.0")

    answer = plugin.updates(key=bought.key, fingerprint=machine(7))

    assert answer.status is StatusCode.NO_ACTIVATION


def test_a_key_without_an_activated_machine_gets_no_offer_and_no_link(
    container: Container, plugin: Plugin, bought: Bought
) -> None:
    add_release(container, "1.1.0")

    answer = plugin.updates(key=bought.key)

    assert answer.status is StatusCode.NO_ACTIVATION
    assert answer.fields == {}
    assert container.audit_log.recent(action="license.update_offered") == []
