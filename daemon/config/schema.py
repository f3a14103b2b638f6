"""The one schema for Lapse's configuration.

Every option has a description and an example; unknown keys are refused.
Relative paths are resolved against the config file's directory by the loader.
The descriptions, examples and defaults here are also the operator's documentation:
daemon.config.example writes config.example.toml from them (`lapse config example`),
using each table's field description, each kind's class docstring, and the docstring
of `Config` as the file's opening comment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

from babel.core import Locale, UnknownLocaleError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from daemon.config.durations import parse_duration
from daemon.config.secrets import SecretRef

Duration = Annotated[timedelta, BeforeValidator(parse_duration)]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
ALL_WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(
            "expected a name of letters, digits, '.', '_' or '-' (at most 63), got " + repr(value)
        )
    return value


Name = Annotated[str, BeforeValidator(_check_name)]


class Section(BaseModel):
    """Base of every config table: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StateConfig(Section):
    """Where Lapse keeps its state."""

    url: str = Field(
        description="SQLAlchemy URL of the state database: SQLite (a file, in WAL mode) or "
        "PostgreSQL.",
        examples=[
            "sqlite:////var/lib/lapse/state.db",
            "postgresql+psycopg://lapse@db.internal/lapse",
        ],
    )
    password: SecretRef | None = Field(
        default=None,
        description="Password of the state database (PostgreSQL), kept out of the URL.",
        examples=[{"env": "LAPSE_DB_PASSWORD"}],
    )


class DaemonConfig(Section):
    """How the daemon runs."""

    sync_interval: Duration = Field(
        default=timedelta(minutes=15),
        description="How often the billing source is read in full. Deadlines in between are "
        "met by wake-ups scheduled at each account's next deadline.",
        examples=["15m"],
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        default="info", description="Lowest level of log lines written.", examples=["info"]
    )
    log_format: Literal["auto", "json", "console"] = Field(
        default="auto",
        description="'json' lines (for journald), 'console' (readable), or 'auto': console on "
        "a terminal, json otherwise.",
        examples=["auto"],
    )
    brake_share: float = Field(
        default=0.25,
        gt=0,
        le=1,
        description="The safety brake: when one sync would turn more than this share of the "
        "known accounts overdue at once (and at least brake_min_accounts), Lapse suspects the "
        "billing data (an outage, a bad query, not a bad month), takes no lifecycle step for "
        "owing accounts, alerts ops and waits for `lapse brake release`. Payments still "
        "reactivate.",
        examples=[0.25],
    )
    brake_min_accounts: int = Field(
        default=10,
        ge=1,
        description="The brake trips only when at least this many accounts turn overdue at once.",
        examples=[10],
    )
    listen: str | None = Field(
        default=None,
        description="Address:port of the HTTP listener for payment webhooks, /healthz and "
        "/metrics; unset: no listener.",
        examples=["127.0.0.1:8470"],
    )
    watchdog: bool = Field(
        default=True,
        description="Ping systemd's watchdog from the main loop (when the unit sets WatchdogSec).",
        examples=[True],
    )
    workers: int = Field(
        default=8,
        ge=1,
        le=256,
        description="Playbook phases this daemon runs at once (each host's max_parallel "
        "also holds, across daemons). One more is kept for a paying client's unsuspend, so "
        "a payment never waits for a busy pool. Syncs, wake-ups and payments have threads "
        "of their own and never wait behind a phase.",
        examples=[8],
    )
    stop_timeout: Duration = Field(
        default=timedelta(seconds=60),
        description="On SIGTERM, how long the running steps may take to finish before the "
        "daemon exits anyway; each phase resumes at the next start from the step it reached.",
        examples=["60s"],
    )
    lease: Duration = Field(
        default=timedelta(seconds=30),
        description="How long a daemon holds a phase it runs without renewing it (it renews "
        "every third of this). Past it, another daemon on the same PostgreSQL resumes the "
        "phase from the step reached; a new leader takes over within it.",
        examples=["30s"],
    )


class FileBilling(Section):
    """A JSON or CSV file with the accounts (the embedded default)."""

    type: Literal["file"] = Field(description="Billing source kind.", examples=["file"])
    path: Path = Field(
        description="The JSON or CSV file with one entry per account.",
        examples=["/var/lib/lapse/billing.json"],
    )
    format: Literal["auto", "json", "csv"] = Field(
        default="auto",
        description="File format; 'auto' picks json or csv from the file name's extension.",
        examples=["auto"],
    )


