"""Typed per-environment configuration: the one place names, limits and tags are set.

The repository sets what every deployment shares (``REPOSITORY_SETTINGS``); the operator of a deployment sets, in a
TOML file with one table per environment, what only they know: the account, the gateway's URL, the API's domain and
certificate, the merchants. A production environment does not synthesize without them."""

import ipaddress
import os
import tomllib
from collections.abc import Iterable
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationError, model_validator

from lambdas import SERVICE_NAME
from lambdas.deadline import WRITE_RESERVE_SECONDS
from lambdas.domain.merchants import any_path, principal_key
from lambdas.domain.money import MAX_AMOUNT, MIN_AMOUNT, SUPPORTED_CURRENCIES
from lambdas.gateway_settings import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, DEFAULT_RETRY, RetryPolicy
from lambdas.routes import Function
from stacks.api_policy import DEFAULT_RESOURCE_POLICY_QUOTA

API_GATEWAY_LIMIT_SECONDS = 29  # API Gateway's integration timeout: the longest any request may take
# A retried payment or refund whose first answer was lost makes two gateway calls: a lookup, then the charge or refund.
GATEWAY_CALLS_PER_REQUEST = 2

EMULATOR_ACCOUNT = "123456789012"  # moto's account, where `make local` runs the dev stack
OPERATOR_CONFIG_VARIABLE = "PAYMENTS_OPERATOR_CONFIG"  # the operator's file; set empty for the repository's alone
DEFAULT_OPERATOR_CONFIG = Path(__file__).resolve().parent.parent / "operator.toml"
# Names reserved for documentation and tests (RFC 2606, RFC 6761): a production host under one is a placeholder.
PLACEHOLDER_DOMAINS = ("example", "invalid", "localhost", "test", "example.com", "example.net", "example.org")

RESOURCE_PREFIX = "payments-"  # of every resource and stack name the service creates


def state_key_alias(bucket: str) -> str:
    """The KMS key of a Terraform state bucket: `make bootstrap` makes it the bucket's default, and every S3 backend
    names it (``kms_key_id``). An alias has no dots, which a bucket's name may have."""
    return f"alias/terraform-state/{bucket.replace('.', '-')}"


