"""Pure license rules: which state wins when the order's state (mirrored on the license)
and the license's own status disagree."""

from __future__ import annotations

import pytest

from commerce.domain.models import LicenseStatus
from commerce.domain.orders import OrderState
from commerce.licensing.rules import standing
from commerce.licensing.schemas import StatusCode
from tests.support import factories

KEYS = factories.key_service()


@pytest.mark.parametrize(
    ("order_state", "license_status", "expected"),
    [
        (OrderState.FULFILLED, LicenseStatus.ACTIVE, StatusCode.VALID),
        (OrderState.REFUNDED, LicenseStatus.REVOKED, StatusCode.REFUNDED),  # the order speaks
        (OrderState.REFUNDED, LicenseStatus.ACTIVE, StatusCode.REFUNDED),
        (OrderState.DISPUTED, LicenseStatus.ACTIVE, StatusCode.DISPUTED),
        (OrderState.FULFILLED, LicenseStatus.SUSPENDED, StatusCode.DISPUTED),
        (OrderState.REVOKED, LicenseStatus.REVOKED, StatusCode.REVOKED),  # lost dispute
        (OrderState.FULFILLED, LicenseStatus.REVOKED, StatusCode.REVOKED),  # support
        (OrderState.PAID, LicenseStatus.ACTIVE, StatusCode.REVOKED),  # not (yet) entitled
    ],
)
def test_standing_of_order_and_license(
    order_state: OrderState, license_status: LicenseStatus, expected: StatusCode
) -> None:
    order = factories.make_order(state=order_state)
    license_, _ = factories.make_license(KEYS, order, status=license_status)

    assert license_.order_state is order_state  # what fulfillment mirrors
    assert standing(license_) is expected