class SqlBilling(Section):
    """Any database SQLAlchemy can reach, read by a configured query."""

    type: Literal["sql"] = Field(description="Billing source kind.", examples=["sql"])
    url: str = Field(
        description="SQLAlchemy URL of the billing database (no password in it).",
        examples=["mysql+pymysql://lapse@billing.internal/whmcs"],
    )
    password: SecretRef | None = Field(
        default=None,
        description="Password for the billing database.",
        examples=[{"env": "BILLING_DB_PASSWORD"}],
    )
    query: str = Field(
        description="SELECT returning one row per open invoice line, with the columns "
        "documented in docs/billing.md.",
        examples=["SELECT * FROM lapse_billing_view"],
    )


class HttpAuth(Section):
    """Authentication for an HTTP billing endpoint."""

    type: Literal["bearer", "basic"] = Field(
        description="'bearer' sends the token; 'basic' sends user and password.",
        examples=["bearer"],
    )
    token: SecretRef | None = Field(
        default=None, description="Bearer token.", examples=[{"env": "BILLING_TOKEN"}]
    )
    username: str | None = Field(default=None, description="Basic auth user.", examples=["lapse"])
    password: SecretRef | None = Field(
        default=None,
        description="Basic auth password.",
        examples=[{"file": "/etc/lapse/billing-password"}],
    )

    @model_validator(mode="after")
    def _complete(self) -> HttpAuth:
        if self.type == "bearer" and self.token is None:
            raise ValueError("bearer auth needs 'token'")
        if self.type == "basic" and (self.username is None or self.password is None):
            raise ValueError("basic auth needs 'username' and 'password'")
        return self


class HttpBilling(Section):
    """A JSON endpoint answering GET."""

    type: Literal["http"] = Field(description="Billing source kind.", examples=["http"])
    url: str = Field(
        description="URL answering GET with the JSON document described in docs/billing.md.",
        examples=["https://billing.example.com/lapse/accounts"],
    )
    auth: HttpAuth | None = Field(
        default=None,
        description="How Lapse authenticates to the endpoint; unset: no authentication.",
        examples=[{"type": "bearer", "token": {"env": "BILLING_TOKEN"}}],
    )
    timeout: Duration = Field(
        default=timedelta(seconds=30), description="Request timeout.", examples=["30s"]
    )


class WhmcsBilling(Section):
    """WHMCS, read through its API: one Lapse account per WHMCS client (whmcs-<id>)."""

    type: Literal["whmcs"] = Field(description="Billing source kind.", examples=["whmcs"])
    url: str = Field(
        description="The WHMCS system URL; the API is its includes/api.php.",
        examples=["https://billing.example.com"],
    )
    identifier: SecretRef = Field(
        description="API credential identifier (give the credential a read-only role).",
        examples=[{"env": "WHMCS_IDENTIFIER"}],
    )
    secret: SecretRef = Field(
        description="API credential secret.", examples=[{"file": "/etc/lapse/whmcs-secret"}]
    )
    servers: dict[str, Name] = Field(
        default_factory=dict,
        description="WHMCS server name -> Lapse host name (a [hosts] table); unlisted "
        "servers keep their name.",
        examples=[{"cpanel-01": "web1"}],
    )
    docroot: str = Field(
        default="/home/{username}/public_html",
        description="Docroot of a hosting service; {username} and {domain} are filled in.",
        examples=["/home/{username}/public_html"],
    )
    plan: Name = Field(
        default="default",
        description="The policy plan of every WHMCS client.",
        examples=["default"],
    )
    page_size: int = Field(
        default=250, ge=1, le=1000, description="Records per API call.", examples=[250]
    )
    timeout: Duration = Field(
        default=timedelta(seconds=30), description="Request timeout.", examples=["30s"]
    )


