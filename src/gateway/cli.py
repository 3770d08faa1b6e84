"""The ``gateway`` command: serve, migrate, and the register and credentials from the console.

Console commands work on the configured database directly (whoever can reach it is an administrator);
the ledger names them ``console:<os user>``. Failures print the same problem document the API would
answer with, on standard error, and exit 1.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.agency.schemas import AgencyCreate, AgencyUpdate, PullDelivery, PushDelivery
from gateway.agency.service import AgencyService
from gateway.auth.schemas import OperatorOut, TokenInfo
from gateway.auth.service import AuthService, list_operators, list_tokens
from gateway.client.cli import register_client_commands
from gateway.command import print_version
from gateway.config import Settings
from gateway.console import (
    DatabaseNotReady,
    check_sqlite_file,
    connection_refused,
    not_ready,
    require_schema,
    run_on_database,
)
from gateway.console import fail as _fail
from gateway.db import Database, create_database
from gateway.db.migrate import upgrade_sync
from gateway.documents.service import VN_TZ
from gateway.ledger.bundle_cli import verify_proof
from gateway.ledger.cli import ledger_app
from gateway.principal import console_principal
from gateway.problems import RequestInvalid
from gateway.reports.cli import report_app
from gateway.vxp.schemas import VxpSystemCreate, VxpSystemOut
from gateway.vxp.secrets import SecretBox
from gateway.vxp.systems import VxpSystemService

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

app = typer.Typer(help="Document interoperability gateway.", no_args_is_help=True, add_completion=False)
agency_app = typer.Typer(help="The register of agencies.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens of agencies and operators.", no_args_is_help=True)
operator_app = typer.Typer(help="Operators (admin, auditor).", no_args_is_help=True)
app.add_typer(agency_app, name="agency")
app.add_typer(token_app, name="token")
app.add_typer(operator_app, name="operator")
app.add_typer(ledger_app, name="ledger")
app.add_typer(report_app, name="report")
vxp_app = typer.Typer(help="The national axis protocol (VXP) face.", no_args_is_help=True)
vxp_system_app = typer.Typer(help="VXP systems: the axis SDK's system id and secret.", no_args_is_help=True)
vxp_app.add_typer(vxp_system_app, name="system")
app.add_typer(vxp_app, name="vxp")
upstream_app = typer.Typer(help="The upstream axis: this gateway as a client of another axis (GATEWAY_UPSTREAM_*).",
                           no_args_is_help=True)
upstream_agencies_app = typer.Typer(help="The upstream axis's register.", no_args_is_help=True)
upstream_app.add_typer(upstream_agencies_app, name="agencies")
app.add_typer(upstream_app, name="upstream")


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", callback=print_version, is_eager=True,
                                          help="print the version and exit")] = False,
) -> None:
    """Document interoperability gateway."""


async def _migrate(settings: Settings) -> None:
    url = settings.effective_database_url
    check_sqlite_file(url)
    db = create_database(url)
    try:
        try:
            conn = await db.engine.connect()
        except (DBAPIError, OSError) as exc:
            raise connection_refused(url, exc) from exc
        try:
            async with conn.begin():
                await conn.run_sync(upgrade_sync)
        finally:
            await conn.close()
    finally:
        await db.dispose()


def _settings_or_exit(overrides: dict[str, Any]) -> Settings:
    """The settings, or one line per invalid setting on standard error and exit 1 (no traceback)."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        for error in exc.errors():
            name = "GATEWAY_" + "_".join(str(p) for p in error["loc"]).upper() + ": " if error["loc"] else ""
            typer.echo(f"error: {name}{str(error['msg']).removeprefix('Value error, ')}", err=True)
        raise typer.Exit(code=1) from None


def _migrate_or_exit(settings: Settings) -> None:
    try:
        asyncio.run(_migrate(settings))
    except DatabaseNotReady as error:
        not_ready(error)


