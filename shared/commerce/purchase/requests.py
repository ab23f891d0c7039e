"""The body the checkout function accepts: a pydantic model that refuses unknown
fields. Apart from `purchase.schemas` so that only the function that parses it builds
it (docs/performance.md, "Cold start"); reconcile's body is in `purchase.reconciliation`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from commerce.domain.email_address import check_address

Locale = Literal["en", "de"]
_REF = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$"
# A per-click random id from the storefront: 16 random bytes base64url-encoded are 22
# characters; anything shorter could be guessed or shared, anything longer is not ours.
CLICK_ID_PATTERN = r"^[A-Za-z0-9_-]{22,64}$"


class CheckoutRequest(BaseModel):
    """What the storefront (script or plain form) sends to start a purchase."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    email: StrictStr | None = Field(default=None, max_length=254)
    locale: Locale = "en"
    ref: StrictStr | None = Field(default=None, pattern=_REF)
    # Made fresh by the page for each click on Buy (site.js, or the form's inline
    # script); retries of that click carry it again. Absent (no script ran): no
    # idempotency key at all, never one shared with other buyers.
    click_id: StrictStr | None = Field(default=None, pattern=CLICK_ID_PATTERN)

    @field_validator("email")
    @classmethod
    def _email_shape(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        checked = check_address(value)  # the same rule as on arrival from Stripe
        if checked.address is None:
            raise ValueError("not a valid e-mail address")
        return checked.address
