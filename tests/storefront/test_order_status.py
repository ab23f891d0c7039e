import pytest

from commerce.domain.orders import OrderState
from commerce.storefront.order_status import InvalidSessionId, check_session_id, order_status
from tests.support.factories import key_service, purchase, session_id


@pytest.mark.parametrize(
    "candidate",
    ["", "cs_", "cs_short", "pi_test_1234567890", "cs_test_abc/../x", "cs_test_" + "a" * 300, None],
)
def test_a_session_id_of_the_wrong_shape_is_refused_before_any_lookup(candidate):
    with pytest.raises(InvalidSessionId):
        check_session_id(candidate)


def test_a_stripe_shaped_session_id_is_accepted():
    assert check_session_id("cs_test_a1B2c3D4e5F6g7") == "cs_test_a1B2c3D4e5F6g7"


def test_an_order_the_webhook_has_not_recorded_yet_reads_as_pending(container):
    status = order_status(container.orders, session_id(99))
    assert status.as_dict() == {"state": "pending", "email_masked": None}


@pytest.mark.parametrize("state", [OrderState.PAID, OrderState.FULFILLED, OrderState.REFUNDED])
def test_the_status_is_the_state_and_the_masked_address_only(container, state):
    bought = purchase(key_service(), state, email="jane@example.com", order_id=session_id(7))
    container.orders.put(bought.order)
    status = order_status(container.orders, session_id(7))
    assert status.as_dict() == {"state": state.value, "email_masked": "j***@example.com"}