def _in_transaction(fn: Callable[[AsyncSession], Awaitable[T]]) -> T:
    """Run ``fn`` in one committed transaction on the configured database (refused in one line unless it is
    reachable and at the latest migration: :func:`gateway.console.open_database`)."""

    async def run(db: Database, _settings: Settings) -> T:
        async with db.transaction() as session:
            return await fn(session)

    return run_on_database(run)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, indent=2))


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (GATEWAY_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (GATEWAY_PORT)")] = None,
    migrate: Annotated[bool | None, typer.Option(help="apply migrations first (default: on SQLite)")] = None,
    workers: Annotated[int | None, typer.Option(
        min=0, help="processes (GATEWAY_WORKERS); 0: one per CPU core on PostgreSQL, 1 on SQLite")] = None,
) -> None:
    """Start the gateway (API and delivery workers), in one process or several sharing the port."""
    import uvicorn

    from gateway import metrics, supervision

    overrides: dict[str, Any] = {}
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides["port"] = port
    if workers is not None:
        overrides["workers"] = workers
    settings = _settings_or_exit(overrides)
    if migrate is None:
        migrate = settings.effective_database_url.startswith("sqlite")
    if migrate:
        _migrate_or_exit(settings)  # once, here, before any worker process starts
    count = settings.effective_workers
    if count == 1:
        from gateway.app import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_config=None,
                    log_level=settings.log_level, access_log=False)
        return
    # Each worker process imports the app factory afresh and reads its settings from the environment: the
    # command line's overrides go there, and so does the directory where the workers keep their metrics
    # (gateway.metrics), made empty now, before any of them imports prometheus_client.
    for name, value in overrides.items():
        os.environ[f"GATEWAY_{name.upper()}"] = str(value)
    metrics.prepare_multiprocess_dir((settings.data_dir / "run" / "prometheus").resolve())
    supervision.name_supervisor()  # the workers end with this process, however it ends
    uvicorn.run("gateway.app:create_app", factory=True, workers=count, host=settings.host, port=settings.port,
                log_config=None, log_level=settings.log_level, access_log=False)


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="attempts in flight (GATEWAY_WORKER_CONCURRENCY)")] = None,
    metrics_port: Annotated[int | None, typer.Option(help="serve Prometheus metrics on 127.0.0.1:PORT")] = None,
) -> None:
    """Run a push delivery worker only (no API) until SIGTERM/SIGINT; any number may share one database.

    Needs the migrated database, the blobs (the same blob directory, or GATEWAY_BLOB_STORE=postgresql) and the
    gateway key of the API processes (the same GATEWAY_DATA_DIR, or GATEWAY_SIGNING_KEY_FILE and
    GATEWAY_SIGNING_CERT_FILE); it never creates a key.
    """
    from gateway.app import scanner_of
    from gateway.blobs import blob_store
    from gateway.console import open_database
    from gateway.delivery.worker import run_workers
    from gateway.intake.service import IntakeService
    from gateway.logs import configure
    from gateway.signing import load_or_create
    from gateway.upstream.client import UpstreamClient
    from gateway.upstream.forwarder import UpstreamForwarder
    from gateway.upstream.poller import upstream_poller

    overrides: dict[str, Any] = {"worker_concurrency": concurrency} if concurrency is not None else {}
    settings = _settings_or_exit(overrides)
    configure(settings.log_level, json=settings.log_json)
    generated = settings.keys_dir / "gateway.key.pem"
    if settings.signing_key_file is None and not generated.exists():
        typer.echo("no gateway key: start `gateway serve` once on this data directory, or set "
                   "GATEWAY_SIGNING_KEY_FILE and GATEWAY_SIGNING_CERT_FILE", err=True)
        raise typer.Exit(code=1)
    key = load_or_create(settings)

    async def run() -> None:
        db = await open_database(settings)
        try:
            blobs = blob_store(settings)
            upstream = UpstreamClient.from_settings(settings) if settings.upstream_url else None
            if upstream is None:
                await run_workers(settings, db, blobs, key)
                return
            # the upstream poller accepts what it fetches through the one acceptance path, as serve does
            intake = IntakeService(db, blobs, key, settings.envelope_limits(), scanner=scanner_of(settings),
                                   forwarding=True)
            try:
                await run_workers(settings, db, blobs, key, UpstreamForwarder(upstream),
                                  alongside=lambda worker: upstream_poller(settings, db, intake, upstream,
                                                                           wake=worker.notify))
            finally:
                await upstream.aclose()
        finally:
            await db.dispose()

    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    try:
        asyncio.run(run())
    except DatabaseNotReady as error:
        not_ready(error)


