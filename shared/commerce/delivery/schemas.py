"""Request bodies of the delivery functions. Pure values: no SDK imports."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from commerce.email_queue import ResendTask


class EmailTaskRequest(BaseModel):
    """The body Cloud Tasks posts to `send_email`: an e-mail job's id, or a re-send
    request (`{"resend": ResendTask}`: a customer id, never an address)."""

    # Validator built on first use (the function is called once per e-mail job).
    model_config = ConfigDict(extra="forbid", frozen=True, defer_build=True)

    job_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,200}$")
    resend: ResendTask | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> EmailTaskRequest:
        if (self.job_id is None) == (self.resend is None):
            raise ValueError("give exactly one of job_id or resend")
        return self
