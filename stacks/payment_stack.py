"""PaymentStack: one deployment of the payment ledger service."""

from pathlib import Path

from cdktf import Aspects, AssetType, TerraformAsset, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from constructs import Construct

from lambdas import SERVICE_NAME
from lambdas.adapters.ledger_store import BY_CHAIN
from lambdas.encryption_context import Purpose
from lambdas.metrics import NAMESPACE_VARIABLE
from lambdas.routes import ROUTES, Function
from lambdas.storage_schema import Partition
from stacks.account_stack import alarm_topic_name
from stacks.alarm_topic import AlarmTopic, AlarmTopicProps
from stacks.aws_target import AwsTarget, AwsTargetProps
from stacks.checkpoint_archive import CheckpointArchive, CheckpointArchiveProps
from stacks.config import DEFAULT_TAGS, RESOURCE_PREFIX, EnvironmentConfig
from stacks.gateway_secret import GatewaySecret, GatewaySecretProps
from stacks.iam import Condition
from stacks.lambda_bundle import build_bundle
from stacks.ledger_table import IdempotencyTable, LedgerTable, MerchantsTable, TableProps
from stacks.monitoring import Monitoring, MonitoringProps
from stacks.payment_api import STAGE_NAME, PaymentApi, PaymentApiProps
from stacks.payment_function import PaymentFunction, PaymentFunctionProps
from stacks.payment_key import KeySpec, PaymentKey, PaymentKeyProps, ServicePrincipalUse
from stacks.tagging import TaggingAspect

# The functions that run on a schedule, and how often.
SCHEDULES = {Function.RECONCILE: "rate(5 minutes)", Function.CHECKPOINT: "rate(5 minutes)"}