@app.command("migrate")
def migrate_cmd() -> None:
    """Apply the database migrations (idempotent)."""
    _migrate_or_exit(Settings())
    typer.echo("database at the latest migration")


@app.command("backup")
def backup_cmd(output: Annotated[Path, typer.Option("--output", "-o", help="an empty or new directory")]) -> None:
    """Back up the database, the blobs and the generated keys (README "Backup and restore")."""
    from gateway.backup import BackupError, backup

    settings = Settings()
    require_schema(settings)
    try:
        manifest = backup(settings, output)
    except (BackupError, subprocess.CalledProcessError) as exc:
        typer.echo(f"backup failed: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"backup written to {output}: {len(manifest['files'])} files, ledger head "
               f"{manifest.get('ledger_head')}")


@app.command("restore")
def restore_cmd(input_dir: Annotated[Path, typer.Option("--input", "-i", help="a backup directory")]) -> None:
    """Restore a backup onto an empty data directory / empty database; then run `gateway ledger verify`."""
    from gateway.backup import BackupError, restore

    try:
        manifest = restore(Settings(), input_dir)
    except (BackupError, subprocess.CalledProcessError, FileNotFoundError) as exc:
        typer.echo(f"restore failed: {exc}", err=True)
        raise typer.Exit(code=1) from exc
    typer.echo(f"restored {len(manifest['files'])} files from {input_dir}")


@app.command()
def openapi(output: Annotated[Path, typer.Option("--output", "-o")] = Path("openapi/openapi.json")) -> None:
    """Write the OpenAPI document generated from the app."""
    from gateway.openapi_spec import render

    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(), encoding="utf-8")
    typer.echo(f"wrote {output}")


app.command("verify-proof")(verify_proof)  # also in the client-only script (gateway.command)


def _validated(model: type[M], fields: dict[str, Any]) -> M:
    """``model`` from the options, or the request-invalid problem the API answers for the same body."""
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in exc.errors()]
        _fail(RequestInvalid(f"invalid fields: {', '.join(sorted({e['field'] for e in errors}))}", errors=errors))


_ALIAS_HELP = ("another code the agency is known by (old-format code, QĐ 20/2020 identifier, SaaS tenant id); "
               "repeatable")


def _delivery(push: str | None, pull: bool) -> PushDelivery | PullDelivery | None:
    if push and pull:
        _fail(RequestInvalid("--push and --pull exclude each other", field="delivery"))
    if push:
        return PushDelivery(mode="push", endpoint=push)
    if pull:
        return PullDelivery(mode="pull")
    return None


@agency_app.command("add")
def agency_add(
    code: str,
    name: Annotated[str, typer.Option(help="official name")],
    push: Annotated[str | None, typer.Option(help="push delivery to this http(s) endpoint")] = None,
    pull: Annotated[bool, typer.Option(help="pull delivery (the agency polls its inbox)")] = False,
    parent: Annotated[str | None, typer.Option(help="parent agency code")] = None,
    alt_code: Annotated[str | None, typer.Option(help="second identifier (QĐ 20/2020)")] = None,
    alias: Annotated[list[str] | None, typer.Option("--alias", help=_ALIAS_HELP)] = None,
    policy: Annotated[str, typer.Option(help="signature policy: required | channel")] = "required",
    active: Annotated[bool, typer.Option("--active/--suspended")] = True,
    cert: Annotated[list[Path] | None, typer.Option(help="signing certificate PEM file (repeatable)")] = None,
) -> None:
    """Register an agency (and optionally its certificates)."""
    delivery = _delivery(push, pull)
    if delivery is None:
        _fail(RequestInvalid("one of --push URL or --pull is required", field="delivery"))
    if policy not in ("required", "channel"):
        _fail(RequestInvalid("--policy: required or channel", field="signature_policy"))
    pems = [p.read_text(encoding="utf-8") for p in cert or []]
    data = _validated(AgencyCreate, {
        "code": code, "name": name, "parent_code": parent, "alt_code": alt_code, "aliases": alias or [],
        "delivery": delivery, "signature_policy": policy, "active": active,
    })

    async def run(session: AsyncSession) -> dict[str, Any]:
        service = AgencyService(session, actor=console_principal().actor)
        await service.register(data)
        for pem in pems:
            await service.add_certificate(code, pem)
        return (await service.view(code)).out().model_dump(mode="json")

    _echo_json(_in_transaction(run))