DEFAULT_TAGS: dict[str, str] = {
    "service": SERVICE_NAME,
    "managed-by": "cdktf",
    "data-classification": "pci",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Throttling(_Frozen):
    """API Gateway's token bucket: ``rate_limit`` requests per second on average, bursts of up to ``burst_limit``."""

    rate_limit: float = Field(gt=0, description="steady requests per second")
    burst_limit: int = Field(gt=0)

    def exceeds(self, other: "Throttling") -> bool:
        return self.rate_limit > other.rate_limit or self.burst_limit > other.burst_limit


# Regions where Lambda has no SnapStart (the Lambda Developer Guide, "Supported Regions" of SnapStart).
SNAP_START_UNAVAILABLE_REGIONS = ("ap-east-2", "ap-southeast-6")

# API Gateway's default quota of usage plans per account and region (300, adjustable in Service Quotas). Each merchant
# has one (stacks/payment_api.py); an operator whose quota AWS raised sets EnvironmentConfig.usage_plan_quota to it.
DEFAULT_USAGE_PLAN_QUOTA = 300


class FunctionSettings(_Frozen):
    memory_mb: int = Field(default=512, ge=128, le=10240)
    timeout_seconds: int = Field(default=25, ge=1, lt=API_GATEWAY_LIMIT_SECONDS, description="below API Gateway's 29 s")
    architecture: Literal["arm64", "x86_64"] = "arm64"
    runtime: Literal["python3.13"] = "python3.13"  # the bundle installs the lock's lambda category for it
    # Concurrency held back for each function (and taken from the account's unreserved pool); None: none held.
    reserved_concurrency: int | None = Field(default=10, ge=1)


class GatewaySettings(_Frozen):
    """How the Sparkle client (lambdas.adapters.sparkle) waits and retries, from lambdas.gateway_settings's defaults:
    one gateway call takes at most ``attempts`` attempts of ``connect + read`` seconds each, with the backoff
    (doubled each time) between them."""

    connect_timeout_seconds: float = Field(default=DEFAULT_CONNECT_TIMEOUT, gt=0)
    read_timeout_seconds: float = Field(default=DEFAULT_READ_TIMEOUT, gt=0)
    attempts: int = Field(default=DEFAULT_RETRY.attempts, ge=1)
    backoff_seconds: float = Field(
        default=DEFAULT_RETRY.backoff_seconds, ge=0, description="before the second attempt, then doubled"
    )

    @property
    def attempt_seconds(self) -> float:
        return self.connect_timeout_seconds + self.read_timeout_seconds

    @property
    def call_seconds(self) -> float:
        """The longest one gateway call takes when every attempt times out."""
        backoff = sum(RetryPolicy(self.attempts, self.backoff_seconds).delays())
        return self.attempts * self.attempt_seconds + backoff


class PaymentRules(_Frozen):
    """Rule-based processing (lambdas.domain.rules): what blocks a payment before the gateway.

    Every currency a rule set accepts has a cap: a currency left out of ``max_amount`` is refused here,
    not accepted without a limit."""

    max_amount: dict[str, Annotated[int, Field(ge=MIN_AMOUNT, le=MAX_AMOUNT)]] = Field(
        description="inclusive limit per currency, minor units"
    )
    allowed_currencies: tuple[str, ...] = Field(default=(), description="empty: every supported currency")
    velocity_per_hour: int = Field(default=0, ge=0, description="payments per card fingerprint per hour; 0: off")
    blocked_fingerprints: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _every_accepted_currency_is_capped(self) -> "PaymentRules":
        accepted = self.allowed_currencies or tuple(SUPPORTED_CURRENCIES)
        unsupported = sorted((set(accepted) | set(self.max_amount)) - set(SUPPORTED_CURRENCIES))
        if unsupported:
            raise ValueError(f"currencies the service does not support: {', '.join(unsupported)}")
        uncapped = [currency for currency in accepted if currency not in self.max_amount]
        if uncapped:
            raise ValueError(f"accepted currencies without a max_amount: {', '.join(uncapped)}")
        return self


PRINCIPAL = r"^(\d{12}|arn:aws[a-z-]*:iam::\d{12}:(role|user)/([\w+=,.@-]+/)*[\w+=,.@-]{1,128})$"
# A key administrator: a role or user ARN, whose path and name may hold IAM's wildcards (an SSO role's suffix).
KEY_ADMINISTRATOR = r"^arn:aws[a-z-]*:iam::\d{12}:(role|user)/[A-Za-z0-9_+=,.@/*?-]+$"


class MerchantRules(_Frozen):
    """A merchant's own rules: each field set here replaces the environment's (``PaymentRules``)."""

    max_amount: dict[str, Annotated[int, Field(ge=MIN_AMOUNT, le=MAX_AMOUNT)]] | None = None
    allowed_currencies: tuple[str, ...] | None = None
    velocity_per_hour: int | None = Field(default=None, ge=0)
    blocked_fingerprints: tuple[str, ...] | None = None


class MerchantConfig(_Frozen):
    """A tenant, and the IAM principals that act for it: role ARNs, user ARNs or whole account ids. A session of
    a role acts as the role; a named role or user wins over its whole account."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    principals: tuple[Annotated[str, Field(pattern=PRINCIPAL)], ...] = Field(min_length=1)
    rules: MerchantRules = MerchantRules()
    throttling: Throttling | None = None  # its own request rate; None: the environment's merchant_throttling

    def effective_rules(self, defaults: PaymentRules) -> PaymentRules:
        """The environment's rules with this merchant's own over them, checked as a whole (every currency capped)."""
        own = self.rules.model_dump(exclude_none=True)
        return PaymentRules.model_validate(defaults.model_dump() | own)


def _is_placeholder(host: str) -> bool:
    """A name reserved for documentation or tests, or this machine itself: no production gateway or domain."""
    host = host.lower().rstrip(".").strip("[]")  # a trailing dot names the same host; an IPv6 literal in brackets
    try:
        return ipaddress.ip_address(host).is_loopback or ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return any(host == name or host.endswith("." + name) for name in PLACEHOLDER_DOMAINS)


class AlarmSubscription(_Frozen):
    """Who hears the environment's alarms (an SNS subscription: an email address, an https endpoint, an SQS queue or
    Lambda function ARN; an email address confirms by mail)."""

    protocol: Literal["email", "https", "sqs", "lambda"]
    endpoint: str = Field(min_length=3)


class AlarmSettings(_Frozen):
    """The alarms' thresholds (stacks/monitoring.py; what each means: docs/runbook.md) and who hears them."""

    subscriptions: tuple[AlarmSubscription, ...] = ()
    period_seconds: Literal[60, 300, 900] = 300
    api_5xx_rate: float = Field(default=0.01, gt=0, lt=1, description="share of the API's requests answered 5xx")
    p99_latency_ms: int = Field(default=10_000, gt=0, le=API_GATEWAY_LIMIT_SECONDS * 1000)
    function_errors: int = Field(default=1, ge=1, description="errors of one function in a period")
    function_throttles: int = Field(default=1, ge=1)
    pending_overdue: int = Field(default=1, ge=1, description="payments and refunds pending over 10 minutes")
    reconcile_errors: int = Field(default=1, ge=1, description="items a reconcile run could not settle")
    waf_blocked: int = Field(default=100, ge=1, description="requests the web ACL blocks in a period")
    webhook_failures: int = Field(default=50, ge=1, description="webhook POSTs that failed in a period")
    webhook_undelivered_seconds: int = Field(
        default=3600, ge=60, description="age of the oldest event a delivery run found still undelivered"
    )