class PaymentStack(TerraformStack):
    # The composition root: one statement per resource, grant and output, read top to bottom.
    def __init__(self, scope: Construct, id: str, config: EnvironmentConfig, build_dir: Path) -> None:  # noqa: PLR0915
        super().__init__(scope, id)
        target = AwsTarget(
            self,
            "target",
            AwsTargetProps(config.account_id, config.region, config.state_key, config.state_bucket),
        )
        account_id, partition, dns_suffix, region = (
            target.account_id,
            target.partition,
            target.dns_suffix,
            config.region,
        )
        endpoint = target.endpoint

        def key(id: str, description: str, **props) -> PaymentKey:
            return PaymentKey(
                self,
                id,
                PaymentKeyProps(
                    alias=config.key_alias(id),
                    description=description,
                    account_id=account_id,
                    partition=partition,
                    deletion_window_days=config.key_deletion_window_days,
                    administrators=config.key_administrators,
                    **props,
                ),
            )

        vault_key = key(
            "vault",
            "Card vault, payment metadata and gateway secret",
            via_services=(endpoint("dynamodb"), endpoint("secretsmanager")),
        )
        fingerprint_key = key("fingerprint", "Keyed card fingerprints (HMAC)", spec=KeySpec.HMAC_256)
        signing_key = key("signing", "Signed checkpoints of the ledger", spec=KeySpec.ECC_NIST_P256)
        operations_key = key(
            "operations",
            "Logs and function configuration",
            via_services=(endpoint("lambda"), endpoint("sqs")),
        )  # and CloudWatch Logs for the stack's log groups, once they all exist (below)

        def table_props(name: str) -> TableProps:
            return TableProps(
                f"{config.prefix}-{name}",
                vault_key,
                endpoint("dynamodb"),
                deletion_protection=config.deletion_protection,
            )

        ledger = LedgerTable(
            self,
            "ledger",
            table_props("ledger"),
        )
        idempotency = IdempotencyTable(
            self,
            "idempotency",
            table_props("idempotency"),
        )
        merchants = MerchantsTable(
            self,
            "merchants",
            table_props("merchants"),
        )
        gateway_secret = GatewaySecret(
            self,
            "gateway-secret",
            GatewaySecretProps(
                name=config.gateway_secret_name,
                key=vault_key,
                via_service=endpoint("secretsmanager"),
                arn_prefix=f"arn:{partition}:secretsmanager:{region}:{account_id}:secret:",
                recovery_window_days=config.key_deletion_window_days,
            ),
        )

        archive = CheckpointArchive(
            self,
            "checkpoint-archive",
            CheckpointArchiveProps(
                bucket_name=config.checkpoint_bucket,
                retention_days=config.checkpoint_retention_days,
                key_alias=config.key_alias("checkpoints"),
                account_id=account_id,
                partition=partition,
                s3_endpoint=endpoint("s3"),
                key_deletion_window_days=config.key_deletion_window_days,
                key_administrators=config.key_administrators,
            ),
        )

        bundle, bundle_hash = build_bundle(build_dir, config.functions.architecture, config.functions.runtime)
        code = TerraformAsset(self, "lambda-code", path=str(bundle), type=AssetType.FILE, asset_hash=bundle_hash)
        environment = {
            "LEDGER_TABLE": ledger.name,
            "IDEMPOTENCY_TABLE": idempotency.name,
            "MERCHANTS_TABLE": merchants.name,
            "VAULT_KEY_ID": vault_key.arn,
            "FINGERPRINT_KEY_ID": fingerprint_key.arn,
            "SIGNING_KEY_ID": signing_key.arn,
            "GATEWAY_SECRET_ID": gateway_secret.arn,
            "GATEWAY_BASE_URL": str(config.gateway_base_url),
            "GATEWAY_CONNECT_TIMEOUT": str(config.gateway.connect_timeout_seconds),
            "GATEWAY_READ_TIMEOUT": str(config.gateway.read_timeout_seconds),
            "GATEWAY_ATTEMPTS": str(config.gateway.attempts),
            "GATEWAY_BACKOFF": str(config.gateway.backoff_seconds),
            "POWERTOOLS_SERVICE_NAME": SERVICE_NAME,
            NAMESPACE_VARIABLE: config.metrics_namespace,
        }
        own_environment = {Function.CHECKPOINT: {"CHECKPOINT_BUCKET": archive.name}}
        functions = {
            function: PaymentFunction(
                self,
                function.value,
                PaymentFunctionProps(
                    function_name=config.function_name(function.value),
                    role_name=config.role_name(function.value),
                    handler=function.handler,
                    code=code,
                    settings=config.functions,
                    account_id=account_id,
                    operations_key=operations_key,
                    log_retention_days=config.log_retention_days,
                    environment=environment | own_environment.get(function, {}),
                    sqs_endpoint=endpoint("sqs"),
                    sqs_arn_prefix=f"arn:{partition}:sqs:{region}:{account_id}:",
                    schedule=SCHEDULES.get(function),
                ),
            )
            for function in Function
        }

        tokenize = functions[Function.TOKENIZE]
        vault_key.grant_encrypt(tokenize, (Purpose.CARD,))
        fingerprint_key.grant_mac(tokenize)
        ledger.grant_append(tokenize, (Partition.TOKEN,))

        charge = functions[Function.CHARGE]
        vault_key.grant_encrypt(charge, (Purpose.METADATA,))  # payment metadata, stored answers that carry it
        vault_key.grant_decrypt(charge, (Purpose.CARD, Purpose.METADATA))  # vaulted cards; metadata, replayed answers
        fingerprint_key.grant_mac(charge)  # cards sent inline
        ledger.grant_read(charge)
        ledger.grant_read_together(charge, (Partition.TOKEN, Partition.CHAIN))  # a token with its payment's head
        ledger.grant_append(charge, (Partition.PAYMENT, Partition.LEDGER))
        ledger.grant_update(charge, (Partition.PAYMENT, Partition.CHAIN))

        refund = functions[Function.REFUND]
        ledger.grant_read(refund)
        ledger.grant_append(refund, (Partition.PAYMENT, Partition.LEDGER))
        ledger.grant_update(refund, (Partition.PAYMENT, Partition.CHAIN))

        read = functions[Function.READ]
        ledger.grant_read(read)
        vault_key.grant_decrypt(read, (Purpose.METADATA,))  # payment metadata is returned decrypted; cards never
        signing_key.grant_public_key(read)

        reconcile = functions[Function.RECONCILE]
        ledger.grant_read(reconcile)
        ledger.grant_append(reconcile, (Partition.LEDGER,))
        ledger.grant_update(reconcile, (Partition.PAYMENT, Partition.CHAIN))

        checkpoint = functions[Function.CHECKPOINT]
        ledger.grant_read_partitions(
            checkpoint, (Partition.CHAIN, Partition.CHECKPOINT)
        )  # the heads, the last checkpoint
        ledger.grant_query_index(checkpoint, BY_CHAIN.name, (Partition.CHAIN,))  # an entry where a checkpoint signed
        ledger.grant_append(checkpoint, (Partition.CHECKPOINT,))
        signing_key.grant_sign(checkpoint)
        signing_key.grant_public_key(checkpoint)  # the newest checkpoint's signature, checked before building on it
        archive.grant_keep(checkpoint)

        for function in (tokenize, charge, refund, read):
            merchants.grant_lookup(function)  # who the caller acts for, before anything else
        for function in (reconcile, checkpoint):
            merchants.grant_list(function)
        for function in (tokenize, charge, refund):
            idempotency.grant_read_write(function)
        idempotency.grant_condition_check(reconcile)
        for function in (charge, refund, reconcile):
            gateway_secret.grant_read(function)

        api = PaymentApi(
            self,
            "api",
            PaymentApiProps(
                name=config.prefix,
                routes=ROUTES,
                functions={f: functions[f] for f in {route.function for route in ROUTES}},
                logs_key=operations_key,
                log_retention_days=config.log_retention_days,
                throttling=config.throttling,
                invokers=tuple(principal for merchant in config.merchants for principal in merchant.principals),
                merchant_rates={merchant.id: config.merchant_rate(merchant) for merchant in config.merchants},
                policy_quota=config.resource_policy_quota,
                domain=config.domain,
            ),
        )
        merchants.hold(  # each merchant's item with its API key's id: the edge refuses another merchant's key
            {m.id: (m.principals, m.effective_rules(config.rules).model_dump(mode="json")) for m in config.merchants},
            api.api_key_ids,
        )

        alarm_topic = AlarmTopic(
            self,
            "alarms",
            AlarmTopicProps(
                f"{config.prefix}-alarms",
                config.alarms.subscriptions,
                account_id,
                partition,
                region,
                dns_suffix,
                config.key_deletion_window_days,
                config.key_administrators,
                alarm_names=f"{config.prefix}-*",  # Monitoring names every alarm after the prefix
            ),
        )
        Monitoring(
            self,
            "monitoring",
            MonitoringProps(
                name=config.prefix,
                settings=config.alarms,
                topic=alarm_topic,
                functions=functions,
                api_name=api.api.name,
                stage_name=STAGE_NAME,
                routes=ROUTES,
                web_acl_name=api.web_acl.name,
                region=region,
                metrics_namespace=config.metrics_namespace,
                keys=(vault_key, fingerprint_key, operations_key, signing_key, archive.key),
                account_alarms=alarm_topic_name(RESOURCE_PREFIX),
                buckets=(config.checkpoint_bucket,),  # by name, as CloudTrail's events name it
            ),
        )

        # CloudWatch Logs uses the operations key for the stack's own log groups (it encrypts every one), each named
        # in the encryption context: by the names they are given (ARNs would make the key depend on the groups).
        log_groups = [group.name_input for group in self.node.find_all() if isinstance(group, CloudwatchLogGroup)]
        operations_key.allow_service(
            ServicePrincipalUse(
                principal=f"logs.{region}.{dns_suffix}",
                actions=("kms:Decrypt*", "kms:Describe*", "kms:Encrypt*", "kms:GenerateDataKey*", "kms:ReEncrypt*"),
                conditions=(
                    Condition(
                        "ArnLike",
                        "kms:EncryptionContext:aws:logs:arn",
                        tuple(target.arn("logs", f"log-group:{name}") for name in log_groups),
                    ),
                ),
            )
        )

        TerraformOutput(self, "api_url", value=api.url)
        TerraformOutput(self, "api_id", value=api.api.id)
        # Each merchant's API key by id (its value: `aws apigateway get-api-key --include-value`, docs/runbook.md).
        TerraformOutput(
            self,
            "merchant_api_key_ids",
            value=api.api_key_ids,
        )
        if api.domain:  # the alias the operator's DNS record for the domain points at
            TerraformOutput(self, "api_domain_target", value=api.domain.regional_domain_name)
            TerraformOutput(self, "api_domain_zone_id", value=api.domain.regional_zone_id)
        TerraformOutput(self, "ledger_table", value=ledger.name)
        TerraformOutput(self, "idempotency_table", value=idempotency.name)
        TerraformOutput(self, "merchants_table", value=merchants.name)
        TerraformOutput(self, "vault_key_id", value=vault_key.arn)
        TerraformOutput(self, "fingerprint_key_id", value=fingerprint_key.arn)
        TerraformOutput(self, "signing_key_id", value=signing_key.arn)
        TerraformOutput(self, "checkpoint_bucket", value=archive.name)
        TerraformOutput(self, "gateway_secret_id", value=gateway_secret.arn)
        Aspects.of(self).add(TaggingAspect(DEFAULT_TAGS, config.tags))
