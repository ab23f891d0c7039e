"""Pure license rules: standing of a license, choosing an update. Values in, values out."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from commerce.domain.models import Entitlement, License
from commerce.domain.releases import Release, SemVer, latest
from commerce.licensing.schemas import StatusCode

_STATUS_CODES = {
    Entitlement.ENTITLED: StatusCode.VALID,
    Entitlement.ORDER_REFUNDED: StatusCode.REFUNDED,
    Entitlement.ORDER_DISPUTED: StatusCode.DISPUTED,
    Entitlement.LICENSE_SUSPENDED: StatusCode.DISPUTED,
    Entitlement.ORDER_REVOKED: StatusCode.REVOKED,
    Entitlement.LICENSE_REVOKED: StatusCode.REVOKED,
    Entitlement.ORDER_NOT_ENTITLED: StatusCode.REVOKED,
}


def standing(license_: License) -> StatusCode:
    """What the license is worth right now, as the license API answers it: the license's
    entitlement (`License.entitlement`, the rule download links follow too) from its
    own document: the order's state, mirrored on the license by every change of it, and
    the license's status. Read on every call, so a refund, a lost dispute or a
    revocation takes effect on the next validation or update check.
    """
    return _STATUS_CODES[license_.entitlement()]


@dataclass(frozen=True)
class UpdateChoice:
    offer: Release | None  # newest entitled, non-yanked release newer than the current one
    channel_latest: Release | None  # what a download link of this channel serves
    upgrade: Release | None  # newest release of a major the license is not entitled to

    @property
    def link_serves_offer(self) -> bool:
        return (
            self.offer is not None
            and self.channel_latest is not None
            and self.channel_latest.version == self.offer.version
        )


def choose_update(
    releases: Iterable[Release],
    *,
    current_version: str,
    platform: str,
    channel: str,
    entitled_majors: Iterable[int],
) -> UpdateChoice:
    """Yanked releases are never offered; only releases with a file for `platform`."""
    current = SemVer.parse(current_version).sort_key()
    majors = set(entitled_majors)
    in_channel = [r for r in releases if r.channel == channel and not r.yanked]
    newer = [
        r for r in in_channel if r.file_for(platform) is not None and r.semver.sort_key() > current
    ]
    entitled = [r for r in newer if r.semver.major in majors]
    not_entitled = [r for r in newer if r.semver.major not in majors]
    return UpdateChoice(
        offer=max(entitled, key=lambda r: r.semver.sort_key()) if entitled else None,
        channel_latest=latest(in_channel, channel),
        upgrade=max(not_entitled, key=lambda r: r.semver.sort_key()) if not_entitled else None,
    )