@agency_app.command("list")
def agency_list() -> None:
    """List the register as a table."""

    async def run(session: AsyncSession) -> list[dict[str, Any]]:
        views = await AgencyService(session, actor=console_principal().actor).list()
        return [v.out().model_dump(mode="json") for v in views]

    rows = _in_transaction(run)
    from rich.console import Console
    from rich.table import Table

    table = Table("code", "name", "parent", "delivery", "policy", "active", "certs")
    for r in rows:
        delivery = r["delivery"]["mode"] + (f" {r['delivery']['endpoint']}" if r["delivery"]["mode"] == "push" else "")
        table.add_row(r["code"], r["name"], r["parent_code"] or "", delivery, r["signature_policy"],
                      "yes" if r["active"] else "suspended", str(len(r["certificates"])))
    Console(width=200).print(table)


@agency_app.command("show")
def agency_show(code: str) -> None:
    """Show one agency as JSON (the same document as GET /v1/agencies/{code})."""

    async def run(session: AsyncSession) -> dict[str, Any]:
        view = await AgencyService(session, actor=console_principal().actor).view(code)
        return view.out().model_dump(mode="json")

    _echo_json(_in_transaction(run))


def _update(code: str, fields: dict[str, Any]) -> None:
    patch = _validated(AgencyUpdate, fields)

    async def run(session: AsyncSession) -> dict[str, Any]:
        view = await AgencyService(session, actor=console_principal().actor).update(code, patch)
        return view.out().model_dump(mode="json")

    _echo_json(_in_transaction(run))


@agency_app.command("update")
def agency_update(
    code: str,
    name: Annotated[str | None, typer.Option()] = None,
    push: Annotated[str | None, typer.Option(help="switch to push delivery at this endpoint")] = None,
    pull: Annotated[bool, typer.Option(help="switch to pull delivery")] = False,
    parent: Annotated[str | None, typer.Option()] = None,
    no_parent: Annotated[bool, typer.Option(help="remove the parent")] = False,
    alt_code: Annotated[str | None, typer.Option()] = None,
    alias: Annotated[list[str] | None, typer.Option(
        "--alias", help=_ALIAS_HELP + "; the ones given replace all the agency's aliases")] = None,
    no_aliases: Annotated[bool, typer.Option("--no-aliases", help="remove all the agency's aliases")] = False,
    policy: Annotated[str | None, typer.Option(help="required | channel")] = None,
    active: Annotated[bool | None, typer.Option("--active/--suspended")] = None,
) -> None:
    """Change fields of an agency; only the options given change (--alias: the aliases given replace the
    agency's aliases; --no-aliases removes them all)."""
    fields: dict[str, Any] = {}
    if name is not None:
        fields["name"] = name
    delivery = _delivery(push, pull)
    if delivery is not None:
        fields["delivery"] = delivery
    if parent is not None:
        fields["parent_code"] = parent
    if no_parent:
        fields["parent_code"] = None
    if alt_code is not None:
        fields["alt_code"] = alt_code
    if alias and no_aliases:
        _fail(RequestInvalid("--alias and --no-aliases exclude each other", field="aliases"))
    if alias:
        fields["aliases"] = alias
    if no_aliases:
        fields["aliases"] = []
    if policy is not None:
        fields["signature_policy"] = policy
    if active is not None:
        fields["active"] = active
    _update(code, fields)


@agency_app.command("suspend")
def agency_suspend(code: str) -> None:
    """Suspend an agency: its tokens are refused at once and it receives nothing new."""
    _update(code, {"active": False})