class StripeBilling(Section):
    """Stripe's customers and open invoices: one Lapse account per customer (cus_...)."""

    type: Literal["stripe"] = Field(description="Billing source kind.", examples=["stripe"])
    api_key: SecretRef = Field(
        description="Secret or restricted API key with read access to customers and "
        "invoices (a restricted key is enough).",
        examples=[{"env": "STRIPE_API_KEY"}],
    )
    url: str = Field(
        default="https://api.stripe.com",
        description="API base URL (change only for a proxy or a test server).",
        examples=["https://api.stripe.com"],
    )
    services_key: str = Field(
        default="lapse_services",
        description="Customer metadata key holding the hosting services as JSON "
        "(Stripe knows nothing of hosts); customers without it are not hosting accounts.",
        examples=["lapse_services"],
    )
    plan_key: str = Field(
        default="lapse_plan",
        description="Customer metadata key naming the policy plan ('default' when absent).",
        examples=["lapse_plan"],
    )
    timeout: Duration = Field(
        default=timedelta(seconds=30), description="Request timeout.", examples=["30s"]
    )


BillingConfig = Annotated[
    FileBilling | SqlBilling | HttpBilling | WhmcsBilling | StripeBilling,
    Field(discriminator="type"),
]


class PolicyConfig(Section):
    """The lifecycle timeline for one plan. Plans other than 'default' override it key by key.

    The defaults follow common practice: reminders over 2-3 weeks, a final notice around
    day 28 naming the suspension date, suspension 7 days later, deletion 30 days after
    suspension with warnings 14 and 3 days before.
    """

    reminder_offsets: list[Duration] = Field(
        default=[timedelta(days=3), timedelta(days=10), timedelta(days=17)],
        description="When reminders go out, counted from the oldest unpaid invoice's due date.",
        examples=[["3d", "10d", "17d"]],
    )
    final_notice_offset: Duration = Field(
        default=timedelta(days=28),
        description="When the final notice goes out, counted from the due date.",
        examples=["28d"],
    )
    notice_period: Duration = Field(
        default=timedelta(days=7),
        description="Time between the final notice and suspension; the notice names the "
        "exact date.",
        examples=["7d"],
    )
    removal_period: Duration = Field(
        default=timedelta(days=30),
        description="Time between suspension and permanent deletion.",
        examples=["30d"],
    )
    removal_warnings: list[Duration] = Field(
        default=[timedelta(days=14), timedelta(days=3)],
        description="Warnings before deletion, each counted back from the deletion date.",
        examples=[["14d", "3d"]],
    )
    min_contact_gap: Duration = Field(
        default=timedelta(days=3),
        description="Least time between two contacts with a client (reminders, warnings); "
        "a later contact waits.",
        examples=["3d"],
    )
    min_balance: Decimal = Field(
        default=Decimal("1.00"),
        ge=0,
        description="A balance below this does not count as overdue.",
        examples=["1.00"],
    )
    new_account_grace: Duration = Field(
        default=timedelta(days=14),
        description="An account younger than this at its due date has its clock start at "
        "creation + grace.",
        examples=["14d"],
    )
    instalment_grace: Duration = Field(
        default=timedelta(days=3),
        description="How late a payment-plan instalment may be before the plan counts as missed.",
        examples=["3d"],
    )
    payment_plan_instalments: int = Field(
        default=3,
        ge=0,
        description="Instalments offered in the final notice (0 offers no payment plan).",
        examples=[3],
    )
    quiet_hours: str | None = Field(
        default="20:00-08:00",
        pattern=r"^(([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d)?$",
        description="No client contact in these hours of the client's local time (the "
        "contact's time zone in billing): 'HH:MM-HH:MM', may wrap midnight; a contact due "
        "then waits for the end; '' for none.",
        examples=["20:00-08:00"],
    )
    contact_days: list[Weekday] = Field(
        default=["mon", "tue", "wed", "thu", "fri"],
        min_length=1,
        description="Days of the client's local week on which notices may go out. "
        "Suspension and deletion also wait for a contact day, since each comes with a notice.",
        examples=[["mon", "tue", "wed", "thu", "fri"]],
    )
    approve: list[Literal["delete", "suspend"]] = Field(
        default=[],
        description="Phases that wait in the approval queue for a person (`lapse approve`, "
        "the console) instead of running when due: 'delete', and optionally 'suspend'. An "
        "approved phase still passes every safety check when it runs; a rejected one puts "
        "the account on hold.",
        examples=[["delete"]],
    )
    approve_suspend_over: dict[str, Decimal] = Field(
        default={},
        description="With 'suspend' in 'approve': only a suspension of a balance at least this "
        "much, per currency (ISO code), waits for approval; a currency not named always "
        "waits. Empty: every suspension waits.",
        examples=[{"EUR": "500", "USD": "550"}],
    )
    approval_alert_after: Duration = Field(
        default=timedelta(days=1),
        description="Ops are alerted (once) about a phase that has waited this long for approval.",
        examples=["1d"],
    )

    @model_validator(mode="after")
    def _timeline_in_order(self) -> PolicyConfig:
        if self.reminder_offsets != sorted(self.reminder_offsets):
            raise ValueError("'reminder_offsets' must be in increasing order")
        if self.reminder_offsets and self.reminder_offsets[-1] >= self.final_notice_offset:
            raise ValueError("every reminder must come before 'final_notice_offset'")
        if self.removal_warnings != sorted(self.removal_warnings, reverse=True):
            raise ValueError("'removal_warnings' must go from the earliest (largest) to the latest")
        if self.removal_warnings and self.removal_warnings[0] >= self.removal_period:
            raise ValueError("every removal warning must fall inside 'removal_period'")
        return self


