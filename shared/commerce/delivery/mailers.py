"""Mail providers behind one small port: SMTP (local, maildev) and SendGrid (cloud).

Each adapter sorts provider failures into two kinds, which decide what the worker
does: `MailTransient` (timeouts, connection errors, 4xx SMTP replies, HTTP 5xx and
429) is retried by Cloud Tasks; `MailPermanent` (invalid address, 5xx SMTP replies,
other HTTP 4xx) marks the job failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid, parseaddr
from typing import Any, Protocol

from commerce.domain.email_address import usable_address
from commerce.logs import redact_text


class MailError(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = redact_text(reason)[:300]
        super().__init__(self.reason)


class MailTransient(MailError):
    """Worth retrying later."""


class MailPermanent(MailError):
    """Retrying will not help (bad address, rejected by the provider)."""


@dataclass(frozen=True)
class OutgoingEmail:
    sender: str
    to: str
    subject: str
    text: str
    html: str
    reply_to: str | None = None
    job_id: str | None = None


class Mailer(Protocol):
    def send(self, message: OutgoingEmail) -> str:
        """Send; return the provider's message id. Raise MailTransient / MailPermanent."""
        ...


def check_address(address: str) -> str:
    """The recipient as the shop's validator normalizes it (`domain.email_address`);
    an unusable one (CR/LF, no domain...) is a permanent failure with that reason,
    never an error from the MIME layer."""
    usable = usable_address(address)
    if usable is None:
        raise MailPermanent("the recipient address is not valid")
    return usable


def to_mime(message: OutgoingEmail) -> EmailMessage:
    mime = EmailMessage()
    mime["From"] = message.sender
    mime["To"] = check_address(message.to)
    mime["Subject"] = message.subject
    if message.reply_to:
        mime["Reply-To"] = message.reply_to
    domain = parseaddr(message.sender)[1].partition("@")[2] or "localhost"
    mime["Message-ID"] = make_msgid(idstring=message.job_id, domain=domain)
    mime.set_content(message.text)
    mime.add_alternative(message.html, subtype="html")
    return mime


class SmtpMailer:
    def __init__(self, host: str, port: int, *, timeout: float = 20.0) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout

    def send(self, message: OutgoingEmail) -> str:
        import smtplib  # only the worker that sends loads it (not the sweeper)

        mime = to_mime(message)  # checks the recipient first
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.send_message(mime)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if all(400 <= code < 500 for code in codes):
                raise MailTransient(f"recipient deferred: {codes}") from None
            raise MailPermanent(f"recipient refused: {codes}") from None
        except smtplib.SMTPResponseException as exc:
            if 400 <= exc.smtp_code < 500:
                raise MailTransient(f"SMTP {exc.smtp_code}") from None
            raise MailPermanent(f"SMTP {exc.smtp_code}") from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise MailTransient(f"SMTP unavailable: {type(exc).__name__}") from None
        return str(mime["Message-ID"])


class SendGridMailer:
    """SendGrid's v3 mail/send through the official client (host overridable for tests)."""

    def __init__(self, api_key: str, *, host: str = "", timeout: float = 20.0) -> None:
        from sendgrid import SendGridAPIClient

        kwargs: dict[str, Any] = {"host": host} if host else {}
        self.client = SendGridAPIClient(api_key, **kwargs)
        self.client.client.timeout = timeout

    def send(self, message: OutgoingEmail) -> str:
        from python_http_client.exceptions import HTTPError
        from sendgrid.helpers.mail import Content, From, Mail, ReplyTo, To

        to = check_address(message.to)
        sender_name, sender_email = parseaddr(message.sender)
        mail = Mail(
            from_email=From(sender_email, sender_name or None),
            to_emails=To(to),
            subject=message.subject,
        )
        mail.add_content(Content("text/plain", message.text))
        mail.add_content(Content("text/html", message.html))
        if message.reply_to:
            mail.reply_to = ReplyTo(parseaddr(message.reply_to)[1])
        try:
            response = self.client.send(mail)
        except HTTPError as exc:
            status = int(getattr(exc, "status_code", 0) or 0)
            if status == 429 or status >= 500:
                raise MailTransient(f"SendGrid HTTP {status}") from None
            raise MailPermanent(f"SendGrid HTTP {status}") from None
        except (TimeoutError, OSError) as exc:
            raise MailTransient(f"SendGrid unreachable: {type(exc).__name__}") from None
        headers = getattr(response, "headers", None) or {}
        message_id = headers.get("X-Message-Id") if hasattr(headers, "get") else None
        return str(message_id or "")