@agency_app.command("activate")
def agency_activate(code: str) -> None:
    """Re-activate a suspended agency."""
    _update(code, {"active": True})


@agency_app.command("cert-add")
def agency_cert_add(
    code: str,
    pem_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="the certificate (PEM)")],
) -> None:
    """Register a signing certificate (PEM) for an agency."""
    pem = pem_file.read_text(encoding="utf-8", errors="replace")

    async def run(session: AsyncSession) -> dict[str, Any]:
        cert = await AgencyService(session, actor=console_principal().actor).add_certificate(code, pem)
        return cert.model_dump(mode="json")

    _echo_json(_in_transaction(run))


@agency_app.command("cert-revoke")
def agency_cert_revoke(code: str, sha256: str) -> None:
    """Revoke a certificate; it stays on record and is refused from now on."""

    async def run(session: AsyncSession) -> dict[str, Any]:
        cert = await AgencyService(session, actor=console_principal().actor).revoke_certificate(code, sha256)
        return cert.model_dump(mode="json")

    _echo_json(_in_transaction(run))


def _expiry(days: int | None) -> datetime | None:
    return datetime.now(UTC) + timedelta(days=days) if days is not None else None


def _local(at: datetime | None) -> str:
    """An instant as the console shows it: in Vietnam (+07:00), to the second."""
    return at.astimezone(VN_TZ).isoformat(timespec="seconds") if at is not None else ""


def _owner(agency: str | None, operator: str | None) -> tuple[str | None, str | None]:
    if (agency is None) == (operator is None):
        _fail(RequestInvalid("give one of --agency CODE or --operator NAME", field="agency"))
    return agency, operator


_EXPIRES_HELP = "the token is refused after this many days (default: it does not expire)"


@token_app.command("create")
def token_create(
    agency: Annotated[str | None, typer.Option(help="agency code")] = None,
    operator: Annotated[str | None, typer.Option(help="operator name")] = None,
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=36_500, help=_EXPIRES_HELP)] = None,
) -> None:
    """Issue a token for an agency or an operator. The token is printed once, alone on the last line."""
    _owner(agency, operator)
    expires_at = _expiry(expires_in_days)

    async def run(session: AsyncSession) -> tuple[str, str]:
        service = AuthService(session)
        if operator is not None:
            token_id, token, _ = await service.issue_operator_token(operator, actor=console_principal().actor,
                                                                    expires_at=expires_at)
            return token_id, token
        assert agency is not None
        return await service.issue_agency_token(agency, actor=console_principal().actor, expires_at=expires_at)

    token_id, token = _in_transaction(run)
    typer.echo(f"token id: {token_id}" + (f", expires {_local(expires_at)}" if expires_at else ""))
    typer.echo(token)


@token_app.command("revoke")
def token_revoke(
    token_id: str,
    agency: Annotated[str | None, typer.Option(help="agency code")] = None,
    operator: Annotated[str | None, typer.Option(help="operator name")] = None,
) -> None:
    """Revoke an agency's or an operator's token."""
    _owner(agency, operator)

    async def run(session: AsyncSession) -> None:
        if operator is not None:
            await AuthService(session).revoke_operator_token(operator, token_id, actor=console_principal().actor)
        else:
            assert agency is not None
            await AuthService(session).revoke_agency_token(agency, token_id, actor=console_principal().actor)

    _in_transaction(run)
    typer.echo("revoked")