class DatabaseAdmin(Section):
    """How Lapse reaches a host's database server to dump and restore account databases.

    The password goes to the dump tools through their environment on the host
    (MYSQL_PWD, PGPASSWORD), never on a command line. Unset keys use the tools' defaults.
    """

    host: str | None = Field(
        default=None,
        description="Database server address as seen from the host; unset: the local socket.",
        examples=["127.0.0.1"],
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Database server port.", examples=[3306]
    )
    user: str | None = Field(
        default=None,
        description="Administrative user; unset uses the tool's default (e.g. the SSH user).",
        examples=["lapse_backup"],
    )
    password: SecretRef | None = Field(
        default=None,
        description="Its password; unset relies on socket or peer authentication.",
        examples=[{"env": "LAPSE_MARIADB_PASSWORD"}],
    )


class HostConfig(Section):
    """A hosting server Lapse acts on."""

    transport: Literal["local", "ssh"] = Field(
        description="'ssh' runs commands on a remote host; 'local' on this machine, when "
        "Lapse runs on the hosting server itself.",
        examples=["ssh"],
    )
    address: str | None = Field(
        default=None, description="Host name or address (ssh).", examples=["web1.example.com"]
    )
    port: int = Field(default=22, ge=1, le=65535, description="SSH port.", examples=[22])
    user: str = Field(default="root", description="SSH user.", examples=["root"])
    key_file: Path | None = Field(
        default=None,
        description="Private key for SSH; the SSH agent is used when unset.",
        examples=["/etc/lapse/id_ed25519"],
    )
    known_hosts: Path | None = Field(
        default=None,
        description="known_hosts file the host key is verified against (required for ssh); "
        "an unknown or changed key stops the run.",
        examples=["/etc/lapse/known_hosts"],
    )
    playbook: Name = Field(
        description="Playbook used for this host: a file name without .toml, looked up in "
        "playbooks_dir and then among the shipped playbooks/<name>.toml.",
        examples=["nginx-linux"],
    )
    allowed_roots: list[Path] = Field(
        default=[Path("/srv/www"), Path("/var/www")],
        description="Directories account docroots must lie inside.",
        examples=[["/srv/www"]],
    )
    max_sessions: int = Field(
        default=4, ge=1, description="Commands run at once on this host.", examples=[4]
    )
    max_parallel: int = Field(
        default=2,
        ge=1,
        description="Playbook phases run at once on this host, counted across every daemon "
        "sharing the state database; a phase counts against every host its account's "
        "services are on. One slot more is kept for a paying client's unsuspend.",
        examples=[2],
    )
    connect_timeout: Duration = Field(
        default=timedelta(seconds=15), description="SSH connect timeout.", examples=["15s"]
    )
    command_timeout: Duration = Field(
        default=timedelta(hours=1),
        description="How long a command may stay silent (streams) or run (other commands).",
        examples=["1h"],
    )
    keepalive: Duration = Field(
        default=timedelta(seconds=30),
        description="SSH keepalive interval, so a dead link is noticed.",
        examples=["30s"],
    )
    vars: dict[str, str] = Field(
        default_factory=dict,
        description="Values for this host's playbook, overriding the playbook's own [vars].",
        examples=[{"sites_dir": "/etc/nginx/sites-enabled"}],
    )
    mariadb: DatabaseAdmin = Field(
        default_factory=DatabaseAdmin,
        description="How backups reach the host's MariaDB/MySQL server (mysqldump); "
        "passwords go to the tools through their environment on the host, never on a "
        "command line.",
        examples=[{"user": "lapse_backup", "password": {"env": "LAPSE_MARIADB_PASSWORD"}}],
    )
    postgresql: DatabaseAdmin = Field(
        default_factory=DatabaseAdmin,
        description="How backups reach the host's PostgreSQL server (pg_dump); unset keys "
        "use the tools' defaults (peer authentication as the SSH user).",
        examples=[
            {"port": 5432, "user": "postgres", "password": {"env": "LAPSE_POSTGRES_PASSWORD"}}
        ],
    )

    @model_validator(mode="after")
    def _ssh_complete(self) -> HostConfig:
        if self.transport == "ssh" and (self.address is None or self.known_hosts is None):
            raise ValueError("an ssh host needs 'address' and 'known_hosts'")
        return self


