"""Signing in and out, who a token belongs to, and changing one's own password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import OAuth2PasswordRequestForm
from prepaid_common.contracts.api.gateway import Me, PasswordChange, Token

from gateway.api.deps import CurrentUser, Operations

router = APIRouter(tags=["auth"])


@router.post("/auth/token")
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], operations: Operations, request: Request
) -> Token:
    """Exchange a user name and password for a bearer token.

    Failed attempts slow down the address they come from (429 with Retry-After), never the
    user from elsewhere."""
    # Behind a proxy the address is the client's only if the proxy is trusted (uvicorn's
    # --forwarded-allow-ips / FORWARDED_ALLOW_IPS); see docs/api.md.
    address = request.client.host if request.client else ""
    return await operations.log_in(username=form.username, password=form.password, address=address)


@router.post("/auth/logout", status_code=204)
async def logout(principal: CurrentUser, operations: Operations) -> Response:
    """Revoke every token of the caller (signed out everywhere)."""
    await operations.log_out(username=principal.username)
    return Response(status_code=204)


@router.get("/me")
async def me(principal: CurrentUser) -> Me:
    """Who the token belongs to."""
    return Me(
        username=principal.username,
        role=principal.role,
        account_ids=sorted(principal.account_ids),
    )


@router.post("/me/password", status_code=204)
async def change_my_password(
    principal: CurrentUser, operations: Operations, body: PasswordChange
) -> Response:
    """Change one's own password; every token of the user, this one too, stops working."""
    await operations.change_password(
        username=principal.username,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    return Response(status_code=204)
