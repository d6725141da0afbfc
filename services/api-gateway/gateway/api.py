"""Public REST API, version 1. Thin: authenticate, authorise, call the owning service."""

import time
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi.security import OAuth2PasswordBearer, OAuth2PasswordRequestForm
from prepaid_common.contracts.api.billing import (
    AccountChanges,
    HoldBody,
    OpenAccount,
    OperatorMoney,
    ReversalBody,
    ShedBody,
    SitePolicy,
    SwapMeter,
    TariffBody,
)
from prepaid_common.errors import Forbidden, NotFound, Unauthorized
from prepaid_common.http_errors import install_error_handlers
from prepaid_common.metrics import HTTP_REQUESTS, metrics_router
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from gateway.auth import Principal, Role, issue_token, read_token
from gateway.service import GatewayService
from gateway.tables import audit

Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
Limit = Annotated[int, Query(ge=1, le=500, description="Page size")]
Offset = Annotated[int, Query(ge=0, description="Items to skip")]


class TopUpBody(BaseModel):
    amount: Decimal = Field(
        gt=0, max_digits=12, decimal_places=2, description="Yuan, at most two decimals"
    )
    receipt: str = Field(
        min_length=1, max_length=64, pattern=r"^\S(.*\S)?$", description="Counter receipt number"
    )


class CommandBody(BaseModel):
    action: Literal["trip", "close"]
    reason: str = Field(default="operator command", max_length=400)


class BindingBody(BaseModel):
    meter_id: Id
    multiplier: Decimal = Field(default=Decimal(1), gt=0, max_digits=12, decimal_places=4)
    tariff_id: str | None = None
    local_prepaid: bool | None = Field(
        default=None,
        description="The meter keeps its own credit: top-ups are pushed to it as purchases",
    )
    local_price: Decimal | None = Field(
        default=None,
        ge=0,
        max_digits=10,
        decimal_places=4,
        description="Yuan per kWh the meter debits its own credit by",
    )


class MeterBody(BaseModel):
    id: Id
    # A Modbus unit id, or ``address``: a unit id as text or a 12-digit DL/T 645 address.
    unit_id: int | None = Field(default=None, ge=1, le=247)
    address: str | None = Field(default=None, pattern=r"^[0-9]{1,12}$")
    profile: str = Field(min_length=1, max_length=64)