class LocalStore(Section):
    """A directory on this machine (the embedded default)."""

    type: Literal["local"] = Field(description="Backup store kind.", examples=["local"])
    path: Path = Field(
        description="Directory backups are written to.", examples=["/var/lib/lapse/backups"]
    )


class S3Store(Section):
    """An S3 bucket, on AWS or any S3-compatible endpoint."""

    type: Literal["s3"] = Field(description="Backup store kind.", examples=["s3"])
    bucket: str = Field(description="Bucket name.", examples=["lapse-backups"])
    prefix: str = Field(
        default="", description="Key prefix inside the bucket.", examples=["lapse/"]
    )
    endpoint_url: str | None = Field(
        default=None,
        description="Endpoint for non-AWS stores (MinIO, Ceph RGW, Wasabi, B2, R2); unset for AWS.",
        examples=["https://s3.eu-central-1.wasabisys.com"],
    )
    region: str | None = Field(default=None, description="Region.", examples=["eu-central-1"])
    access_key_id: SecretRef | None = Field(
        default=None,
        description="Access key id; the standard AWS credential chain is used when unset.",
        examples=[{"env": "LAPSE_S3_KEY_ID"}],
    )
    secret_access_key: SecretRef | None = Field(
        default=None,
        description="Secret access key; the standard AWS credential chain is used when unset.",
        examples=[{"env": "LAPSE_S3_SECRET"}],
    )
    server_side_encryption: Literal["AES256", "aws:kms"] | None = Field(
        default=None, description="Server-side encryption to request.", examples=["AES256"]
    )
    storage_class: str | None = Field(
        default=None, description="Storage class of backup objects.", examples=["STANDARD_IA"]
    )
    kms_key_id: str | None = Field(
        default=None,
        description="KMS key for server_side_encryption = 'aws:kms'.",
        examples=["arn:aws:kms:eu-central-1:111122223333:key/abcd"],
    )
    part_checksums: bool = Field(
        default=True,
        description="Send a CRC32 of every uploaded part for the server to check on arrival "
        "(always on for Object Lock buckets); turn off only for an S3-compatible server "
        "that rejects flexible checksums.",
        examples=[True],
    )
    upload_concurrency: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Parts uploaded at once; memory is about this x the part size (8 MiB "
        "or more), one part more where the source cannot hold a part itself (a local host, "
        "whose output has no SSH window to wait in, or parts larger than that window).",
        examples=[2],
    )
    download_link_expiry: Duration = Field(
        default=timedelta(days=7),
        description="How long a client's backup download link (in the suspension notice) "
        "stays valid; at most 7d.",
        examples=["7d"],
    )
    object_lock: Literal["preferred", "required"] = Field(
        default="preferred",
        description="Whether the bucket must have S3 Object Lock, with which a backup a "
        "deletion relied on is locked for backup.retention from the deletion. 'preferred': "
        "a bucket without it is reported by check-config and at start, and deletions go "
        "ahead unlocked; 'required': check-config fails, the daemon does not start, and "
        "no deletion goes ahead without the lock. Object Lock can only be turned on when a "
        "bucket is created.",
        examples=["required"],
    )

    @model_validator(mode="after")
    def _link_expiry(self) -> S3Store:
        if self.download_link_expiry > timedelta(days=7):
            raise ValueError("'download_link_expiry' can be at most 7d (an S3 presign limit)")
        return self