@token_app.command("list")
def token_list(
    agency: Annotated[str | None, typer.Option(help="agency code")] = None,
    operator: Annotated[str | None, typer.Option(help="operator name")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (the items of the API's listing)")] = False,
) -> None:
    """List an agency's or an operator's tokens (ids and instants; never a secret), oldest first."""
    _owner(agency, operator)

    async def run(session: AsyncSession) -> list[TokenInfo]:
        return await list_tokens(session, agency=agency, operator=operator)

    tokens = _in_transaction(run)
    if as_json:
        _echo_json([t.model_dump(mode="json") for t in tokens])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "state", "created", "expires", "revoked")
    for t in tokens:
        table.add_row(t.id, t.state, _local(t.created_at), _local(t.expires_at), _local(t.revoked_at))
    Console(width=200).print(table)


@operator_app.command("create")
def operator_create(
    name: str, role: Annotated[str, typer.Option(help="admin | auditor")] = "admin",
    expires_in_days: Annotated[int | None, typer.Option(min=1, max=36_500, help=_EXPIRES_HELP)] = None,
) -> None:
    """Create an operator. Its token is printed once, alone on the last line."""
    expires_at = _expiry(expires_in_days)

    async def run(session: AsyncSession) -> tuple[str, str]:
        _, token_id, token = await AuthService(session).create_operator(
            name, role, actor=console_principal().actor, expires_at=expires_at
        )
        return token_id, token

    token_id, token = _in_transaction(run)
    typer.echo(f"operator {name} ({role}), token id: {token_id}"
               + (f", expires {_local(expires_at)}" if expires_at else ""))
    typer.echo(token)


@operator_app.command("list")
def operator_list(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON (the items of GET /v1/operators)")] = False,
) -> None:
    """List the operators, revoked ones too, oldest first."""

    async def run(session: AsyncSession) -> list[OperatorOut]:
        return await list_operators(session)

    operators = _in_transaction(run)
    if as_json:
        _echo_json([o.model_dump(mode="json") for o in operators])
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "role", "created", "revoked", "active tokens")
    for o in operators:
        table.add_row(o.name, o.role, _local(o.created_at), _local(o.revoked_at), str(o.active_tokens))
    Console(width=200).print(table)


@operator_app.command("revoke")
def operator_revoke(name: str) -> None:
    """Revoke an operator: every token of theirs is refused and their console sessions end, at once."""

    async def run(session: AsyncSession) -> None:
        await AuthService(session).revoke_operator(name, by=console_principal())

    _in_transaction(run)
    typer.echo(f"operator {name} revoked")


@vxp_system_app.command("create")
def vxp_system_create(
    agency: Annotated[str, typer.Option(help="the code of the agency the installation is registered for")],
    serves: Annotated[str, typer.Option(
        help="subtree: the agency and every agency registered under it | agency: that agency alone")] = "subtree",
) -> None:
    """Create a VXP system. Its JSON (system_id, secret, agency, serves) is printed alone on the last line;
    the secret is shown this once."""
    data = _validated(VxpSystemCreate, {"agency": agency, "serves": serves})
    box = SecretBox.from_settings(Settings())

    async def run(session: AsyncSession) -> dict[str, Any]:
        created = await VxpSystemService(session).create(data.agency, data.serves, box=box,
                                                         actor=console_principal().actor)
        return created.out().model_dump(mode="json")

    created = _in_transaction(run)
    typer.echo(f"vxp system {created['system_id']} for {created['agency']} (serves {created['serves']}); "
               "the secret is shown once, on the next line")
    typer.echo(json.dumps(created, ensure_ascii=False))


@vxp_system_app.command("list")
def vxp_system_list() -> None:
    """List the VXP systems as JSON (the items of GET /v1/vxp/systems; never a secret)."""

    async def run(session: AsyncSession) -> list[dict[str, Any]]:
        return [VxpSystemOut.of(s).model_dump(mode="json") for s in await VxpSystemService(session).list()]

    _echo_json(_in_transaction(run))


@vxp_system_app.command("revoke")
def vxp_system_revoke(system_id: str) -> None:
    """Revoke a VXP system; it stays on record and its next call is refused."""

    async def run(session: AsyncSession) -> dict[str, Any]:
        system = await VxpSystemService(session).revoke(system_id, actor=console_principal().actor)
        return VxpSystemOut.of(system).model_dump(mode="json")

    _echo_json(_in_transaction(run))


_NO_UPSTREAM = ("no upstream is configured: set GATEWAY_UPSTREAM_URL (the upstream's VXP base URL, e.g. "
                "https://axis.example/vxp), GATEWAY_UPSTREAM_SYSTEM_ID, and GATEWAY_UPSTREAM_SECRET or "
                "GATEWAY_UPSTREAM_SECRET_FILE")


