"""Typed per-environment configuration: the one place names, limits and tags are set."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl

DEFAULT_TAGS: dict[str, str] = {
    "service": "payment-ledger",
    "managed-by": "cdktf",
    "data-classification": "pci",
}


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Throttling(_Frozen):
    rate_limit: float = Field(gt=0, description="steady requests per second across the stage")
    burst_limit: int = Field(gt=0)


class FunctionSettings(_Frozen):
    memory_mb: int = Field(default=512, ge=128, le=10240)
    timeout_seconds: int = Field(default=29, ge=1, le=29, description="API Gateway waits at most 29 s")
    reserved_concurrency: int = Field(default=10, ge=1)
    architecture: Literal["arm64", "x86_64"] = "arm64"
    runtime: Literal["python3.11"] = "python3.11"  # the Python the lock file is resolved for


class PaymentRules(_Frozen):
    """Rule-based processing (lambdas.domain.rules): what blocks a payment before the gateway."""

    max_amount: dict[str, int] = Field(default={}, description="inclusive limit per currency, minor units")
    allowed_currencies: tuple[str, ...] = Field(default=(), description="empty: every supported currency")
    velocity_per_hour: int = Field(default=0, ge=0, description="payments per card fingerprint per hour; 0: off")
    blocked_fingerprints: tuple[str, ...] = ()


class EnvironmentConfig(_Frozen):
    """Everything that differs between two deployments of the service."""

    name: str = Field(pattern=r"^[a-z][a-z0-9-]{1,20}$")
    region: str = Field(pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    tags: dict[str, str] = {}
    deletion_protection: bool = True
    log_retention_days: Literal[365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653] = 365
    key_deletion_window_days: int = Field(default=30, ge=7, le=30)
    throttling: Throttling = Throttling(rate_limit=50, burst_limit=100)
    max_body_bytes: int = Field(default=32 * 1024, description="larger bodies get 413")
    functions: FunctionSettings = FunctionSettings()
    gateway_base_url: HttpUrl = HttpUrl("http://127.0.0.1:4010")
    gateway_read_timeout_seconds: float = Field(default=10.0, gt=0, lt=29)
    rules: PaymentRules = PaymentRules()

    @property
    def prefix(self) -> str:
        """Prefix of every resource name of this environment."""
        return f"payments-{self.name}"

    @property
    def stack_id(self) -> str:
        return f"payments-{self.name}"


ENVIRONMENTS: dict[str, EnvironmentConfig] = {
    "dev": EnvironmentConfig(
        name="dev",
        region="us-east-1",
        tags={"environment": "dev", "cost-center": "payments-engineering"},
        deletion_protection=False,
        key_deletion_window_days=7,
        throttling=Throttling(rate_limit=50, burst_limit=100),
        functions=FunctionSettings(reserved_concurrency=5),
        # Loose enough for integration suites that pay with the same test card all day.
        rules=PaymentRules(velocity_per_hour=1000),
    ),
    "prod": EnvironmentConfig(
        name="prod",
        region="us-east-1",
        tags={"environment": "prod", "cost-center": "payments"},
        log_retention_days=731,
        throttling=Throttling(rate_limit=200, burst_limit=400),
        functions=FunctionSettings(reserved_concurrency=50, memory_mb=1024),
        gateway_base_url=HttpUrl("https://api.sparkle.example/"),
        rules=PaymentRules(
            max_amount={"USD": 1_000_000, "EUR": 1_000_000, "GBP": 1_000_000, "JPY": 100_000_000},
            velocity_per_hour=20,
        ),
    ),
}
