"""Rule-based processing: checks a payment must pass before the gateway is asked.

Rules come from configuration (``RuleSet.from_config``); the first rule that
blocks names itself in the decline. The velocity rule needs a count that only
storage can keep exact under concurrency: ``first_violation`` checks the rest,
and the payment use case counts each card's attempts per UTC hour in the same
transaction that records the payment (``VELOCITY_RULE``)."""

from dataclasses import dataclass, field
from typing import Any

VELOCITY_RULE = "velocity_per_hour"


@dataclass(frozen=True)
class PaymentAttempt:
    amount: int
    currency: str
    fingerprint: str


@dataclass(frozen=True)
class RuleSet:
    # Inclusive upper limit per currency, in minor units; currencies without one have none.
    max_amount: dict[str, int] = field(default_factory=dict)
    # Currencies accepted; empty accepts every currency the service supports.
    allowed_currencies: frozenset[str] = frozenset()
    # At most this many payments per card fingerprint per UTC hour (0: no limit).
    velocity_per_hour: int = 0
    blocked_fingerprints: frozenset[str] = frozenset()

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RuleSet":
        return cls(
            max_amount={code.upper(): int(limit) for code, limit in config.get("max_amount", {}).items()},
            allowed_currencies=frozenset(code.upper() for code in config.get("allowed_currencies", ())),
            velocity_per_hour=int(config.get("velocity_per_hour", 0)),
            blocked_fingerprints=frozenset(config.get("blocked_fingerprints", ())),
        )

    def first_violation(self, attempt: PaymentAttempt) -> str | None:
        """The name of the first rule the attempt breaks, or None."""
        if attempt.fingerprint in self.blocked_fingerprints:
            return "blocked_fingerprint"
        if self.allowed_currencies and attempt.currency not in self.allowed_currencies:
            return "currency_allow_list"
        limit = self.max_amount.get(attempt.currency)
        if limit is not None and attempt.amount > limit:
            return "max_amount"
        return None