@upstream_agencies_app.command("sync")
def upstream_agencies_sync(
    qd20_level: Annotated[list[int] | None, typer.Option(
        "--qd20-level", help="the level asked of getAgenciesListQD20 (repeatable; default 1)")] = None,
) -> None:
    """Import the upstream axis's register as agencies of delivery mode `upstream`.

    Reads getAgenciesList, getAgenciesListQD20 and getSynchronizeUnit, then in one transaction adds the new
    agencies, updates the ones imported before, and makes inactive the ones no longer listed (never deleted).
    A local agency is never changed: an upstream agency holding its code or one of its names is skipped. The
    summary (counts, codes, what was skipped or dropped and why) is ledgered as `upstream.agencies_synced` and
    printed as JSON on the last line. When the upstream cannot be read, nothing changes and the command exits 1.
    """
    from gateway.upstream.client import UpstreamClient
    from gateway.upstream.errors import UpstreamError
    from gateway.upstream.sync import EmptyUpstreamRegister, SyncSummary, UpstreamRegisterSync

    def refuse(message: str) -> NoReturn:
        typer.echo(f"gateway upstream agencies sync: {message}", err=True)
        raise typer.Exit(code=1)

    try:
        settings = Settings()
    except ValidationError as exc:
        refuse(f"the settings are invalid: {'; '.join(str(e['msg']) for e in exc.errors())}")
    if not settings.upstream_url:
        refuse(_NO_UPSTREAM)
    try:
        client = UpstreamClient.from_settings(settings)
    except ValueError as exc:
        refuse(str(exc))
    levels = qd20_level or [1]

    async def run(db: Database, _settings: Settings) -> SyncSummary:
        async with client:
            try:
                return await UpstreamRegisterSync(db, client, actor=console_principal().actor).run(levels)
            except UpstreamError as error:
                # The problem document follows on the last line of standard error (gateway.console.fail).
                typer.echo(f"gateway upstream agencies sync: {error.title.lower()} ({error.detail}); nothing was "
                           "changed", err=True)
                raise
            except EmptyUpstreamRegister as exc:
                refuse(str(exc))

    summary = run_on_database(run)
    out = summary.as_json()
    typer.echo(f"register synced from {summary.upstream}: {out['added']} added, {out['updated']} updated, "
               f"{out['deactivated']} deactivated, {out['unchanged']} unchanged, {out['skipped']} skipped, "
               f"{out['dropped']} name(s) or parent(s) dropped")
    typer.echo(json.dumps(out, ensure_ascii=False))


# The agency-side commands (send, inbox, fetch, ack, status, document, keys) after the console ones.
register_client_commands(app)


@app.command()
def demo(
    timeout: Annotated[float | None, typer.Option(
        "--timeout", help="give up (exit 1) after this many seconds (default 60; 90 with --federation)")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="keep the temporary data directory")] = False,
    federation: Annotated[bool, typer.Option(
        "--federation", help="two gateways instead: a province hub and its upstream axis, a document and its "
        "statuses across the border both ways")] = False,
) -> None:
    """Show the whole flow in one command, in a temporary directory.

    Starts a gateway on the embedded default and a push recipient, registers three agencies, sends a
    signed document with a PDF to two of them, and prints the receipt, each delivery, the statuses
    flowing back and the ledger verification.

    With --federation: starts two gateways (an upstream standing in for the national axis, and a
    province hub configured with it as its upstream), forwards a signed document from a province
    agency to the Government Office upstream and back the other way, and prints the upstream DocId,
    the received instants on both sides, the statuses crossing the border and both ledgers' verification.
    """
    # Here, not among the agency commands: it starts `gateway serve`, so it needs the server installed.
    if federation:
        from gateway.demo_federation import run_federation_demo

        raise typer.Exit(code=run_federation_demo(timeout=90.0 if timeout is None else timeout, keep=keep))
    from gateway.demo import run_demo

    raise typer.Exit(code=run_demo(timeout=60.0 if timeout is None else timeout, keep=keep))


def main() -> None:
    """The whole command; the ``gateway`` script reaches it through :func:`gateway.command.main`."""
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
