"""ServiceFunctions: the code bundle, one function per ``lambdas.routes.Function``, the environment each is told
(``lambdas.environment``) and what each may do (``lambdas.grants``)."""

from dataclasses import replace
from pathlib import Path

from cdktf import AssetType, TerraformAsset
from constructs import Construct

from lambdas import SERVICE_NAME
from lambdas.environment import FunctionEnvironment
from lambdas.grants import GRANTS, Grant, Resource
from lambdas.routes import ROUTES, Function
from stacks.aws_target import AwsTarget
from stacks.config import EnvironmentConfig
from stacks.lambda_bundle import build_bundle
from stacks.payment_function import PaymentFunction, PaymentFunctionProps
from stacks.service_keys import ServiceKeys
from stacks.service_stores import ServiceStores
from stacks.webhook_dead_letters import WebhookDeadLetters, WebhookDeadLettersProps

# The functions that run on a schedule, and how often.
SCHEDULES = {
    Function.RECONCILE: "rate(5 minutes)",
    Function.CHECKPOINT: "rate(5 minutes)",
    Function.DELIVER: "rate(1 minute)",  # an event's first attempt within about a minute of its change
    # a settlement imported within the hour the gateway makes it (a run with nothing new costs one gateway request),
    # and one left for the next run (deferred) not kept waiting long
    Function.SETTLE: "rate(1 hour)",
}
# The functions a merchant's request waits on: SnapStart, when the environment turns it on, is theirs alone. A
# scheduled run waits for nobody, and would pay for a snapshot and its restores (docs/adr/0008-snapstart.md).
SERVING = frozenset(route.function for route in ROUTES)


def function_environment(config: EnvironmentConfig, keys: ServiceKeys, stores: ServiceStores) -> FunctionEnvironment:
    """What every function is told (``ServiceFunctions`` adds the checkpoint bucket for the function keeping it)."""
    gateway = config.gateway
    return FunctionEnvironment(
        ledger_table=stores.ledger.name,
        idempotency_table=stores.idempotency.name,
        merchants_table=stores.merchants.name,
        vault_key_id=keys.vault.arn,
        fingerprint_key_id=keys.fingerprint.arn,
        signing_key_id=keys.signing.arn,
        gateway_secret_id=stores.gateway_secret.arn,
        gateway_base_url=str(config.gateway_base_url),
        gateway_connect_timeout=gateway.connect_timeout_seconds,
        gateway_read_timeout=gateway.read_timeout_seconds,
        gateway_attempts=gateway.attempts,
        gateway_backoff=gateway.backoff_seconds,
        powertools_service_name=SERVICE_NAME,
        powertools_metrics_namespace=config.metrics_namespace,
    )


def granted_resources(
    keys: ServiceKeys, stores: ServiceStores, dead_letters: WebhookDeadLetters
) -> dict[Resource, object]:
    """Each resource a grant can name, by its name in ``lambdas.grants``."""
    return {
        Resource.WEBHOOK_DEAD_LETTERS: dead_letters,
        Resource.VAULT_KEY: keys.vault,
        Resource.FINGERPRINT_KEY: keys.fingerprint,
        Resource.SIGNING_KEY: keys.signing,
        Resource.LEDGER: stores.ledger,
        Resource.IDEMPOTENCY: stores.idempotency,
        Resource.MERCHANTS: stores.merchants,
        Resource.GATEWAY_SECRET: stores.gateway_secret,
        Resource.CHECKPOINT_ARCHIVE: stores.archive,
    }


def apply_grant(grantee: PaymentFunction, grant: Grant, resource: object) -> None:
    """``grant`` as IAM and key policy statements: the resource construct's ``grant_<use>``, with what the use is
    limited to (an index's name, purposes, partitions)."""
    limits = [limit for limit in (grant.index.name if grant.index else None, grant.purposes, grant.partitions) if limit]
    getattr(resource, f"grant_{grant.use.value}")(grantee, *limits)


class ServiceFunctions:
    """A part of the stack, not a construct of its own (as ``ServiceKeys``): the code asset and each function are
    made in ``scope`` under their names."""

    def __init__(
        self,
        scope: Construct,
        config: EnvironmentConfig,
        target: AwsTarget,
        keys: ServiceKeys,
        stores: ServiceStores,
        build_dir: Path,
    ) -> None:
        bundle, bundle_hash = build_bundle(build_dir, config.functions.architecture, config.functions.runtime)
        code = TerraformAsset(scope, "lambda-code", path=str(bundle), type=AssetType.FILE, asset_hash=bundle_hash)
        environment = function_environment(config, keys, stores)
        self.webhook_dead_letters = WebhookDeadLetters(
            scope,
            "webhook-dead-letters",
            WebhookDeadLettersProps(
                queue_name=f"{config.prefix}-webhook-dead-letters",
                key=keys.operations,
                sqs_endpoint=target.endpoint("sqs"),
                sqs_arn_prefix=target.arn("sqs", ""),
            ),
        )
        self.functions = {
            function: PaymentFunction(
                scope,
                function.value,
                PaymentFunctionProps(
                    function_name=config.function_name(function.value),
                    role_name=config.role_name(function.value),
                    handler=function.handler,
                    code=code,
                    settings=config.functions,
                    account_id=target.account_id,
                    operations_key=keys.operations,
                    log_retention_days=config.log_retention_days,
                    environment=self._environment_of(
                        function, environment, stores, self.webhook_dead_letters
                    ).to_variables(),
                    sqs_endpoint=target.endpoint("sqs"),
                    sqs_arn_prefix=target.arn("sqs", ""),
                    schedule=SCHEDULES.get(function),
                    snap_start=config.snap_start and function in SERVING,
                ),
            )
            for function in Function
        }
        resources = granted_resources(keys, stores, self.webhook_dead_letters)
        for function, grants in GRANTS.items():
            for grant in grants:
                apply_grant(self.functions[function], grant, resources[grant.resource])

    @staticmethod
    def _environment_of(
        function: Function, environment: FunctionEnvironment, stores: ServiceStores, dead_letters: WebhookDeadLetters
    ) -> FunctionEnvironment:
        """The function that keeps checkpoints is told where, and the one that dead-letters events where to."""
        resources = {grant.resource for grant in GRANTS[function]}
        if Resource.CHECKPOINT_ARCHIVE in resources:
            environment = replace(environment, checkpoint_bucket=stores.archive.name)
        if Resource.WEBHOOK_DEAD_LETTERS in resources:
            environment = replace(environment, webhook_dead_letter_queue=dead_letters.url)
        return environment

    def __getitem__(self, function: Function) -> PaymentFunction:
        return self.functions[function]