StoreConfig = Annotated[LocalStore | S3Store, Field(discriminator="type")]


class BackupConfig(Section):
    """Where backups go and how long they stay."""

    store: StoreConfig = Field(
        description="Where backups are written: a local directory or an S3 bucket.",
        examples=[{"type": "local", "path": "/var/lib/lapse/backups"}],
    )
    retention: Duration = Field(
        default=timedelta(days=90),
        description="How long a backup is kept after the account is reactivated or deleted.",
        examples=["90d"],
    )


class OutboxNotifier(Section):
    """.eml files written to a directory, sent by nobody (the embedded default)."""

    type: Literal["outbox"] = Field(description="Notifier kind.", examples=["outbox"])
    path: Path = Field(
        description="Directory the .eml files go to.", examples=["/var/lib/lapse/outbox"]
    )


class SmtpNotifier(Section):
    """An SMTP server."""

    type: Literal["smtp"] = Field(description="Notifier kind.", examples=["smtp"])
    host: str = Field(description="SMTP server.", examples=["smtp.example.com"])
    port: int = Field(default=587, ge=1, le=65535, description="SMTP port.", examples=[587])
    security: Literal["plain", "starttls", "tls"] = Field(
        default="starttls",
        description="Connection security: 'starttls', 'tls' (implicit TLS, usually port 465) "
        "or 'plain'.",
        examples=["starttls"],
    )
    username: str | None = Field(default=None, description="SMTP login.", examples=["lapse"])
    password: SecretRef | None = Field(
        default=None, description="SMTP password.", examples=[{"env": "LAPSE_SMTP_PASSWORD"}]
    )


NotifierConfig = Annotated[OutboxNotifier | SmtpNotifier, Field(discriminator="type")]


class BrandConfig(Section):
    """How notices present the hosting company."""

    company_name: str = Field(
        default="Your hosting provider", description="Company name.", examples=["Example Hosting"]
    )
    sender: str = Field(
        default="billing@localhost",
        description="From address of notices.",
        examples=["Example Hosting Billing <billing@example.com>"],
    )
    support_email: str = Field(
        default="support@localhost",
        description="Support contact named in notices and on maintenance pages.",
        examples=["help@example.com"],
    )
    payment_url: str = Field(
        default="https://billing.example.com/pay",
        description="Where clients pay.",
        examples=["https://billing.example.com/pay"],
    )
    logo_url: str | None = Field(
        default=None,
        description="Logo shown in HTML notices.",
        examples=["https://example.com/logo.png"],
    )
    language: str = Field(
        default="en",
        description="Language of notices to clients whose billing states none (or one "
        "without a catalog), and of the maintenance page a visitor gets when their browser "
        "asks for none of the page's languages; also the locale their amounts and dates "
        "follow. A CLDR locale such as 'en', 'de', 'en_GB' or 'pt_BR'.",
        examples=["de"],
    )

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        try:
            return str(Locale.parse(value.replace("-", "_")))
        except (UnknownLocaleError, ValueError):
            raise ValueError(
                f"unknown language {value!r}; expected a CLDR locale such as 'en', 'de' or 'pt_BR'"
            ) from None


class NoticesConfig(Section):
    """Client notices."""

    notifier: NotifierConfig = Field(
        description="How notices are delivered: through an SMTP server, or as .eml files "
        "into a directory.",
        examples=[{"type": "outbox", "path": "/var/lib/lapse/outbox"}],
    )
    brand: BrandConfig = Field(
        default_factory=BrandConfig,
        description="How notices present the hosting company.",
        examples=[{"company_name": "Example Hosting"}],
    )
    templates_dir: Path | None = Field(
        default=None,
        description="Directory whose notice templates override the shipped ones, file by "
        "file, and whose locale/<language>/LC_MESSAGES/lapse.po catalogs add or override "
        "languages (daemon/templates/notices/README.md).",
        examples=["/etc/lapse/templates"],
    )


