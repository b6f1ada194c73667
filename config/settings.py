"""The node's one configuration object.

Everything the node reads from its environment goes through `Settings`: environment variables with the
`CREDITNODE_` prefix (nested sections joined by `__`, e.g. `CREDITNODE_DATABASE__URL`), over an optional TOML
file (written by `creditnode init`), over the defaults below. In `production` mode the node refuses to start
when a secret is missing or still has its development default.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

__all__ = [
    "CONFIG_ENV",
    "DEV_SECRET_MARK",
    "ConfigurationProblem",
    "AccountSettings",
    "DatabaseSettings",
    "EngageSettings",
    "FederationSettings",
    "ImportSettings",
    "InsecureConfiguration",
    "NodeSettings",
    "OpsSettings",
    "RateLimitSettings",
    "RegionProfile",
    "SecuritySettings",
    "Settings",
    "TestingSettings",
    "find_config",
    "find_settings",
    "load_region",
    "region_names",
]

REGIONS_DIR = Path(__file__).parent / "regions"
STANDARDS_DIR = Path(__file__).parent / "standards"
EXAMPLES_DIR = Path(__file__).parent / "examples"
# Every development default secret contains this mark, so production mode can recognise and refuse it.
DEV_SECRET_MARK = "insecure-development-default"


class InsecureConfiguration(RuntimeError):
    """Production mode with a missing or default secret."""


@dataclass(frozen=True)
class FrameworkLevel:
    code: str
    name_zh: str
    reference_level: str


@dataclass(frozen=True)
class RegionProfile:
    """A founding region's file from `config/regions/`."""

    node_id: str
    name_zh: str
    name_en: str
    base_url: str
    default_port: int
    sqlite_file: str
    hours_per_credit: Decimal
    account_prefix: str
    framework_levels: tuple[FrameworkLevel, ...] = field(default=())
    # the standards bundles `creditnode init` loads (files in config/standards/, the shared framework first)
    standards: tuple[str, ...] = field(default=())

    @property
    def standards_files(self) -> tuple[Path, ...]:
        return tuple(STANDARDS_DIR / name for name in self.standards)


def region_names() -> list[str]:
    return sorted(p.stem for p in REGIONS_DIR.glob("*.toml"))


@lru_cache(maxsize=16)
def load_region(name: str) -> RegionProfile:
    path = REGIONS_DIR / f"{name}.toml"
    if not path.is_file():
        raise ValueError(f"unknown region {name!r}; known regions: {', '.join(region_names())}")
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    levels = tuple(FrameworkLevel(**lv) for lv in data.pop("framework_levels", []))
    data["hours_per_credit"] = Decimal(data["hours_per_credit"])
    data["standards"] = tuple(data.get("standards", ()))
    return RegionProfile(framework_levels=levels, **data)


class NodeSettings(BaseModel):
    region: str = "shanghai"
    node_id: str | None = None  # defaults to the region file's node_id
    base_url: str | None = None  # defaults to the region file's base_url
    data_dir: Path = Path("data")
    mode: Literal["development", "production", "test"] = "development"
    log_level: str = "INFO"
    # Request bodies over this are refused (413) before they are read; uploads and the federation inbox have
    # their own limits (imports.max_upload_bytes, imports.max_evidence_bytes, federation.max_body_bytes).
    max_body_bytes: int = 1024 * 1024
    # text: `time level logger [request-id] message`; json: one object per line (docs/operations.md)
    log_format: Literal["text", "json"] = "text"
    # The hottest reads (a learner's archive, credential and transcript, the discovery document) answered in
    # their plain case past the framework, byte for byte as their routes answer (node/fastlane.py). Off: every
    # request goes through its route.
    fast_reads: bool = True
    # A learner asking again for their signed transcript within this many seconds, with nothing in it changed,
    # gets the same signed presentation (its id, issue time and proofs); 0: signed afresh every time.
    transcript_reuse_seconds: int = Field(default=300, ge=0, le=86400)

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        if value not in region_names():
            raise ValueError(f"unknown region {value!r}; known regions: {', '.join(region_names())}")
        return value
    # did:web requires https: production refuses an http:// base URL unless this says the node serves a
    # private network only (docs/operations.md, "Base URL and did:web").
    allow_http_base_url: bool = False


class DatabaseSettings(BaseModel):
    url: str | None = None  # defaults to SQLite under data_dir
    echo: bool = False
    pool_size: int = 10


