"""E-mail over SMTP (smtplib in a worker thread: one message at a time is enough here)."""

from __future__ import annotations

import asyncio
import smtplib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import make_msgid

from notifications.channels import ChannelFailure
from notifications.domain.kinds import Channel
from notifications.domain.texts import Rendered


@dataclass
class SmtpMail:
    host: str
    port: int
    sender: str
    username: str
    starttls: bool
    timeout: float
    password: str = field(default="", repr=False)
    channel: Channel = "email"
    provider: str = "smtp"

    async def send(self, address: str, rendered: Rendered) -> str:
        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = address
        message["Subject"] = rendered.title
        message["Message-ID"] = make_msgid(domain=self.sender.rpartition("@")[2] or None)
        message.set_content(rendered.text)
        return await asyncio.to_thread(self._send, message)

    def _send(self, message: EmailMessage) -> str:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                smtp.ehlo()
                if self.starttls and smtp.has_extn("starttls"):
                    smtp.starttls()
                    smtp.ehlo()
                if self.username:
                    smtp.login(self.username, self.password)
                smtp.send_message(message)
        except smtplib.SMTPResponseException as error:
            # 4xx: the server may take it later; 5xx: it will not.
            raise ChannelFailure(
                f"SMTP {error.smtp_code} {error.smtp_error!r}", retryable=error.smtp_code < 500
            ) from error
        except smtplib.SMTPRecipientsRefused as error:
            raise ChannelFailure(
                f"recipient refused: {error.recipients!r}", retryable=False
            ) from error
        except (OSError, smtplib.SMTPException) as error:
            raise ChannelFailure(f"unreachable: {type(error).__name__}", retryable=True) from error
        return f"accepted Message-ID={message['Message-ID']}"

    async def aclose(self) -> None:
        return None
