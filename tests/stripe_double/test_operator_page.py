"""The double's operator page (`/_double/`): each session's state in words, only the
actions the double would accept for it, successes as notices and refusals as alerts."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import requests
import stripe

from .conftest import Double

BUTTONS = (">Refund</button>", ">Open dispute</button>", ">Close dispute as won</button>")


def row_of(stripe_double: Double, session_id: str) -> str:
    page = requests.get(f"{stripe_double.url}/_double/", timeout=10).text
    (row,) = [chunk for chunk in page.split("<tr>") if f"<code>{session_id}</code>" in chunk]
    return row


def act(stripe_double: Double, path: str, **form: str) -> requests.Response:
    """Submit an operator-page form and follow its redirect back to the page."""
    answer = requests.post(
        f"{stripe_double.url}/_double/{path}",
        data={"redirect": "1", **form},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303
    return requests.get(stripe_double.url + answer.headers["Location"], timeout=10)


def notice(page: requests.Response) -> str | None:
    found = re.search(r'<p class="notice" role="status">([^<]*)</p>', page.text)
    return found.group(1) if found else None


def alert(page: requests.Response) -> str | None:
    found = re.search(r'<p class="alert" role="alert">([^<]*)</p>', page.text)
    return found.group(1) if found else None


def test_a_paid_session_offers_refund_and_dispute(
    stripe_double: Double, open_session: stripe.checkout.Session
) -> None:
    before = row_of(stripe_double, open_session.id)
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()

    row = row_of(stripe_double, open_session.id)

    assert "open: awaiting payment" in before
    assert "Open pay page" in before
    assert not any(button in before for button in BUTTONS)
    assert "<td>paid" in row
    assert ">Refund</button>" in row
    assert 'max="4900"' in row
    assert ">Open dispute</button>" in row
    assert "Open pay page" not in row


def test_after_a_full_refund_the_page_says_so_and_offers_nothing_more(
    stripe_double: Double, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()

    page = act(stripe_double, f"sessions/{open_session.id}/refund", amount="")
    row = row_of(stripe_double, open_session.id)

    assert alert(page) is None
    message = notice(page)
    assert message is not None
    assert re.fullmatch(r"Refund re_\w+ of 49\.00 EUR issued\.", message)
    assert "refunded in full" in row
    assert not any(button in row for button in BUTTONS)


def test_a_partial_refund_leaves_the_rest_refundable(
    stripe_double: Double, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()

    act(stripe_double, f"sessions/{open_session.id}/refund", amount="900")
    row = row_of(stripe_double, open_session.id)

    assert "paid, 9.00 EUR refunded" in row
    assert ">Refund</button>" in row
    assert 'max="4000"' in row


def test_an_open_dispute_can_only_be_closed_and_a_lost_one_offers_nothing(
    stripe_double: Double, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()

    opened = act(stripe_double, f"sessions/{open_session.id}/dispute")
    while_open = row_of(stripe_double, open_session.id)
    dispute_id = re.search(r"dispute <code>(\w+)</code>", while_open)
    assert dispute_id is not None
    act(stripe_double, f"disputes/{dispute_id.group(1)}/close", status="lost")
    after = row_of(stripe_double, open_session.id)

    assert notice(opened) == f"Dispute {dispute_id.group(1)} opened (fraudulent)."
    assert ">Close dispute as won</button>" in while_open
    assert ">Refund</button>" not in while_open  # the double refuses refunds while disputed
    assert ">Open dispute</button>" not in while_open
    assert f"dispute <code>{dispute_id.group(1)}</code>: lost" in after
    assert not any(button in after for button in BUTTONS)


def test_a_refused_action_is_an_alert_with_the_doubles_reason(
    stripe_double: Double, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()

    answer = requests.post(
        f"{stripe_double.url}/_double/sessions/{open_session.id}/refund",
        data={"redirect": "1", "amount": "999999"},
        allow_redirects=False,
        timeout=10,
    )
    page = requests.get(stripe_double.url + answer.headers["Location"], timeout=10)

    assert "error" in parse_qs(urlsplit(answer.headers["Location"]).query)
    assert notice(page) is None
    reason = alert(page)
    assert reason is not None
    assert reason.startswith("Refund amount (9999.99 EUR) is greater than unrefunded amount")


def test_a_paid_session_can_be_sent_an_early_fraud_warning(
    stripe_double: Double, open_session: stripe.checkout.Session
) -> None:
    stripe_double.control(f"sessions/{open_session.id}/pay", outcome="paid").raise_for_status()
    assert ">Send early fraud warning</button>" in row_of(stripe_double, open_session.id)

    page = act(stripe_double, f"sessions/{open_session.id}/early_fraud_warning")

    assert alert(page) is None
    message = notice(page)
    assert message is not None
    assert re.fullmatch(r"Early fraud warning issfr_\w+ \(made_with_stolen_card\) sent\.", message)
    (warned,) = stripe_double.events("radar.early_fraud_warning.created")
    assert warned["event"]["data"]["object"]["fraud_type"] == "made_with_stolen_card"
