"""Errors a caller can act on, as the domain and the operations raise them.

They know nothing of HTTP: ``prepaid_common.http_errors`` maps each kind to a status code
at the edge, so a domain module can raise them without importing a web framework.
"""

from __future__ import annotations


class ServiceError(Exception):
    """An error a caller can act on; carries a human detail and a stable code."""

    code = "bad_request"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ServiceError):
    """The thing asked for does not exist (or is not the caller's to see)."""

    code = "not_found"


class Conflict(ServiceError):
    """The request contradicts the current state (a duplicate, a rule the state forbids)."""

    code = "conflict"


class Invalid(ServiceError):
    """The request is well-formed but breaks a rule of its own."""

    code = "invalid"


class Unauthorized(ServiceError):
    """No valid credentials."""

    code = "unauthorized"


class Forbidden(ServiceError):
    """Valid credentials that may not do this."""

    code = "forbidden"


class Unavailable(ServiceError):
    """A dependency cannot be reached now; the same request may succeed later."""

    code = "unavailable"


class BadGateway(ServiceError):
    """A service behind this one failed."""

    code = "bad_gateway"


class TimedOut(ServiceError):
    """Something behind this service (a meter, a provider) did not answer in time."""

    code = "timed_out"


class TooManyRequests(ServiceError):
    """Refused for now: the caller tried too often; it may try again after a while."""

    code = "too_many_requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = retry_after