class DtuBody(BaseModel):
    id: Id
    name: str = Field(min_length=1, max_length=200)
    # modbus-tcp and rtu-over-tcp are dialled at host:port; a dtu-client dials the collector.
    kind: Literal["modbus-tcp", "rtu-over-tcp", "dtu-client"] = "modbus-tcp"
    host: str | None = Field(default=None, min_length=1, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    registration: str | None = Field(default=None, max_length=40)
    registration_mode: Literal["once", "prefix"] | None = None
    heartbeat: str | None = Field(default=None, max_length=40)
    link_timeout_seconds: float | None = Field(default=None, gt=0)
    meters: list[MeterBody] = Field(default_factory=list, max_length=247)


class UserBody(BaseModel):
    username: Id
    password: str = Field(min_length=8, max_length=200)
    role: Role
    account_ids: list[Id] = Field(default_factory=list)


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int


def build_public_app(service: GatewayService) -> FastAPI:
    """Assemble the public app: routes, errors, metrics, health."""
    app = FastAPI(
        title="Prepaid metering API",
        version="1",
        description="Meters, accounts, ledgers, top-ups and relay commands.",
    )
    install_error_handlers(app)
    upstreams = service.upstreams
    settings = service.settings
    secret = settings.token_secret.get_secret_value()
    oauth2 = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)

    @app.middleware("http")
    async def measure(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        HTTP_REQUESTS.labels("gateway", request.method, path, str(response.status_code)).observe(
            time.perf_counter() - started
        )
        return response

    async def current(token: Annotated[str | None, Depends(oauth2)]) -> Principal:
        if not token:
            raise Unauthorized("missing bearer token")
        claims = read_token(token, secret=secret)
        if claims is None:
            raise Unauthorized("invalid or expired token")
        principal = await service.principal(*claims)
        if principal is None:
            raise Unauthorized("user no longer exists")
        return principal

    CurrentUser = Annotated[Principal, Depends(current)]  # noqa: N806

    def staff(principal: CurrentUser) -> Principal:
        if not principal.is_staff:
            raise Forbidden("operators and admins only")
        return principal

    StaffUser = Annotated[Principal, Depends(staff)]  # noqa: N806

    def admin(principal: CurrentUser) -> Principal:
        if principal.role != "admin":
            raise Forbidden("admins only")
        return principal

    AdminUser = Annotated[Principal, Depends(admin)]  # noqa: N806

    def visible_account(principal: Principal, account_id: str) -> None:
        # A tenant learns nothing about accounts that are not theirs: same answer as missing.
        if not principal.may_see_account(account_id):
            raise NotFound(f"account {account_id} does not exist")

    api = APIRouter(prefix="/api/v1")

    # --- auth --------------------------------------------------------------------------
    @api.post("/auth/token", tags=["auth"])
    async def login(form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> Token:
        """Exchange a user name and password for a bearer token."""
        if service.throttle.blocked(form.username):
            raise Unauthorized("too many failed logins; try again later")
        principal = await service.authenticate(form.username, form.password)
        if principal is None:
            service.throttle.failed(form.username)
            raise Unauthorized("wrong user name or password")
        service.throttle.succeeded(form.username)
        ttl = timedelta(minutes=settings.token_ttl_minutes)
        token = issue_token(
            username=principal.username, role=principal.role, secret=secret, ttl=ttl
        )
        return Token(access_token=token, expires_in=int(ttl.total_seconds()))

    @api.get("/me", tags=["auth"])
    async def me(principal: CurrentUser) -> dict[str, Any]:
        """Who the token belongs to."""
        return {
            "username": principal.username,
            "role": principal.role,
            "account_ids": sorted(principal.account_ids),
        }

    # --- meters ------------------------------------------------------------------------
    async def with_accounts(meter_views: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not meter_views:
            return []
        bindings = await upstreams.billing.get(
            "/internal/meter-bindings", meter_ids=",".join(m["id"] for m in meter_views)
        )
        owner = {b["meter_id"]: b["account_id"] for b in bindings["items"]}
        return [{**m, "account_id": owner.get(m["id"])} for m in meter_views]

    @api.get("/meters", tags=["meters"])
    async def list_meters(principal: CurrentUser, limit: Limit = 50, offset: Offset = 0) -> Any:
        """List meters with their relay, link state and last reading (tenants: their own)."""
        ids: str | None = None
        if not principal.is_staff:
            if not principal.account_ids:
                return {"items": [], "total": 0, "limit": limit, "offset": offset}
            bindings = await upstreams.billing.get(
                "/internal/meter-bindings", account_ids=",".join(sorted(principal.account_ids))
            )
            ids = ",".join(b["meter_id"] for b in bindings["items"])
            if not ids:
                return {"items": [], "total": 0, "limit": limit, "offset": offset}
        page = await upstreams.collector.get(
            "/internal/meters", limit=limit, offset=offset, ids=ids
        )
        page["items"] = await with_accounts(page["items"])
        return page

    async def meter_for(principal: Principal, meter_id: str) -> dict[str, Any]:
        meter = (
            await with_accounts([await upstreams.collector.get(f"/internal/meters/{meter_id}")])
        )[0]
        if not principal.is_staff and meter["account_id"] not in principal.account_ids:
            raise NotFound(f"meter {meter_id} does not exist")
        return meter

    @api.get("/meters/{meter_id}", tags=["meters"])
    async def get_meter(principal: CurrentUser, meter_id: str) -> Any:
        """One meter."""
        return await meter_for(principal, meter_id)

    @api.post("/meters/read-all", tags=["meters"], status_code=202)
    async def read_all_meters_now(principal: StaffUser) -> Any:
        """Read every meter now, ahead of the polling cycles (on every collector)."""
        _, queued = await upstreams.collector.post("/internal/read-all", json=None)
        await service.record(principal.username, "meters.read_all", "*", queued)
        return queued

    @api.post("/meters/{meter_id}/read", tags=["meters"])
    async def read_meter_now(principal: StaffUser, meter_id: str) -> Any:
        """Read a meter now, ahead of its polling cycle."""
        _, meter = await upstreams.collector.post(f"/internal/meters/{meter_id}/read", json=None)
        return (await with_accounts([meter]))[0]

    @api.post("/meters/{meter_id}/commands", tags=["meters"], status_code=202)
    async def command_meter(principal: StaffUser, meter_id: str, body: CommandBody) -> Any:
        """Trip (open) or close a meter's relay."""
        await upstreams.collector.get(f"/internal/meters/{meter_id}")
        _, command = await upstreams.control.post(
            "/internal/commands",
            json={
                "meter_id": meter_id,
                "action": body.action,
                "operator": principal.username,
                "reason": body.reason,
            },
        )
        await service.record(
            principal.username, f"meter.{body.action}", meter_id, {"command_id": command["id"]}
        )
        return command

    @api.get("/meters/{meter_id}/commands", tags=["meters"])
    async def meter_commands(
        principal: StaffUser, meter_id: str, limit: Limit = 50, offset: Offset = 0
    ) -> Any:
        """Commands sent to a meter, newest first."""
        return await upstreams.control.get(
            "/internal/commands", meter_id=meter_id, limit=limit, offset=offset
        )

    @api.get("/commands/{command_id}", tags=["meters"])
    async def get_command(principal: StaffUser, command_id: str) -> Any:
        """One command and its status."""
        return await upstreams.control.get(f"/internal/commands/{command_id}")

    # --- field -------------------------------------------------------------------------
    @api.post("/dtus", tags=["field"], status_code=201)
    async def register_dtu(principal: AdminUser, body: DtuBody, response: Response) -> Any:
        """Register (or update) a DTU and the meters behind it."""
        # Unset options are left out: the collector's defaults apply (LOGIN:<id>, HB...).
        status, dtu = await upstreams.collector.post(
            "/internal/dtus", json=body.model_dump(exclude_none=True)
        )
        response.status_code = status
        await service.record(
            principal.username, "dtu.register", body.id, {"meters": len(body.meters)}
        )
        return dtu

    @api.get("/dtus", tags=["field"])
    async def list_dtus(principal: StaffUser) -> Any:
        """DTUs and their link state."""
        return await upstreams.collector.get("/internal/dtus")

    # --- accounts ----------------------------------------------------------------------
    def as_operator(body: BaseModel, principal: Principal) -> dict[str, Any]:
        # Whoever holds the token is the operator of record, whatever the body says.
        return {**body.model_dump(mode="json", exclude_unset=True), "operator": principal.username}

    @api.post("/accounts", tags=["accounts"], status_code=201)
    async def open_account(principal: StaffUser, body: OpenAccount, response: Response) -> Any:
        """Open an account on a tariff (or a flat ``price_per_kwh``), prepaid or postpaid."""
        status, account = await upstreams.billing.post(
            "/internal/accounts", json=as_operator(body, principal)
        )
        response.status_code = status
        await service.record(
            principal.username, "account.open", body.id, body.model_dump(mode="json")
        )
        return account

    @api.patch("/accounts/{account_id}", tags=["accounts"])
    async def change_account(principal: StaffUser, account_id: str, body: AccountChanges) -> Any:
        """Change an account's tariff, lines, limits, groups or protection."""
        _, account = await upstreams.billing.call(
            "PATCH",
            f"/internal/accounts/{account_id}",
            json=body.model_dump(mode="json", exclude_unset=True),
        )
        await service.record(
            principal.username,
            "account.change",
            account_id,
            body.model_dump(mode="json", exclude_unset=True),
        )
        return account

    @api.get("/accounts", tags=["accounts"])
    async def list_accounts(principal: CurrentUser, limit: Limit = 50, offset: Offset = 0) -> Any:
        """Accounts with balances (tenants: their own)."""
        ids = None if principal.is_staff else ",".join(sorted(principal.account_ids))
        if ids == "":
            return {"items": [], "total": 0, "limit": limit, "offset": offset}
        return await upstreams.billing.get(
            "/internal/accounts", ids=ids, limit=limit, offset=offset
        )

    @api.get("/accounts/{account_id}", tags=["accounts"])
    async def get_account(principal: CurrentUser, account_id: str) -> Any:
        """One account and its balance."""
        visible_account(principal, account_id)
        return await upstreams.billing.get(f"/internal/accounts/{account_id}")

    @api.get("/accounts/{account_id}/ledger", tags=["accounts"])
    async def account_ledger(
        principal: CurrentUser, account_id: str, limit: Limit = 50, offset: Offset = 0
    ) -> Any:
        """The account's ledger entries, newest first, with the balance after each."""
        visible_account(principal, account_id)
        return await upstreams.billing.get(
            f"/internal/accounts/{account_id}/ledger", limit=limit, offset=offset
        )

    @api.post("/accounts/{account_id}/meters", tags=["accounts"], status_code=201)
    async def bind_meter(
        principal: StaffUser, account_id: str, body: BindingBody, response: Response
    ) -> Any:
        """Bind a meter to the account; its consumption is then charged there.

        Binding it again changes only whether it is local-prepaid and its local price."""
        await upstreams.collector.get(f"/internal/meters/{body.meter_id}")
        status, binding = await upstreams.billing.post(
            "/internal/meter-bindings",
            json={**as_operator(body, principal), "account_id": account_id},
        )
        response.status_code = status
        await service.record(
            principal.username,
            "meter.bind",
            body.meter_id,
            {"account_id": account_id, **body.model_dump(mode="json", exclude_unset=True)},
        )
        return binding

    @api.post("/accounts/{account_id}/top-ups", tags=["accounts"], status_code=201)
    async def top_up(
        principal: StaffUser, account_id: str, body: TopUpBody, response: Response
    ) -> Any:
        """Record cash paid at the counter; idempotent on the receipt number."""
        # Unknown account: 404; above the anti-hoarding cap: 409, before any money is taken.
        await upstreams.billing.post(
            f"/internal/accounts/{account_id}/top-up-check", json={"amount": str(body.amount)}
        )
        _, payment = await upstreams.payments.post(
            "/internal/top-ups",
            json={
                "account_id": account_id,
                "amount": str(body.amount),
                "receipt": body.receipt,
                "operator": principal.username,
            },
        )
        if payment.get("replayed"):
            response.status_code = 200
        else:
            await service.record(
                principal.username,
                "account.top_up",
                account_id,
                {"amount": str(body.amount), "receipt": body.receipt, "payment_id": payment["id"]},
            )
        return payment

    @api.get("/accounts/{account_id}/payments", tags=["accounts"])
    async def account_payments(
        principal: CurrentUser, account_id: str, limit: Limit = 50, offset: Offset = 0
    ) -> Any:
        """Payments received for the account, newest first."""
        visible_account(principal, account_id)
        return await upstreams.payments.get(
            "/internal/payments", account_id=account_id, limit=limit, offset=offset
        )

    @api.get("/anomalies", tags=["accounts"])
    async def list_anomalies(
        principal: StaffUser, meter_id: str | None = None, limit: Limit = 50, offset: Offset = 0
    ) -> Any:
        """Field anomalies: readings refused for billing, local-prepaid mismatches, refusals."""
        return await upstreams.billing.get(
            "/internal/anomalies", meter_id=meter_id, limit=limit, offset=offset
        )

    @api.post("/accounts/{account_id}/arrears", tags=["money"], status_code=201)
    async def record_arrears(principal: StaffUser, account_id: str, body: OperatorMoney) -> Any:
        """Record old debt the tenant owes; it is recovered from top-ups or daily."""
        visible_account(principal, account_id)
        _, posted = await upstreams.billing.post(
            f"/internal/accounts/{account_id}/arrears", json=as_operator(body, principal)
        )
        await service.record(
            principal.username, "account.arrears", account_id, body.model_dump(mode="json")
        )
        return posted

    @api.post("/accounts/{account_id}/refunds", tags=["money"], status_code=201)
    async def refund(principal: AdminUser, account_id: str, body: OperatorMoney) -> Any:
        """Pay credit back to the tenant (退费); never more than the balance."""
        _, posted = await upstreams.billing.post(
            f"/internal/accounts/{account_id}/refunds", json=as_operator(body, principal)
        )
        await service.record(
            principal.username, "account.refund", account_id, body.model_dump(mode="json")
        )
        return posted

    @api.post("/transactions/{transaction_id}/reversal", tags=["money"], status_code=201)
    async def reverse(principal: AdminUser, transaction_id: str, body: ReversalBody) -> Any:
        """Undo a posted transaction with its mirror image (冲正); once per transaction."""
        _, posted = await upstreams.billing.post(
            f"/internal/transactions/{transaction_id}/reversal", json=as_operator(body, principal)
        )
        await service.record(
            principal.username, "transaction.reverse", transaction_id, {"reason": body.reason}
        )
        return posted

    @api.get("/accounts/{account_id}/statements/{month}", tags=["reports"])
    async def statement(principal: CurrentUser, account_id: str, month: str) -> Any:
        """Monthly statement (YYYY-MM): opening, movements, closing, arrears, amount due."""
        visible_account(principal, account_id)
        return await upstreams.billing.get(f"/internal/accounts/{account_id}/statements/{month}")

    @api.get("/accounts/{account_id}/usage", tags=["reports"])
    async def account_usage(
        principal: CurrentUser,
        account_id: str,
        start: Annotated[str | None, Query(alias="from")] = None,
        end: Annotated[str | None, Query(alias="to")] = None,
        granularity: Literal["day", "month"] = "day",
    ) -> Any:
        """Energy and cost per day or month for the account's meters."""
        visible_account(principal, account_id)
        return await upstreams.billing.get(
            "/internal/usage",
            account_id=account_id,
            granularity=granularity,
            **{"from": start, "to": end},
        )

    @api.get("/meters/{meter_id}/usage", tags=["reports"])
    async def meter_usage(
        principal: CurrentUser,
        meter_id: str,
        start: Annotated[str | None, Query(alias="from")] = None,
        end: Annotated[str | None, Query(alias="to")] = None,
        granularity: Literal["day", "month"] = "day",
    ) -> Any:
        """Energy and cost per day or month for one meter (energy analysis)."""
        await meter_for(principal, meter_id)
        return await upstreams.billing.get(
            "/internal/usage",
            meter_id=meter_id,
            granularity=granularity,
            **{"from": start, "to": end},
        )

    @api.get("/dunning", tags=["reports"])
    async def dunning(principal: StaffUser) -> Any:
        """Accounts that owe money (催缴单)."""
        return await upstreams.billing.get("/internal/dunning")

    @api.get("/meters/{meter_id}/supply-events", tags=["meters"])
    async def supply_events(
        principal: StaffUser, meter_id: str, limit: Limit = 50, offset: Offset = 0
    ) -> Any:
        """Every automatic trip or close decision for the meter, with its reason."""
        return await upstreams.billing.get(
            "/internal/supply-events", meter_id=meter_id, limit=limit, offset=offset
        )

    @api.get("/meters/{meter_id}/local-credit", tags=["meters"])
    async def local_credit(principal: StaffUser, meter_id: str, limit: Limit = 50) -> Any:
        """A local-prepaid meter's read-back against the ledger, and its purchases."""
        return await upstreams.billing.get(f"/internal/meters/{meter_id}/local-credit", limit=limit)

    @api.post("/meters/{meter_id}/local-credit/resync", tags=["meters"])
    async def resync_local_credit(principal: StaffUser, meter_id: str) -> Any:
        """Compare a local-prepaid meter from its next reading on; purchases not delivered
        get counts from there (after a refusal, a repair or a reset)."""
        _, view = await upstreams.billing.post(
            f"/internal/meters/{meter_id}/local-credit/resync", json=None
        )
        await service.record(principal.username, "meter.local_credit_resync", meter_id, {})
        return view

    @api.get("/meters/{meter_id}/history", tags=["meters"])
    async def meter_history(principal: StaffUser, meter_id: str) -> Any:
        """Bindings and swaps of the meter, with final readings."""
        return await upstreams.billing.get(f"/internal/meters/{meter_id}/history")

    @api.post("/meters/{meter_id}/swap", tags=["meters"])
    async def swap_meter(principal: StaffUser, meter_id: str, body: SwapMeter) -> Any:
        """Replace a meter (换表) on the same account, recording both final readings."""
        await upstreams.collector.get(f"/internal/meters/{body.new_meter_id}")
        _, history = await upstreams.billing.post(
            f"/internal/meters/{meter_id}/swap", json=as_operator(body, principal)
        )
        await service.record(
            principal.username, "meter.swap", meter_id, body.model_dump(mode="json")
        )
        return history

    # --- tariffs, holds, shedding, policy ----------------------------------------------
    @api.post("/tariffs", tags=["tariffs"], status_code=201)
    async def define_tariff(principal: AdminUser, body: TariffBody) -> Any:
        """Create a tariff, or schedule a new version of an existing one."""
        _, tariff = await upstreams.billing.post(
            "/internal/tariffs", json=as_operator(body, principal)
        )
        await service.record(
            principal.username, "tariff.define", body.id, {"version_id": tariff["version_id"]}
        )
        return tariff

    @api.get("/tariffs", tags=["tariffs"])
    async def list_tariffs(principal: StaffUser) -> Any:
        """Tariffs."""
        return await upstreams.billing.get("/internal/tariffs")

    @api.get("/tariffs/{tariff_id}", tags=["tariffs"])
    async def get_tariff(principal: StaffUser, tariff_id: str) -> Any:
        """A tariff and every version, past and scheduled."""
        return await upstreams.billing.get(f"/internal/tariffs/{tariff_id}")

    @api.post("/holds", tags=["supply"], status_code=201)
    async def place_hold(principal: StaffUser, body: HoldBody) -> Any:
        """Hold power (保电) for a meter, a group or everyone, optionally until a time."""
        _, hold = await upstreams.billing.post("/internal/holds", json=as_operator(body, principal))
        await service.record(
            principal.username, "hold.place", body.target, body.model_dump(mode="json")
        )
        return hold

    @api.get("/holds", tags=["supply"])
    async def list_holds(principal: StaffUser) -> Any:
        """Holds in force."""
        return await upstreams.billing.get("/internal/holds")

    @api.delete("/holds/{hold_id}", tags=["supply"], status_code=204)
    async def release_hold(principal: StaffUser, hold_id: str) -> Response:
        """Release a hold; supply is re-decided at once."""
        await upstreams.billing.call("DELETE", f"/internal/holds/{hold_id}")
        await service.record(principal.username, "hold.release", hold_id, {})
        return Response(status_code=204)

    @api.post("/sheds", tags=["supply"], status_code=201)
    async def start_shed(principal: StaffUser, body: ShedBody) -> Any:
        """Cut a group (building, floor, tenant class), sparing protected accounts."""
        _, shed = await upstreams.billing.post("/internal/sheds", json=as_operator(body, principal))
        await service.record(
            principal.username, "shed.start", body.group, body.model_dump(mode="json")
        )
        return shed

    @api.get("/sheds", tags=["supply"])
    async def list_sheds(principal: StaffUser) -> Any:
        """Load shedding, current and past."""
        return await upstreams.billing.get("/internal/sheds")

    @api.delete("/sheds/{shed_id}", tags=["supply"], status_code=204)
    async def end_shed(principal: StaffUser, shed_id: str) -> Response:
        """End a shedding; the group's meters are restored where credit allows."""
        await upstreams.billing.call("DELETE", f"/internal/sheds/{shed_id}")
        await service.record(principal.username, "shed.end", shed_id, {})
        return Response(status_code=204)

    @api.get("/policy", tags=["supply"])
    async def get_policy(principal: StaffUser) -> Any:
        """Site policy: time zone, friendly hours, holidays."""
        return await upstreams.billing.get("/internal/policy")

    @api.put("/policy", tags=["supply"])
    async def put_policy(principal: AdminUser, body: SitePolicy) -> Any:
        """Replace the site policy."""
        _, policy = await upstreams.billing.call(
            "PUT", "/internal/policy", json=body.model_dump(mode="json")
        )
        await service.record(principal.username, "policy.set", "site", body.model_dump(mode="json"))
        return policy

    # --- administration ----------------------------------------------------------------
    @api.post("/users", tags=["admin"], status_code=201)
    async def create_user(principal: AdminUser, body: UserBody) -> dict[str, Any]:
        """Create a user; a tenant sees only the listed accounts."""
        await service.create_user(
            username=body.username,
            password=body.password,
            role=body.role,
            account_ids=body.account_ids,
        )
        await service.record(principal.username, "user.create", body.username, {"role": body.role})
        return {"username": body.username, "role": body.role, "account_ids": body.account_ids}

    @api.get("/audit", tags=["admin"])
    async def audit_log(principal: AdminUser, limit: Limit = 50, offset: Offset = 0) -> Any:
        """Operator actions, newest first."""
        async with service.store.sessionmaker() as session:
            total = await session.scalar(select(func.count()).select_from(audit))
            rows = (
                await session.execute(
                    select(audit).order_by(audit.c.id.desc()).limit(limit).offset(offset)
                )
            ).all()
        return {
            "items": [dict(row._mapping) for row in rows],
            "total": total,
            "limit": limit,
            "offset": offset,
        }

    app.include_router(api)
    app.include_router(metrics_router())

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": "gateway"}

    return app