class CustomDomain(_Frozen):
    """The API's own name: served with TLS 1.2 or better (the execute-api endpoint negotiates TLS 1.0)."""

    name: str = Field(pattern=r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
    # An ACM certificate for ``name`` in the environment's region (a regional endpoint's certificate lives there).
    certificate_arn: str = Field(pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$")
    security_policy: Literal["TLS_1_2"] = "TLS_1_2"

    @property
    def certificate_region(self) -> str:
        return self.certificate_arn.split(":")[3]

    @property
    def certificate_account(self) -> str:
        return self.certificate_arn.split(":")[4]


class EnvironmentConfig(_Frozen):
    """Everything that differs between two deployments of the service."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,20}$")
    # Production: the gateway over https, the API only on a TLS 1.2 custom domain, no placeholder host.
    production: bool = True
    account_id: str = Field(pattern=r"^\d{12}$", description="the only account Terraform may change")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    domain: CustomDomain | None = None
    tags: dict[str, str] = {}
    deletion_protection: bool = True
    log_retention_days: Literal[365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653] = 365
    # How long each checkpoint's write-once copy is locked (S3 Object Lock, compliance mode) from when it is made.
    # The ledger keeps its entries for good (no TTL, deletion protection), and each checkpoint commits to every entry
    # before it, so the newest ones, locked for the next ten years, anchor the whole ledger while the service runs;
    # ten years outlasts the usual 7 years of keeping financial records. A lock cannot be shortened, and a bucket
    # with locked objects cannot be deleted: dev, whose tables can be destroyed, locks a day.
    checkpoint_retention_days: int = Field(default=3653, ge=1)
    key_deletion_window_days: int = Field(default=30, ge=7, le=30)
    throttling: Throttling = Throttling(rate_limit=50, burst_limit=100)  # the stage's, every merchant's requests
    # Each merchant's own rate unless it sets one (MerchantConfig.throttling): one merchant over it gets 429s, the
    # others are not affected while all of them together stay within the stage's.
    merchant_throttling: Throttling = Throttling(rate_limit=20, burst_limit=40)
    usage_plan_quota: int = Field(default=DEFAULT_USAGE_PLAN_QUOTA, ge=DEFAULT_USAGE_PLAN_QUOTA)
    functions: FunctionSettings = FunctionSettings()
    gateway_base_url: HttpUrl
    gateway: GatewaySettings = GatewaySettings()
    alarms: AlarmSettings = AlarmSettings()
    # Terraform state: in this S3 bucket (versioned, KMS-encrypted, native lock file; `make bootstrap` creates it),
    # or, when None, in .state/ at the repository root, outside cdktf.out/ (which a re-synth or `make clean` clears).
    state_bucket: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
    # API Gateway's quota on the REST API's resource policy, in characters, which lists every configured account
    # (about 240 fit the default): set it to what AWS raised it to (stacks/api_policy.py).
    resource_policy_quota: int = Field(default=DEFAULT_RESOURCE_POLICY_QUOTA, ge=DEFAULT_RESOURCE_POLICY_QUOTA)
    # Who administers the KMS keys (IAM role or user ARNs of this account, wildcards allowed): each key's policy
    # refuses them every use and every grant, directly or through a service (stacks/payment_key.py). Leave the
    # deployer out: Terraform uses the vault key through DynamoDB (the merchants' items, a table's grant).
    key_administrators: tuple[Annotated[str, Field(pattern=KEY_ADMINISTRATOR)], ...] = ()
    # SnapStart for the functions that serve requests (docs/adr/0008-snapstart.md): each deploy publishes a version
    # that Lambda snapshots once initialized, and API Gateway invokes it through the alias ``live``. Off: $LATEST.
    snap_start: bool = Field(default=False, strict=True)
    rules: PaymentRules  # every merchant's, unless it sets its own
    merchants: tuple[MerchantConfig, ...] = Field(min_length=1, description="nothing is served without one")

    @property
    def gateway_budget_seconds(self) -> float:
        """The most a request's gateway calls can take: its deadline (lambdas.deadline) is the
        function's time less the reserve for recording the outcome."""
        return self.functions.timeout_seconds - WRITE_RESERVE_SECONDS

    @property
    def worst_case_seconds(self) -> float:
        """The longest a request can take: both gateway calls with every attempt timing out, cut
        at the deadline, then the write reserve.

        A figure cut at the deadline equals the function's timeout, so such a configuration is
        refused (the timeout itself is below API Gateway's 29 s): only the deadline would stop
        it, with no time left for the work before the gateway calls. Connect 3 s, read 10 s, 3
        attempts and a 0.2 s backoff (39.6 s a call, 79.2 s for two) are such a case: cut to the
        25 s of a 25 s function, and refused."""
        gateway = GATEWAY_CALLS_PER_REQUEST * self.gateway.call_seconds
        return min(gateway, self.gateway_budget_seconds) + WRITE_RESERVE_SECONDS

    @model_validator(mode="after")
    def _time_budget_holds(self) -> "EnvironmentConfig":
        timeout, gateway = self.functions.timeout_seconds, self.gateway
        if gateway.attempt_seconds > self.gateway_budget_seconds:
            raise ValueError(
                f"one gateway attempt (connect {gateway.connect_timeout_seconds} s + read "
                f"{gateway.read_timeout_seconds} s) does not fit the {self.gateway_budget_seconds} s "
                f"a {timeout} s function leaves after the {WRITE_RESERVE_SECONDS} s write reserve"
            )
        if self.worst_case_seconds >= timeout:
            raise ValueError(
                f"a request can take {GATEWAY_CALLS_PER_REQUEST} x {gateway.call_seconds:.1f} s at the gateway "
                f"+ {WRITE_RESERVE_SECONDS} s of writes, which reaches the {timeout} s function timeout: "
                f"shorten the timeouts or retry less"
            )
        return self

    @model_validator(mode="after")
    def _production_is_served_and_reached_over_tls(self) -> "EnvironmentConfig":
        if self.gateway_base_url.username or self.gateway_base_url.password:
            raise ValueError("gateway_base_url carries credentials: the Sparkle key belongs in its secret, not a URL")
        if not self.production:
            return self
        if self.gateway_base_url.scheme != "https":
            raise ValueError(f"gateway_base_url must be https in a production environment: {self.gateway_base_url}")
        if self.domain is None:
            raise ValueError(
                "a production environment serves its API on a custom domain with TLS 1.2: set domain "
                "(name and certificate_arn); the execute-api endpoint accepts TLS 1.0 and is disabled"
            )
        if self.domain.certificate_account != self.account_id:
            raise ValueError(
                f"the certificate of {self.domain.name} belongs to account {self.domain.certificate_account}; "
                f"API Gateway in {self.account_id} can use only its own account's certificates"
            )
        if self.domain.certificate_region != self.region:
            raise ValueError(
                f"the certificate of {self.domain.name} is in {self.domain.certificate_region}; "
                f"a regional API in {self.region} needs one there"
            )
        for what, host in (("gateway_base_url", self.gateway_base_url.host or ""), ("domain", self.domain.name)):
            if _is_placeholder(host):
                raise ValueError(f"{what} is a placeholder ({host}): set the real one in the operator's configuration")
        return self

    @model_validator(mode="after")
    def _snap_start_is_available(self) -> "EnvironmentConfig":
        if self.snap_start and self.region in SNAP_START_UNAVAILABLE_REGIONS:
            raise ValueError(f"Lambda has no SnapStart in {self.region}: leave snap_start off there")
        return self

    @model_validator(mode="after")
    def _key_administrators_are_of_this_account_and_not_the_service(self) -> "EnvironmentConfig":
        foreign = [arn for arn in self.key_administrators if arn.split(":")[4] != self.account_id]
        if foreign:
            raise ValueError(f"key_administrators outside account {self.account_id}: {', '.join(foreign)}")
        # A pattern that matched the functions' own roles would deny them their keys: the service would stop.
        for pattern in self.key_administrators:
            partition = pattern.split(":")[1]
            roles = [f"arn:{partition}:iam::{self.account_id}:role/{self.role_name(f.value)}" for f in Function]
            matched = [role for role in roles if any(fnmatchcase(role, p) for p in any_path(pattern))]
            if matched:
                raise ValueError(f"key administrator {pattern} would match the service's own role {matched[0]}")
        return self

    @model_validator(mode="after")
    def _merchants_are_distinct(self) -> "EnvironmentConfig":
        ids = [merchant.id for merchant in self.merchants]
        if len(ids) != len(set(ids)):
            raise ValueError(f"merchant ids must be unique: {sorted(i for i in set(ids) if ids.count(i) > 1)}")
        acting: dict[str, str] = {}
        for merchant in self.merchants:
            for principal in merchant.principals:
                known_as = principal_key(principal)  # a role's name in any case, its sessions, at any path: one role
                if acting.setdefault(known_as, merchant.id) != merchant.id:
                    raise ValueError(f"{principal} acts for both {acting[known_as]} and {merchant.id}")
        for merchant in self.merchants:
            try:
                merchant.effective_rules(self.rules)
            except ValueError as error:
                raise ValueError(f"merchant {merchant.id}'s rules: {error}") from None
        return self

    def merchant_rate(self, merchant: MerchantConfig) -> Throttling:
        """The merchant's own request rate: its own setting, else the environment's."""
        return merchant.throttling or self.merchant_throttling

    @model_validator(mode="after")
    def _merchant_rates_fit(self) -> "EnvironmentConfig":
        if len(self.merchants) > self.usage_plan_quota:
            raise ValueError(
                f"{len(self.merchants)} merchants need as many API Gateway usage plans; the account's quota is "
                f"{self.usage_plan_quota}: have AWS raise it, then set usage_plan_quota"
            )
        for merchant in self.merchants:
            if self.merchant_rate(merchant).exceeds(self.throttling):
                raise ValueError(f"merchant {merchant.id}'s throttling exceeds the stage's ({self.throttling})")
        return self

    @property
    def prefix(self) -> str:
        """Prefix of every resource name of this environment."""
        return f"{RESOURCE_PREFIX}{self.name}"

    @property
    def stack_id(self) -> str:
        return self.prefix

    def function_name(self, function: str) -> str:
        return f"{self.prefix}-{function}"

    def role_name(self, function: str) -> str:
        """The IAM role the function runs as."""
        return f"{self.function_name(function)}-role"

    @property
    def metrics_namespace(self) -> str:
        """Where the functions' own metrics go (lambdas/metrics.py): one namespace per environment."""
        return f"PaymentLedger/{self.name}"

    @property
    def checkpoint_bucket(self) -> str:
        """The checkpoints' write-once bucket (S3 names are global: the account's id makes it this deployment's)."""
        return f"{self.prefix}-checkpoints-{self.account_id}"

    def key_alias(self, key: str) -> str:
        """The alias name of the stack's KMS key ``key`` (vault, fingerprint, operations, signing)."""
        return f"alias/{self.prefix}-{key}"

    @property
    def gateway_secret_name(self) -> str:
        """The Secrets Manager secret that holds the Sparkle secret key (its value is put by an operator)."""
        return f"{self.prefix}/sparkle-secret-key"

    @property
    def account_stack_id(self) -> str:
        """The stack of what this environment's account and region hold once for every environment (AccountStack)."""
        return f"{RESOURCE_PREFIX}account-{self.account_id}-{self.region}"

    @property
    def state_key(self) -> str:
        """The state file's name, locally and in the bucket."""
        return f"{self.stack_id}.tfstate"


# What each environment is in this repository; a production one is completed by its operator (see the module's
# docstring). dev runs as it stands, on the emulator: `make local` and the tests.
REPOSITORY_SETTINGS: dict[str, dict[str, Any]] = {
    "dev": dict(
        name="dev",
        production=False,
        account_id=EMULATOR_ACCOUNT,
        region="us-east-1",
        gateway_base_url=HttpUrl("http://127.0.0.1:4010"),  # the Sparkle sandbox
        tags={"environment": "dev", "cost-center": "payments-engineering"},
        deletion_protection=False,
        checkpoint_retention_days=1,
        key_deletion_window_days=7,
        throttling=Throttling(rate_limit=50, burst_limit=100),
        functions=FunctionSettings(reserved_concurrency=None),  # a new account's 10 units of concurrency suffice
        # Loose enough for integration suites that pay with the same test card all day;
        # every currency capped at the contract's own maximum, so only the contract limits amounts.
        rules=PaymentRules(max_amount=dict.fromkeys(SUPPORTED_CURRENCIES, MAX_AMOUNT), velocity_per_hour=1000),
        # Who administers dev's keys (an example role: a deployed dev environment names its own).
        key_administrators=(f"arn:aws:iam::{EMULATOR_ACCOUNT}:role/key-administrator",),
        # `make local` issues these users credentials in the emulator (moto's account); a deployed dev environment
        # maps its own principals here.
        merchants=(
            MerchantConfig(id="acme", principals=(f"arn:aws:iam::{EMULATOR_ACCOUNT}:user/acme-checkout",)),
            MerchantConfig(
                id="globex",
                principals=(f"arn:aws:iam::{EMULATOR_ACCOUNT}:user/globex-billing",),
                rules=MerchantRules(max_amount=dict.fromkeys(SUPPORTED_CURRENCIES, 500_000)),
                throttling=Throttling(rate_limit=5, burst_limit=10),  # its own limit shows locally (the contract)
            ),
        ),
    ),
    "prod": dict(
        name="prod",
        tags={"environment": "prod", "cost-center": "payments"},
        log_retention_days=731,
        throttling=Throttling(rate_limit=200, burst_limit=400),
        merchant_throttling=Throttling(rate_limit=50, burst_limit=100),
        functions=FunctionSettings(reserved_concurrency=50, memory_mb=1024),
        rules=PaymentRules(
            # About 10 000 USD in each currency, in its minor unit (JPY and KRW have none).
            max_amount={
                "USD": 1_000_000,
                "EUR": 1_000_000,
                "GBP": 1_000_000,
                "CHF": 1_000_000,
                "CAD": 1_400_000,
                "AUD": 1_500_000,
                "NZD": 1_700_000,
                "SGD": 1_300_000,
                "HKD": 7_800_000,
                "SEK": 10_000_000,
                "NOK": 10_000_000,
                "DKK": 7_000_000,
                "PLN": 4_000_000,
                "MXN": 20_000_000,
                "BRL": 5_500_000,
                "INR": 85_000_000,
                "JPY": 1_500_000,
                "KRW": 14_000_000,
            },
            velocity_per_hour=20,
        ),
    ),
}
ENVIRONMENT_NAMES = tuple(REPOSITORY_SETTINGS)
REPOSITORY_OWNED = frozenset({"name", "production"})  # what an environment is; its operator sets the rest


def operator_config_file() -> Path | None:
    """The operator's file: ``$PAYMENTS_OPERATOR_CONFIG`` (empty: none), else operator.toml at the repository root."""
    path = os.environ.get(OPERATOR_CONFIG_VARIABLE)
    if path is None:
        return DEFAULT_OPERATOR_CONFIG
    return Path(path) if path else None


def operator_settings(path: Path | None) -> dict[str, dict[str, Any]]:
    """The operator's tables, one per environment. No file: none, unless the file was named (a typo is an error)."""
    if path is None or (path == DEFAULT_OPERATOR_CONFIG and not path.exists()):
        return {}
    try:
        settings = tomllib.loads(path.read_text())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ValueError(f"operator configuration {path}: {error}") from None
    for name, table in settings.items():
        if name not in ENVIRONMENT_NAMES:
            raise ValueError(f"{path}: no such environment: {name} (known: {', '.join(ENVIRONMENT_NAMES)})")
        if not isinstance(table, dict):
            raise ValueError(f"{path}: [{name}] must be one table of settings, not {type(table).__name__}")
    return settings


def load_environment(name: str, operator: dict[str, dict[str, Any]] | None = None) -> EnvironmentConfig:
    """``name``'s repository settings with the operator's table over them (each key it sets replaces the whole
    setting); a clear error naming what is missing."""
    own = (operator or {}).get(name, {})
    owned = sorted(REPOSITORY_OWNED & set(own))
    if owned:
        raise ValueError(f"[{name}] of the operator's configuration cannot set {', '.join(owned)}: the repository does")
    try:
        return EnvironmentConfig.model_validate(REPOSITORY_SETTINGS[name] | own)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg'].removeprefix('Value error, ')}"
            for e in error.errors()
        )
        source = operator_config_file() or f"${OPERATOR_CONFIG_VARIABLE}"
        raise ValueError(
            f"environment {name} cannot be synthesized: {problems}. Its operator sets these in [{name}] of {source} "
            "(docs/operating.md, 'Deploying')."
        ) from None


def check_shared_accounts(environments: Iterable[EnvironmentConfig]) -> None:
    """Environments in one account and region share its account stack, so they must keep state in one place: else
    the account stack's state would move with the environments synthesized together."""
    places: dict[str, dict[str | None, list[str]]] = {}
    for config in environments:
        places.setdefault(config.account_stack_id, {}).setdefault(config.state_bucket, []).append(config.name)
    for stack_id, by_bucket in places.items():
        if len(by_bucket) > 1:
            where = "; ".join(f"{', '.join(names)}: {bucket or '.state/'}" for bucket, names in by_bucket.items())
            raise ValueError(f"environments sharing {stack_id} keep their state in different places ({where}): "
                             "give them one state_bucket (or none)")  # fmt: skip


def configured_environment(name: str) -> EnvironmentConfig:
    """``name`` as its operator configured it (``operator_config_file``): what `cdktf synth` and the tools deploy."""
    return load_environment(name, operator_settings(operator_config_file()))


DEV = load_environment("dev")  # the embedded default: the emulator, `make local` and the tests