class SecuritySettings(BaseModel):
    # AES-256-GCM key for ID numbers and names at rest (urlsafe base64 of 32 bytes) and its key id.
    database_key: SecretStr = SecretStr(f"{DEV_SECRET_MARK}-database-key")
    database_key_id: str = "k1"
    # Older keys still needed to decrypt rows written before a rotation: {key_id: key}.
    retired_database_keys: dict[str, SecretStr] = Field(default_factory=dict)
    blind_index_key: SecretStr = SecretStr(f"{DEV_SECRET_MARK}-blind-index-key")
    token_secret: SecretStr = SecretStr(f"{DEV_SECRET_MARK}-token-secret")
    token_ttl_seconds: int = 3600
    # Node signing keys (Ed25519), encrypted with the database key; see docs/operations.md.
    node_key_file: Path | None = None
    verify_rate_limit_per_minute: int = 60


class AccountSettings(BaseModel):
    """Learner access and sign-in protection (docs/accounts.md)."""

    activation_code_ttl_days: int = Field(default=30, ge=1, le=366)
    registration_ttl_days: int = Field(default=30, ge=1, le=366)
    # Lockout: this many failed sign-ins (or activation codes) within the window lock the account (or the
    # unknown name) for lockout_seconds, doubling with each lockout in a row up to lockout_max_seconds.
    lockout_failures: int = Field(default=5, ge=1)
    lockout_window_seconds: int = Field(default=900, ge=1)
    lockout_seconds: int = Field(default=300, ge=1)
    lockout_max_seconds: int = Field(default=86_400, ge=1)
    # Argon2 runs at most this many at once (each takes 64 MiB and 4 lanes); this many more may wait,
    # beyond that a sign-in is refused at once with 429 rather than tie up a worker thread.
    password_hash_concurrency: int = Field(default=2, ge=1)
    password_hash_queue: int = Field(default=8, ge=0)


