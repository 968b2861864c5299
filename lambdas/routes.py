"""The public routes of the payment API (shared/docs/api-contract.md) and the
function that serves each: read by the API Gateway construct and the local runtime. What each function may do to
the service's resources is beside it, in ``lambdas.grants``."""

from dataclasses import dataclass
from enum import Enum


class Function(str, Enum):
    """One Lambda function per responsibility; the value names its handler module."""

    TOKENIZE = "tokenize"
    CHARGE = "charge"
    REFUND = "refund"
    CAPTURE = "capture"  # an authorisation's capture or cancel
    WEBHOOKS = "webhooks"  # webhook endpoints, and redeliveries
    READ = "read"
    RECONCILE = "reconcile"  # scheduled, no route: settles payments whose gateway answer was lost
    CHECKPOINT = "checkpoint"  # scheduled, no route: signs a checkpoint of each merchant's ledger
    DELIVER = "deliver"  # scheduled, no route: delivers events to webhook endpoints, and tries again
    SETTLE = "settle"  # scheduled, no route: imports the gateway's settlements and matches them against the ledger

    @property
    def handler(self) -> str:
        return f"lambdas.handlers.{self.value}.handler"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    function: Function
    idempotent: bool = False  # requires an Idempotency-Key header

    @property
    def path_parts(self) -> tuple[str, ...]:
        return tuple(part for part in self.path.split("/") if part)


ROUTES: tuple[Route, ...] = (
    Route("POST", "/tokens", Function.TOKENIZE),
    Route("POST", "/payments", Function.CHARGE, idempotent=True),
    Route("GET", "/payments", Function.READ),
    Route("GET", "/payments/{id}", Function.READ),
    Route("POST", "/payments/{id}/refunds", Function.REFUND, idempotent=True),
    Route("POST", "/payments/{id}/capture", Function.CAPTURE, idempotent=True),
    Route("POST", "/payments/{id}/cancel", Function.CAPTURE, idempotent=True),
    Route("GET", "/payments/{id}/ledger", Function.READ),
    Route("GET", "/balances", Function.READ),
    Route("GET", "/ledger/checkpoints", Function.READ),
    Route("GET", "/ledger/checkpoints/latest", Function.READ),  # before {sequence}, which the local runtime matches
    Route("GET", "/ledger/checkpoints/{sequence}", Function.READ),
    Route("GET", "/ledger/public-key", Function.READ),
    Route("GET", "/settlements", Function.READ),
    Route("GET", "/settlements/{id}", Function.READ),
    Route("GET", "/events", Function.READ),
    Route("GET", "/events/{id}", Function.READ),
    Route("GET", "/events/{id}/deliveries", Function.READ),
    Route("POST", "/events/{id}/redeliver", Function.WEBHOOKS, idempotent=True),
    Route("POST", "/webhook_endpoints", Function.WEBHOOKS, idempotent=True),
    Route("GET", "/webhook_endpoints", Function.WEBHOOKS),
    Route("DELETE", "/webhook_endpoints/{id}", Function.WEBHOOKS),
)

IDEMPOTENCY_HEADER = "Idempotency-Key"
# A key must be signed (among SigV4's SignedHeaders), else a captured request could be replayed under a fresh one: the
# 400's message, from the edge (lambdas/edge.py) or from the WAF in front of API Gateway (stacks/payment_api.py).
IDEMPOTENCY_KEY_UNSIGNED = f"The {IDEMPOTENCY_HEADER} header must be among the request's SigV4 signed headers."
# A merchant's API key (x-api-key) puts a request in that merchant's usage plan: a request signed for another merchant
# is refused with this 403 (the local API's, or the edge's deployed: lambdas/edge.py), else it would spend that plan.
API_KEY_MISMATCH = "api_key_mismatch"
API_KEY_MISMATCH_MESSAGE = "The API key in x-api-key is another merchant's than the signer's."


def signed_header_value(value: str) -> str:
    """``value`` as SigV4 signs a header's value (its canonical request's Trimall, as botocore's ``SigV4Auth`` and
    API Gateway compute it): trimmed, each run of spaces one space. Every spelling with the same signed value verifies
    under the same signature, so the service must read them as one value (an idempotency key, say): else a captured
    request resent with its key respaced would be a new request."""
    return " ".join(value.split())


# Larger bodies get 413 from the edge (lambdas/edge.py); one longer than the WAF inspects (64 KiB) gets it from the
# WAF, before API Gateway could invoke a function with it (Lambda takes 6 MB, API Gateway 10 MB).
MAX_BODY_BYTES = 32 * 1024
BODY_TOO_LARGE = f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB."  # the 413's message, wherever from
