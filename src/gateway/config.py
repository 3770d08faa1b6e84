"""Settings, read from the environment (prefix ``GATEWAY_``) and built in ``create_app()``, never at import.

Secrets that still hold a placeholder value are refused outside development so that a production
deployment cannot start with a value copied from the README.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateway.envelope.limits import Limits

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "changethis", "secret", "password", "placeholder"})


class Settings(BaseSettings):
    # hide_input_in_errors: a validation error would otherwise print every input, secrets included
    # (GATEWAY_UPSTREAM_SECRET, GATEWAY_SIGNING_KEY_PASSPHRASE), wherever the error is shown or logged.
    model_config = SettingsConfigDict(env_prefix="GATEWAY_", env_file=None, extra="ignore",
                                      hide_input_in_errors=True)

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("./var")
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy async URL; default sqlite+aiosqlite:///<data_dir>/gateway.sqlite3",
    )
    host: str = "127.0.0.1"
    port: int = 8080
    # Processes of `gateway serve` (each with its API, push worker, checkpoint task and upstream poller, all safe
    # side by side on one database); 0: one per CPU core on PostgreSQL, 1 on SQLite (one writer at a time: more
    # processes only queue on its lock). See effective_workers.
    workers: int = Field(default=0, ge=0)
    log_level: str = "info"
    log_json: bool = True
    # /docs (Swagger UI) and /redoc, with their scripts served by the gateway itself (gateway.docs); false
    # removes both pages and their assets (production). /openapi.json stays: it is the published contract.
    api_docs: bool = True

    # The gateway's own signing key and certificate (PEM). Generated into data_dir/keys on first start
    # when not configured.
    signing_key_file: Path | None = None
    signing_cert_file: Path | None = None
    signing_key_passphrase: SecretStr | None = None

    # The key (32 bytes) that seals the VXP systems' shared secrets in the database (gateway.vxp.secrets).
    # Unset: <data_dir>/keys/vxp-secrets.key, generated on first use (and backed up with keys/). Set: that
    # file, which must exist; it is never generated, so that a mistyped path cannot start a new key.
    vxp_secrets_key_file: Path | None = None

    # Request and envelope limits (see README "Limits").
    max_envelope_bytes: int = 64 * 1024 * 1024
    max_part_bytes: int = 4 * 1024 * 1024 * 1024
    max_xml_depth: int = 64
    max_xml_elements: int = 200_000
    max_recipients: int = 1_000
    max_attachments: int = 100
    max_attachment_bytes: int = 64 * 1024 * 1024
    max_total_attachment_bytes: int = 8 * 1024 * 1024 * 1024

    # Mutual TLS through a trusted reverse proxy: the proxy terminates TLS, checks the client certificate
    # and passes it URL-encoded (nginx: $ssl_client_escaped_cert) in this header. The header is believed
    # only from these peer addresses; from anyone else it is ignored.
    trusted_proxies: list[str] = []
    client_cert_header: str = "X-Client-Cert"

    # Admission control (gateway.admission): requests handled at once per process; past that, a request
    # waits in order at most admission_wait_seconds, then gets 503 overloaded with Retry-After.
    max_concurrent_requests: int = Field(default=32, ge=1)
    admission_wait_seconds: float = Field(default=5.0, ge=0)
    # Database connections per process (PostgreSQL), kept open: the admission limit (32) and four for the
    # background tasks (group commit, delivery worker, checkpointer, poller), so that a busy process reuses
    # its connections instead of opening new ones (issue 17: a pool of 10 reopened 217 connections, each with
    # its prepared statements, in 1,000 requests at concurrency 64). An eighth more on overflow for bursts;
    # PostgreSQL's max_connections must exceed workers x (pool + overflow). No connection within the timeout:
    # a 503 database-unavailable.
    database_pool_size: int = Field(default=36, ge=1)
    database_pool_timeout_seconds: float = Field(default=10.0, gt=0)
    # Ping each connection as it leaves the pool (one more round trip per transaction); off by default, see
    # gateway.db.engine.create_database.
    database_pool_pre_ping: bool = False

    # Per-agency request rate (``limits`` notation, e.g. "600/minute"); empty string = no limit.
    agency_rate_limit: str = "1200/minute"

    # Malware scanning through clamd (Điều 12.1): a unix socket or a TCP host; unset = no scanning.
    clamd_socket: Path | None = None
    clamd_host: str | None = None
    clamd_port: int = 3310
    clamd_timeout_seconds: float = 120.0

    # Where blobs (original envelopes, attachment files) live: "filesystem" (<data_dir>/blobs, the embedded
    # default) or "postgresql" (chunk rows in the database, shared by every node: no shared disk; PostgreSQL only).
    blob_store: Literal["filesystem", "postgresql"] = "filesystem"

    # Delivery.
    run_workers: bool = True
    worker_concurrency: int = 16
    worker_poll_seconds: float = 0.5
    delivery_timeout_seconds: float = 30.0
    delivery_max_attempts: int = 12
    delivery_max_age_seconds: int = 3 * 24 * 3600
    delivery_backoff_base_seconds: float = 2.0
    delivery_backoff_cap_seconds: float = 3600.0
    lease_seconds: float = 60.0

    # The web console (/console): a session ends after this long without a page view, and in any case this
    # long after sign-in; its cookie is marked Secure on https requests, and always when console_cookie_secure
    # (TLS ended at a reverse proxy that talks plain HTTP to the gateway).
    console_idle_seconds: float = Field(default=900.0, gt=0)
    console_max_seconds: float = Field(default=43200.0, gt=0)
    console_cookie_secure: bool = False

    # The event feed (GET /v1/events, gateway.ledger.feed): how often a stream looks for new ledger entries, how
    # many streams a process serves at once (past that: 503 with Retry-After), how often an open stream sends a
    # keep-alive comment and checks its caller's credential again (revoked, expired, suspended: the stream ends).
    events_poll_seconds: float = Field(default=0.5, gt=0)
    events_max_streams: int = Field(default=100, ge=1)
    events_ping_seconds: float = Field(default=15.0, gt=0)
    events_recheck_seconds: float = Field(default=30.0, gt=0)

    # Ledger checkpoints.
    checkpoint_every_entries: int = 1000
    checkpoint_every_seconds: float = 300.0
    # How often the checkpoint task (it runs with the workers) looks at the head.
    checkpoint_poll_seconds: float = 2.0
    # The checkpoints' origin line and signed-note key name (c2sp.org/tlog-checkpoint), e.g.
    # "ubnd.nghean.gov.vn/gateway-ledger"; unset: "gateway-ledger/<first 16 hex of the gateway certificate's
    # SHA-256>". Set it once: a witness pins it.
    ledger_origin: str | None = Field(default=None, pattern=r"^[!-*,-~]{1,200}$")
    # RFC 3161 timestamps of checkpoints (issue 18): the authority's URL and its signing certificate(s) (PEM,
    # pinned: a token signed by anyone else is refused; required with the URL), how long one request may take,
    # how long stamping may fail (the oldest checkpoint without a token) before /readyz says so, and whether
    # intake then stops accepting (X-Road's fail-closed rule; off by default).
    tsa_url: str | None = None
    tsa_cert_file: Path | None = None
    tsa_timeout_seconds: float = Field(default=10.0, gt=0)
    tsa_max_failure_seconds: float = Field(default=3600.0, gt=0)
    tsa_fail_closed: bool = False

    # The upstream axis (issue 15): the VXP base URL of another gateway's /vxp face or of the national axis
    # (https://axis.example/vxp), and this gateway's credentials there: a system id and its shared secret,
    # given in the environment or in a file (one of the two, never both). Unset URL: no upstream, and then
    # no other upstream setting may be given either (a half-configured upstream is a mistake, not a default).
    # The secret is never logged and never in a repr (SecretStr; the file is read by gateway.upstream).
    upstream_url: str | None = None
    upstream_system_id: str | None = None
    upstream_secret: SecretStr | None = None
    upstream_secret_file: Path | None = None
    # How often the poller asks the upstream for what waits; how long a connection may take to open; how
    # long one whole call may take (connection, request, answer).
    upstream_poll_seconds: float = Field(default=10.0, gt=0)
    upstream_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    upstream_timeout_seconds: float = Field(default=60.0, gt=0)

    @field_validator("upstream_url", "upstream_system_id", "upstream_secret", "upstream_secret_file", "tsa_url",
                     "tsa_cert_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty variable (a template's ``GATEWAY_UPSTREAM_SECRET=``) is no setting."""
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _refuse_placeholders(self) -> Settings:
        if self.environment != "development" and self.signing_key_passphrase is not None:
            value = self.signing_key_passphrase.get_secret_value().strip().lower()
            if value in PLACEHOLDER_SECRETS:
                raise ValueError("GATEWAY_SIGNING_KEY_PASSPHRASE holds a placeholder value; set a real secret")
        if (self.signing_key_file is None) != (self.signing_cert_file is None):
            raise ValueError("GATEWAY_SIGNING_KEY_FILE and GATEWAY_SIGNING_CERT_FILE must be set together")
        self._check_upstream()
        if self.blob_store == "postgresql" and not self.effective_database_url.startswith("postgresql"):
            raise ValueError("GATEWAY_BLOB_STORE=postgresql keeps blobs in the PostgreSQL database: it needs a "
                             "PostgreSQL GATEWAY_DATABASE_URL (on SQLite, use the filesystem store)")
        if self.tsa_url and self.tsa_cert_file is None:
            raise ValueError("GATEWAY_TSA_CERT_FILE (the timestamping authority's certificate, PEM) is required with "
                             "GATEWAY_TSA_URL: tokens are verified against it")
        if self.tsa_url and urlsplit(self.tsa_url).scheme not in ("http", "https"):
            raise ValueError("GATEWAY_TSA_URL must be an http(s) URL")
        return self

    def _check_upstream(self) -> None:
        """The upstream settings hold together (see their comment); the messages never hold the secret."""
        if not self.upstream_url:
            given = [name for name, value in (("GATEWAY_UPSTREAM_SYSTEM_ID", self.upstream_system_id),
                                              ("GATEWAY_UPSTREAM_SECRET", self.upstream_secret),
                                              ("GATEWAY_UPSTREAM_SECRET_FILE", self.upstream_secret_file))
                     if value is not None]
            if given:
                raise ValueError(f"{', '.join(given)} set without GATEWAY_UPSTREAM_URL")
            return
        try:
            url = urlsplit(self.upstream_url)
            readable = bool(url.hostname)
        except ValueError:
            readable = False
        if not readable or url.scheme not in ("http", "https") or url.query or url.fragment or url.username:
            raise ValueError("GATEWAY_UPSTREAM_URL must be an http(s) URL with a host and no query, fragment or "
                             "credentials (the upstream's VXP base, e.g. https://axis.example/vxp)")
        system_id = self.upstream_system_id or ""
        if not system_id.strip() or not all(" " < c < "\x7f" for c in system_id):
            raise ValueError("GATEWAY_UPSTREAM_SYSTEM_ID is required with GATEWAY_UPSTREAM_URL (printable ASCII, "
                             "no spaces: it travels as a header)")
        if (self.upstream_secret is None) == (self.upstream_secret_file is None):
            raise ValueError("exactly one of GATEWAY_UPSTREAM_SECRET and GATEWAY_UPSTREAM_SECRET_FILE is required "
                             "with GATEWAY_UPSTREAM_URL")
        if self.upstream_secret is not None:
            value = self.upstream_secret.get_secret_value()
            if self.environment != "development" and value.strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError("GATEWAY_UPSTREAM_SECRET holds a placeholder value; set the upstream's secret")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'gateway.sqlite3').resolve()}"

    @property
    def effective_workers(self) -> int:
        if self.workers:
            return self.workers
        if not self.effective_database_url.startswith("postgresql"):
            return 1
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1

    def envelope_limits(self) -> Limits:
        return Limits(
            max_envelope_bytes=self.max_envelope_bytes,
            max_depth=self.max_xml_depth,
            max_elements=self.max_xml_elements,
            max_recipients=self.max_recipients,
            max_attachments=self.max_attachments,
            max_attachment_bytes=self.max_attachment_bytes,
            max_inline_attachment_bytes=self.max_attachment_bytes,
            max_large_attachment_bytes=self.max_part_bytes,
            max_total_attachment_bytes=self.max_total_attachment_bytes,
        )

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def vxp_secrets_key_path(self) -> Path:
        return self.vxp_secrets_key_file or self.keys_dir / "vxp-secrets.key"

    @property
    def blobs_dir(self) -> Path:
        return self.data_dir / "blobs"
