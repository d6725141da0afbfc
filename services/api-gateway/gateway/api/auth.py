"""Signing in, and who a token belongs to."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import OAuth2PasswordRequestForm
from prepaid_common.contracts.api.gateway import Me, Token

from gateway.api.deps import CurrentUser, Operations

router = APIRouter(tags=["auth"])


@router.post("/auth/token")
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], operations: Operations
) -> Token:
    """Exchange a user name and password for a bearer token."""
    return await operations.log_in(username=form.username, password=form.password)


@router.get("/me")
async def me(principal: CurrentUser) -> Me:
    """Who the token belongs to."""
    return Me(
        username=principal.username,
        role=principal.role,
        account_ids=sorted(principal.account_ids),
    )
