"""What the public routes depend on, as ``Annotated`` aliases: who is calling, the services
behind the gateway, the gateway's own operations and the audit log in the caller's name."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from prepaid_common.contracts.identifiers import IDENTIFIER_PATTERN
from prepaid_common.errors import Forbidden, NotFound
from pydantic import BaseModel

from gateway.domain import Principal, scope_needed
from gateway.operations import API_KEY_PREFIX, GatewayOperations
from gateway.upstream import Upstream, Upstreams


@dataclass(frozen=True)
class ApiContext:
    """What the public app's dependencies need, kept on ``app.state.context``."""

    operations: GatewayOperations
    upstreams: Upstreams


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


Context = Annotated[ApiContext, Depends(_context)]


def _operations(context: Context) -> GatewayOperations:
    return context.operations


def _collector(context: Context) -> Upstream:
    return context.upstreams.collector


def _billing(context: Context) -> Upstream:
    return context.upstreams.billing


def _control(context: Context) -> Upstream:
    return context.upstreams.control


def _payments(context: Context) -> Upstream:
    return context.upstreams.payments


Operations = Annotated[GatewayOperations, Depends(_operations)]
Collector = Annotated[Upstream, Depends(_collector)]
Billing = Annotated[Upstream, Depends(_billing)]
Control = Annotated[Upstream, Depends(_control)]
Payments = Annotated[Upstream, Depends(_payments)]

# --- who is calling --------------------------------------------------------------------
bearer = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)
api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key (or send it as a bearer token)"
)


async def _current_user(
    request: Request,
    token: Annotated[str | None, Depends(bearer)],
    api_key: Annotated[str | None, Depends(api_key_header)],
    operations: Operations,
) -> Principal:
    key = api_key or (token if token and token.startswith(API_KEY_PREFIX) else None)
    if key is None:
        return await operations.principal_of_token(token=token)
    principal = await operations.principal_of_api_key(key=key)
    route = getattr(request.scope.get("route"), "path", "")
    needed = scope_needed(request.method, route)
    if principal.scopes is not None and needed not in principal.scopes:
        await _refused(
            request, operations, principal.username, f"this API key lacks the {needed!r} scope"
        )
    return principal


CurrentUser = Annotated[Principal, Depends(_current_user)]


async def _refused(request: Request, operations: GatewayOperations, who: str, why: str) -> None:
    # A refused attempt is audited (who tried what), then refused.
    await operations.record_refusal(
        actor=who, method=request.method, path=request.url.path, why=why
    )
    raise Forbidden(why)


async def _staff_user(
    request: Request, principal: CurrentUser, operations: Operations
) -> Principal:
    if not principal.is_staff:
        await _refused(request, operations, principal.username, "operators and admins only")
    return principal


async def _admin_user(
    request: Request, principal: CurrentUser, operations: Operations
) -> Principal:
    if principal.role != "admin":
        await _refused(request, operations, principal.username, "admins only")
    return principal


StaffUser = Annotated[Principal, Depends(_staff_user)]
AdminUser = Annotated[Principal, Depends(_admin_user)]


def ensure_visible(principal: Principal, account_id: str) -> None:
    """Refuse an account the caller may not see as if it did not exist."""
    # A tenant learns nothing about accounts that are not theirs: same answer as missing.
    if not principal.may_see_account(account_id):
        raise NotFound(f"account {account_id} does not exist")


def as_operator(body: BaseModel, principal: Principal) -> dict[str, Any]:
    """Return a request body for a service, signed by the caller as its operator."""
    # Whoever holds the token is the operator of record, whatever the body says.
    return {**body.model_dump(mode="json", exclude_unset=True), "operator": principal.username}


# --- the audit log ---------------------------------------------------------------------
@dataclass(frozen=True)
class Audit:
    """The audit log, written in the calling user's name."""

    operations: GatewayOperations
    actor: str

    async def record(
        self, action: str, target: str, detail: Mapping[str, Any] | None = None
    ) -> None:
        """Append an action the caller took on ``target``."""
        await self.operations.record_audit(
            actor=self.actor, action=action, target=target, detail=dict(detail or {})
        )


def _audit(principal: CurrentUser, operations: Operations) -> Audit:
    return Audit(operations=operations, actor=principal.username)


AuditLog = Annotated[Audit, Depends(_audit)]

# --- what a path names ------------------------------------------------------------------
# Checked once here, at the edge: an id the services could not take (a dot, a '#', a
# control character) is a 422 before anything is forwarded.
PathId = Annotated[
    str,
    Path(
        pattern=IDENTIFIER_PATTERN,
        description="An id: letters, digits, '_', '-' and ':' (1 to 64)",
        examples=["shop:12"],
    ),
]
# A statement month the calendar can close: 1970-01 to 2999-12.
Month = Annotated[
    str,
    Path(pattern=r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$", examples=["2026-11"]),
]

# --- lists -----------------------------------------------------------------------------
Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]
# Bounded so that no number a client sends overflows a database's integer.
Offset = Annotated[int, Query(ge=0, le=1_000_000, description="Items to skip")]
