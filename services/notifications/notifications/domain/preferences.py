"""Who hears what on which channel: a recipient's contacts, channels per kind, opt-out."""

from __future__ import annotations

from dataclasses import dataclass, field

from notifications.domain.kinds import CHANNELS, Channel, Kind


@dataclass(frozen=True)
class Contacts:
    phones: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    openids: tuple[str, ...] = ()

    def addresses(self, channel: Channel) -> tuple[str, ...]:
        return {"sms": self.phones, "email": self.emails, "wechat": self.openids}[channel]


@dataclass(frozen=True)
class Preferences:
    contacts: Contacts = Contacts()
    opted_out: bool = False
    # A kind absent here goes to every channel the recipient has an address for; an empty
    # list turns the kind off.
    channels: dict[Kind, tuple[Channel, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Target:
    channel: Channel
    address: str


def targets(kind: Kind, preferences: Preferences, enabled: frozenset[Channel]) -> list[Target]:
    """Return where a message of ``kind`` goes (none when opted out)."""
    if preferences.opted_out:
        return []
    wanted = preferences.channels.get(kind, CHANNELS)
    return [
        Target(channel, address)
        for channel in CHANNELS
        if channel in wanted and channel in enabled
        for address in preferences.contacts.addresses(channel)
    ]