class AlertsConfig(Section):
    """Where failures and halts are reported to the operator."""

    email: list[str] = Field(
        default_factory=list,
        description="Ops addresses alerted by e-mail, through the notices' notifier.",
        examples=[["ops@example.com"]],
    )
    webhook: str | None = Field(
        default=None,
        description="URL that receives each alert as a JSON POST (e.g. a chat or pager "
        'hook): {"alert", "account", "detail", "at"}.',
        examples=["https://hooks.example.com/lapse"],
    )
    timeout: Duration = Field(
        default=timedelta(seconds=10), description="Webhook request timeout.", examples=["10s"]
    )


class WebhooksConfig(Section):
    """Payment events pushed by billing systems to the daemon's listener (daemon.listen)."""

    stripe_secret: SecretRef | None = Field(
        default=None,
        description="Stripe endpoint signing secret (whsec_...) for POST /webhooks/stripe.",
        examples=[{"env": "LAPSE_STRIPE_WEBHOOK_SECRET"}],
    )
    hmac_secret: SecretRef | None = Field(
        default=None,
        description="Shared secret for any other billing system, which posts to "
        '/webhooks/generic a JSON body {"id": "<event id>", "account_id": "<account>", '
        '"at": "<ISO time>"}, signed with HMAC-SHA256 of the body in the header '
        "X-Lapse-Signature: sha256=<hex>.",
        examples=[{"file": "/etc/lapse/webhook-secret"}],
    )
    tolerance: Duration = Field(
        default=timedelta(minutes=5),
        description="How old a signed event's timestamp may be; a replayed event is ignored "
        "in any case.",
        examples=["5m"],
    )


class ConsoleUser(Section):
    """A person who signs in to the console with a password."""

    password_hash: str = Field(
        description="Argon2 hash of the password, made by `lapse console hash-password`.",
        examples=["$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"],
    )
    role: Literal["viewer", "operator"] = Field(
        default="viewer",
        description="'viewer' reads every page (support staff); 'operator' also acts: hold, "
        "release, retry, approve, reject, restore, brake release.",
        examples=["operator"],
    )

    @model_validator(mode="after")
    def _argon2_hash(self) -> ConsoleUser:
        if not self.password_hash.startswith("$argon2"):
            # The value is never quoted: it may be a password pasted by mistake.
            raise ValueError("'password_hash' is not an argon2 hash: lapse console hash-password")
        return self


class ConsoleConfig(Section):
    """The operator console: a web dashboard on its own listener (off unless `listen` is set).

    Put it behind a TLS-terminating reverse proxy: its session cookie is Secure, so a
    browser keeps it only over HTTPS (or on localhost).
    """

    listen: str | None = Field(
        default=None,
        description="host:port the console listens on; unset, there is no console.",
        examples=["127.0.0.1:9101"],
    )
    session_secret: SecretRef | None = Field(
        default=None,
        description="Key that signs session cookies (32 random bytes or more). Unset, a "
        "random key is made at each start, so a restart or reload signs everybody out.",
        examples=[{"file": "/etc/lapse/console-session-key"}],
    )
    users: dict[Name, ConsoleUser] = Field(
        default_factory=dict,
        description="Local users, by login name.",
        examples=[{"alice": {"password_hash": "$argon2id$...", "role": "operator"}}],
    )
    proxy_header: str | None = Field(
        default=None,
        description="A header naming the signed-in user, set by a reverse proxy that did the "
        "sign-in (SSO); honoured only from `trusted_proxies`. The user's role is theirs in "
        "`users` if listed there, else `proxy_role`.",
        examples=["X-Forwarded-User"],
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Addresses or networks of the reverse proxies whose `proxy_header` is "
        "believed.",
        examples=[["127.0.0.1", "10.0.0.0/24"]],
    )
    proxy_role: Literal["viewer", "operator"] = Field(
        default="viewer",
        description="Role of a user named by `proxy_header` who is not in `users`.",
        examples=["viewer"],
    )
    session_lifetime: Duration = Field(
        default=timedelta(hours=8),
        description="How long a sign-in lasts.",
        examples=["8h"],
    )
    login_attempts: int = Field(
        default=5,
        ge=1,
        description="Failed sign-ins allowed per user name, and per address, within "
        "`login_window`; past them sign-in is refused until the window has passed.",
        examples=[5],
    )
    login_window: Duration = Field(
        default=timedelta(minutes=15),
        description="The window `login_attempts` counts in.",
        examples=["15m"],
    )