class RateLimitSettings(BaseModel):
    """Per-client rate limits (node.security.ratelimit, on the `limits` library; docs/accounts.md)."""

    # `memory://` keeps the counters in each process; several worker processes share them through
    # `database` (the node's own database, table rate_limit_counter; `serve --workers N` switches memory:// to it)
    # or e.g. `redis://host:6379` (install `limits[redis]`).
    storage_uri: str = "memory://"
    # Proxies whose X-Forwarded-For is believed: addresses or networks (`10.0.0.0/8`), or `*` for any
    # (only when the node is reachable through the proxy alone). Empty: the TCP peer is the client.
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # In-memory storage keeps at most this many clients per window; beyond it new clients are refused.
    max_clients: int = Field(default=100_000, ge=1)
    sign_in: str = "20/minute"  # sign-in, activation and password change, per client
    registration: str = "10/minute"  # online registration, per client

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _split_ips(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("sign_in", "registration")
    @classmethod
    def _limit(cls, value: str) -> str:
        from limits import parse_many

        try:
            parse_many(value)
        except ValueError:
            raise ValueError(f"not a rate limit: {value!r} (e.g. '20/minute' or '5/second;100/hour')") from None
        return value


class ImportSettings(BaseModel):
    batch_size: int = 5000
    max_evidence_bytes: int = 10 * 1024 * 1024
    max_upload_bytes: int = 2 * 1024 * 1024 * 1024  # a bulk-deposit file (POST /api/v1/imports)
    evidence_types: list[str] = Field(
        default_factory=lambda: ["application/pdf", "image/jpeg", "image/png"]
    )
    run_in_background: bool = True
    # Limits on what an upload may cost to read (docs/imports.md, "Limits"): a header, a JSON line, an XLSX
    # archive inspected before openpyxl parses anything.
    max_header_columns: int = 64
    max_header_chars: int = 16 * 1024
    max_jsonl_line_bytes: int = 1024 * 1024
    xlsx_max_members: int = 1000
    xlsx_max_uncompressed_bytes: int = 2 * 1024**3
    xlsx_max_ratio: int = 200
    xlsx_max_part_bytes: int = 16 * 1024**2
    xlsx_max_shared_strings: int = 2_000_000
    xlsx_max_shared_strings_bytes: int = 256 * 1024**2
    # Retention (docs/imports.md, "Stored files"): the rejected-row report of a finished job, and the
    # encrypted upload of a failed job kept for a resume; `imports.purge` deletes both after these days.
    report_retention_days: int = 90
    failed_upload_retention_days: int = 30


class FederationSettings(BaseModel):
    membership_file: Path | None = None
    signature_window_seconds: int = 300
    max_body_bytes: int = 1024 * 1024
    outbox_max_attempts: int = 12
    # An outbox worker whose heartbeat is older than this is gone: its claimed rows are taken back at once
    # (a worker on the same host whose process is not running is gone at once, whatever its heartbeat).
    outbox_worker_stale_seconds: int = Field(default=60, ge=30)
    scheduler_enabled: bool = False
    # Conformance testing (conformance-tests/README.md): enables the /api/v1/testing/* endpoints (test
    # membership, reset, flush) and the fault switches. Refused in production mode.
    test_mode: bool = False


class EngageSettings(BaseModel):
    """Incentive points, notices and their delivery, counselling (issue 16, items 5-8; docs/engage.md)."""

    # The earning rules and the benefits, as data (TOML); None: config/engage/points.toml
    points_file: Path | None = None
    # A deadline notice this many days before a certificate's validity ends
    expiry_notice_days: int = Field(default=30, ge=1, le=366)
    # A warning this many days before a record stops being usable under a rule in force it matches (a
    # "within N years" condition running out, or the rule's end): engage.window_notices
    window_notice_days: int = Field(default=60, ge=1, le=366)
    # E-mail through SMTP (smtplib); off until a relay is configured
    email_enabled: bool = False
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_timeout_seconds: float = Field(default=10.0, gt=0)
    mail_from: str = "noreply@creditnode.invalid"
    # SMS: "log" writes a line per message (no gateway is bundled); "off" sends nothing
    sms_sender: Literal["log", "off"] = "log"
    delivery_max_attempts: int = Field(default=8, ge=1, le=50)
    delivery_batch: int = Field(default=100, ge=1, le=10_000)
    # The code a learner gives an outlet for a what-if is valid this long, once
    counselling_code_minutes: int = Field(default=120, ge=5, le=7 * 24 * 60)


class OpsSettings(BaseModel):
    """`/health`, `/ready` and `/metrics` (docs/operations.md, "Monitoring")."""

    metrics_enabled: bool = True
    # When set, `/metrics` answers only `Authorization: Bearer <metrics_token>` (Prometheus: `authorization`).
    metrics_token: SecretStr | None = None
    # Without a token: public when the base URL is a loopback address (None), or always (true) / never (false).
    metrics_public: bool | None = None
    # FastAPI's built-in OpenTelemetry instrumentation (spans per request and per dependency, OTel metrics and
    # logs through the global providers). Off by default: it is checked on every request (~15 % of a cheap
    # request's CPU, docs/performance.md) and the node's own `/metrics` covers monitoring.
    opentelemetry: bool = False


# Deliberate protocol faults, honoured only with federation.test_mode (conformance-tests/README.md).
FAULTS = frozenset({"replay_check_off", "accept_unknown_keys", "non_jcs_canonicalisation", "no_retry",
                    "double_delivery", "wrong_conversion"})


class ProjectsSettings(BaseModel):
    """双证融通 projects (docs/projects.md): the exemption report to the appraisal centre on a schedule."""

    # Each published or suspended project's signed exemption list is issued once per period (for the period
    # just ended) by the job `projects.report_exemptions`; "off": on request only
    report_period: Literal["off", "week", "month", "quarter"] = "month"


class PrivacySettings(BaseModel):
    """Erasure of a person (docs/privacy.md)."""

    # The archive is kept for the life of the account; on the basis `retention_expired` the centre may erase a
    # person whose last ledger event is at least this many years old
    retention_years_after_last_activity: int = Field(default=30, ge=1, le=100)


class StatsSettings(BaseModel):
    """Statistics (docs/statistics.md): the public view shows no group smaller than `public_min_group`."""

    public_min_group: int = Field(default=10, ge=2, le=1000)


class TestingSettings(BaseModel):
    """Fault switches for testing the conformance suite: `CREDITNODE_TESTING__FAULTS=a,b`."""

    faults: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("faults", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        unknown = sorted(set(value or ()) - FAULTS)
        if unknown:
            raise ValueError(f"unknown fault(s) {unknown}; known: {sorted(FAULTS)}")
        return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CREDITNODE_", env_nested_delimiter="__", extra="ignore", validate_default=True
    )

    node: NodeSettings = Field(default_factory=NodeSettings)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    security: SecuritySettings = Field(default_factory=SecuritySettings)
    accounts: AccountSettings = Field(default_factory=AccountSettings)
    ratelimit: RateLimitSettings = Field(default_factory=RateLimitSettings)
    imports: ImportSettings = Field(default_factory=ImportSettings)
    federation: FederationSettings = Field(default_factory=FederationSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    stats: StatsSettings = Field(default_factory=StatsSettings)
    engage: EngageSettings = Field(default_factory=EngageSettings)
    projects: ProjectsSettings = Field(default_factory=ProjectsSettings)
    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    testing: TestingSettings = Field(default_factory=TestingSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlFileSource(settings_cls))

    @model_validator(mode="after")
    def _refuse_insecure_production(self) -> Settings:
        if self.testing.faults and not self.federation.test_mode:
            raise InsecureConfiguration("testing.faults are honoured only with federation.test_mode")
        if self.node.mode == "production":
            problems = self.insecure_secrets()
            if problems:
                raise InsecureConfiguration(
                    "refusing to start in production mode: " + "; ".join(problems)
                )
        return self

    def insecure_secrets(self) -> list[str]:
        problems = []
        for name in ("database_key", "blind_index_key", "token_secret"):
            value = getattr(self.security, name).get_secret_value()
            if not value:
                problems.append(f"security.{name} is missing")
            elif DEV_SECRET_MARK in value:
                problems.append(f"security.{name} still has its development default")
        if self.node.mode == "production" and not self.database.url:
            problems.append("database.url must be set explicitly in production")
        if self.node.mode == "production" and (self.federation.test_mode or self.testing.faults):
            problems.append("federation.test_mode and testing.faults are refused in production")
        if self.node.mode == "production" and self.base_url.startswith("http://") \
                and not self.node.allow_http_base_url:
            problems.append(f"node.base_url {self.base_url} is not https (did:web requires https); set "
                            "node.allow_http_base_url = true only for a node on a private network")
        return problems

    # -- derived values -------------------------------------------------------------------------
    @property
    def region(self) -> RegionProfile:
        return load_region(self.node.region)

    @property
    def node_id(self) -> str:
        return self.node.node_id or self.region.node_id

    @property
    def base_url(self) -> str:
        return (self.node.base_url or self.region.base_url).rstrip("/")

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite:///{(self.node.data_dir / self.region.sqlite_file).resolve()}"

    @property
    def evidence_dir(self) -> Path:
        return self.node.data_dir / "evidence"

    @property
    def active_faults(self) -> frozenset[str]:
        """The fault switches in force: empty unless federation.test_mode is on (never in production)."""
        return frozenset(self.testing.faults) if self.federation.test_mode else frozenset()

    @property
    def node_key_file(self) -> Path:
        return self.security.node_key_file or (self.node.data_dir / "node-keys.json")


CONFIG_ENV = "CREDITNODE_CONFIG"
CONFIG_FILENAME = "creditnode.toml"
# A configuration given entirely by the environment (containers): its secrets are there.
ENV_ONLY_MARK = "CREDITNODE_SECURITY__DATABASE_KEY"


class ConfigurationProblem(RuntimeError):
    """The node cannot run as configured; the message is one line with the fix."""


def find_config(explicit: Path | None, *, cwd: Path | None = None) -> Path | None:
    """The configuration file to use: `--config`, else `$CREDITNODE_CONFIG`, else `./creditnode.toml`.

    None when there is none but the environment configures the node on its own (its secrets are set).
    Raises `ConfigurationProblem` when a named file does not exist or nothing is found at all."""
    if explicit is not None:
        if not explicit.is_file():
            raise ConfigurationProblem(f"--config {explicit}: no such file")
        return explicit.resolve()
    named = os.environ.get(CONFIG_ENV)
    if named:
        path = Path(named)
        if not path.is_file():
            raise ConfigurationProblem(
                f"{CONFIG_ENV}={named}: no such file; point it at the creditnode.toml written by `creditnode init`"
            )
        return path.resolve()
    local = (cwd or Path.cwd()) / CONFIG_FILENAME
    if local.is_file():
        return local.resolve()
    if os.environ.get(ENV_ONLY_MARK):
        return None
    raise ConfigurationProblem(
        f"no configuration found (looked for --config, ${CONFIG_ENV} and ./{CONFIG_FILENAME}): "
        f"for a new node run `creditnode init --region REGION --data-dir DIR`, "
        f"for an existing one `export {CONFIG_ENV}=DIR/{CONFIG_FILENAME}`"
    )




def find_settings(explicit: Path | None = None) -> Settings:
    """The settings of the node a command works on: the file `find_config` finds (its path is then exported as
    `CREDITNODE_CONFIG` for this process), under the environment. Raises `ConfigurationProblem` with one line
    for every way this can fail (nothing found, a named file missing, bad TOML, a bad value, insecure)."""
    from pydantic import ValidationError

    path = find_config(explicit)
    if path is not None:
        os.environ[CONFIG_ENV] = str(path)
    where = str(path) if path is not None else "the environment"
    try:
        return Settings()
    except InsecureConfiguration as exc:
        raise ConfigurationProblem(f"{where}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationProblem(f"{where}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigurationProblem(f"{where}: {problems}") from None


class _TomlFileSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by CREDITNODE_CONFIG (written by `creditnode init`)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get(CONFIG_ENV)
        if not path:
            return {}
        file = Path(path)
        if not file.is_file():
            raise FileNotFoundError(f"CREDITNODE_CONFIG points to {file}, which does not exist")
        return tomllib.loads(file.read_text(encoding="utf-8"))
