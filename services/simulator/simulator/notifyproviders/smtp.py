"""A small SMTP server (RFC 5321 as far as a sender needs: EHLO/HELO, AUTH PLAIN and
LOGIN, MAIL, RCPT, DATA, RSET, NOOP, QUIT) that keeps every message it accepts."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from typing import Any


class FakeSmtpServer:
    """Accepts mail on a socket; checks the credentials when it has any."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        username: str = "",
        password: str = "",
        received: list[dict[str, Any]] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        # Shared with the HTTP fakes' record when given, so GET /received shows mail too.
        self.received = received if received is not None else []
        self.server: asyncio.Server | None = None
        # How many next messages answer 451 (a temporary failure), for retry tests.
        self.faults = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._session, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            with contextlib.suppress(Exception):
                await self.server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        authenticated = not self.username
        sender: str | None = None
        recipients: list[str] = []
        try:
            await say("220 fake-smtp ESMTP ready")
            while True:
                raw = await reader.readline()
                if not raw:
                    return
                line = raw.decode(errors="replace").rstrip("\r\n")
                verb, _, argument = line.partition(" ")
                verb = verb.upper()
                if verb == "EHLO":
                    await say("250-fake-smtp greets you")
                    await say("250-AUTH PLAIN LOGIN")
                    await say("250 8BITMIME")
                elif verb == "HELO":
                    await say("250 fake-smtp")
                elif verb == "AUTH":
                    authenticated = await self._auth(argument, reader, say)
                elif verb == "MAIL":
                    if not authenticated:
                        await say("530 5.7.0 Authentication required")
                        continue
                    sender = argument.partition(":")[2].strip().split(" ")[0].strip("<>")
                    recipients = []
                    await say("250 OK")
                elif verb == "RCPT":
                    if sender is None:
                        await say("503 5.5.1 MAIL first")
                        continue
                    recipients.append(argument.partition(":")[2].strip().strip("<>"))
                    await say("250 OK")
                elif verb == "DATA":
                    if not recipients:
                        await say("503 5.5.1 RCPT first")
                        continue
                    await say("354 End data with <CR><LF>.<CR><LF>")
                    data = await self._data(reader)
                    if self.faults > 0:
                        self.faults -= 1
                        await say("451 4.3.0 Try again later")
                    else:
                        self._keep(sender or "", recipients, data)
                        await say("250 OK queued")
                    sender, recipients = None, []
                elif verb == "RSET":
                    sender, recipients = None, []
                    await say("250 OK")
                elif verb == "NOOP":
                    await say("250 OK")
                elif verb == "QUIT":
                    await say("221 Bye")
                    return
                else:
                    await say("502 5.5.2 Command not implemented")
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _auth(self, argument: str, reader: asyncio.StreamReader, say: Any) -> bool:
        mechanism, _, initial = argument.partition(" ")
        mechanism = mechanism.upper()
        if mechanism == "PLAIN":
            if not initial:
                await say("334 ")
                initial = (await reader.readline()).decode().strip()
            parts = base64.b64decode(initial).split(b"\0")
            user, password = (parts[1], parts[2]) if len(parts) == 3 else (b"", b"")
        elif mechanism == "LOGIN":
            if initial:
                user = base64.b64decode(initial)
            else:
                await say("334 VXNlcm5hbWU6")
                user = base64.b64decode((await reader.readline()).strip())
            await say("334 UGFzc3dvcmQ6")
            password = base64.b64decode((await reader.readline()).strip())
        else:
            await say("504 5.5.4 Unrecognized authentication type")
            return False
        if user.decode() == self.username and hmac.compare_digest(password, self.password.encode()):
            await say("235 2.7.0 Authentication successful")
            return True
        await say("535 5.7.8 Authentication credentials invalid")
        return False

    @staticmethod
    async def _data(reader: asyncio.StreamReader) -> bytes:
        lines: list[bytes] = []
        while True:
            raw = await reader.readline()
            if raw in (b".\r\n", b".\n", b""):
                return b"".join(lines)
            lines.append(raw[1:] if raw.startswith(b"..") else raw)

    def _keep(self, sender: str, recipients: list[str], data: bytes) -> None:
        message = message_from_bytes(data, policy=default)
        body = message.get_body(preferencelist=("plain",))
        self.received.append(
            {
                "provider": "smtp",
                "at": datetime.now(UTC).isoformat(),
                "from": sender,
                "to": recipients,
                "subject": str(message.get("Subject", "")),
                "text": body.get_content() if body is not None else "",
            }
        )