class Config(Section):
    """Lapse configuration: one TOML file, validated against one schema.

    Check a file with `lapse check-config -c /etc/lapse/config.toml`; unknown keys are
    errors. Durations are written like "14d", "36h", "90m" or "1d12h". Relative paths
    are resolved against the config file's directory. Secrets are never written in the
    file: name an environment variable, { env = "NAME" }, or a file, { file =
    "/etc/lapse/secret" }.
    """

    state: StateConfig = Field(
        description="The state database: accounts, the event log, notices sent, backups.",
        examples=[{"url": "sqlite:////var/lib/lapse/state.db"}],
    )
    daemon: DaemonConfig = Field(
        default_factory=DaemonConfig,
        description="Options for the daemon itself.",
        examples=[{"sync_interval": "15m"}],
    )
    billing: BillingConfig = Field(
        description="Where Lapse learns who owes what; docs/billing.md describes the data "
        "each kind of source expects.",
        examples=[{"type": "file", "path": "/var/lib/lapse/billing.json"}],
    )
    policy: dict[Name, PolicyConfig] = Field(
        default_factory=lambda: {"default": PolicyConfig()},
        description="The lifecycle per plan (the plan an account is on comes from billing). "
        "[policy.default] applies to every plan without a table of its own; a plan's table "
        "overrides the default key by key: [policy.business] gives one plan a longer "
        "notice period and keeps everything else from the default.",
        examples=[{"default": {}, "business": {"notice_period": "14d"}}],
    )
    hosts: dict[Name, HostConfig] = Field(
        default_factory=dict,
        description="Hosting servers, named as the billing source names them.",
        examples=[
            {
                "web1": {
                    "transport": "ssh",
                    "address": "web1.example.com",
                    "known_hosts": "/etc/lapse/known_hosts",
                    "playbook": "nginx-linux",
                }
            }
        ],
    )
    backup: BackupConfig = Field(
        description="Backups, taken before anything is disabled or deleted.",
        examples=[{"store": {"type": "local", "path": "/var/lib/lapse/backups"}}],
    )
    notices: NoticesConfig = Field(
        description="Client notices.",
        examples=[{"notifier": {"type": "outbox", "path": "/var/lib/lapse/outbox"}}],
    )
    alerts: AlertsConfig = Field(
        default_factory=AlertsConfig,
        description="Where failures and halts are reported to ops (they are always logged as "
        "well): a notice the mail server refuses for good, a suspension withheld for want of "
        "an accepted final notice, a failed playbook step, the safety brake.",
        examples=[{"email": ["ops@example.com"]}],
    )
    playbooks_dir: Path | None = Field(
        default=None,
        description="Operator playbooks, consulted before the shipped ones.",
        examples=["/etc/lapse/playbooks"],
    )
    console: ConsoleConfig = Field(
        default_factory=ConsoleConfig,
        description="The operator console (docs/console.md): pages for support staff and "
        "operators, the approval queue, sign-in by password or a trusted proxy header.",
        examples=[{"listen": "127.0.0.1:9101", "session_secret": {"env": "LAPSE_CONSOLE_KEY"}}],
    )
    webhooks: WebhooksConfig = Field(
        default_factory=WebhooksConfig,
        description="Payment webhooks, received on the daemon's listener (daemon.listen): a "
        "valid event re-evaluates the account at once, so a paid suspended site is back "
        "within seconds.",
        examples=[{"stripe_secret": {"env": "LAPSE_STRIPE_WEBHOOK_SECRET"}}],
    )
    maintenance_pages_dir: Path | None = Field(
        default=None,
        description="Operator maintenance page templates, consulted before the shipped ones.",
        examples=["/etc/lapse/maintenance_pages"],
    )

    def policy_for(self, plan: str) -> PolicyConfig:
        """Return the effective policy for `plan`: the 'default' table overridden by the plan's."""
        return policy_for_plan(self.policy, plan)


def policy_for_plan(policies: Mapping[str, PolicyConfig], plan: str) -> PolicyConfig:
    """Return the effective policy for `plan` from the `[policy]` tables: the 'default'
    table overridden by the options the plan's own table sets (the built-in defaults when
    there is no 'default' table)."""
    base = policies.get("default", PolicyConfig())
    override = policies.get(plan)
    if override is None or plan == "default":
        return base
    merged = base.model_dump() | override.model_dump(exclude_unset=True)
    return PolicyConfig.model_validate(merged)
