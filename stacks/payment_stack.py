"""PaymentStack: one deployment of the payment ledger service."""

from pathlib import Path

from cdktf import Aspects, TerraformOutput, TerraformStack
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from constructs import Construct

from lambdas.routes import ROUTES
from stacks.account_stack import alarm_topic_name
from stacks.alarm_topic import AlarmTopic, AlarmTopicProps
from stacks.aws_target import AwsTarget, AwsTargetProps
from stacks.config import DEFAULT_TAGS, RESOURCE_PREFIX, EnvironmentConfig
from stacks.iam import Condition
from stacks.monitoring import Monitoring, MonitoringProps
from stacks.payment_api import STAGE_NAME, PaymentApi, PaymentApiProps
from stacks.payment_key import PaymentKey, ServicePrincipalUse
from stacks.service_functions import ServiceFunctions
from stacks.service_keys import ServiceKeys
from stacks.service_stores import ServiceStores
from stacks.tagging import TaggingAspect


class PaymentStack(TerraformStack):
    """The composition root: its parts, in the order they are made. The parts make their resources in the stack
    itself, so each resource keeps the Terraform name it is deployed under."""

    def __init__(self, scope: Construct, id: str, config: EnvironmentConfig, build_dir: Path) -> None:
        super().__init__(scope, id)
        self.config = config
        self.target = AwsTarget(
            self,
            "target",
            AwsTargetProps(config.account_id, config.region, config.state_key, config.state_bucket),
        )
        keys = ServiceKeys(self, config, self.target)
        stores = ServiceStores(self, config, self.target, keys.vault)
        functions = ServiceFunctions(self, config, self.target, keys, stores, build_dir)
        api = self._api(keys.operations, functions)
        stores.merchants.hold(  # each merchant's item with its API key's id: the edge refuses another merchant's key
            {m.id: (m.principals, m.effective_rules(config.rules).model_dump(mode="json")) for m in config.merchants},
            api.api_key_ids,
        )
        self._monitoring(keys, stores, functions, api)
        self._encrypt_log_groups(keys)
        self._outputs(keys, stores, api, functions)
        Aspects.of(self).add(TaggingAspect(DEFAULT_TAGS, config.tags))

    def _api(self, logs_key: PaymentKey, functions: ServiceFunctions) -> PaymentApi:
        config = self.config
        return PaymentApi(
            self,
            "api",
            PaymentApiProps(
                name=config.prefix,
                routes=ROUTES,
                functions={f: functions[f] for f in {route.function for route in ROUTES}},
                logs_key=logs_key,
                log_retention_days=config.log_retention_days,
                throttling=config.throttling,
                invokers=tuple(principal for merchant in config.merchants for principal in merchant.principals),
                merchant_rates={merchant.id: config.merchant_rate(merchant) for merchant in config.merchants},
                policy_quota=config.resource_policy_quota,
                domain=config.domain,
            ),
        )

    def _monitoring(
        self, keys: ServiceKeys, stores: ServiceStores, functions: ServiceFunctions, api: PaymentApi
    ) -> None:
        config, target = self.config, self.target
        alarm_topic = AlarmTopic(
            self,
            "alarms",
            AlarmTopicProps(
                f"{config.prefix}-alarms",
                config.alarms.subscriptions,
                target.account_id,
                target.partition,
                config.region,
                target.dns_suffix,
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
                functions=functions.functions,
                api_name=api.api.name,
                stage_name=STAGE_NAME,
                routes=ROUTES,
                web_acl_name=api.web_acl.name,
                region=config.region,
                metrics_namespace=config.metrics_namespace,
                keys=(keys.vault, keys.fingerprint, keys.operations, keys.signing, stores.archive.key),
                account_alarms=alarm_topic_name(RESOURCE_PREFIX),
                buckets=(config.checkpoint_bucket,),  # by name, as CloudTrail's events name it
                webhook_dead_letters=functions.webhook_dead_letters.name,
            ),
        )

    def _encrypt_log_groups(self, keys: ServiceKeys) -> None:
        """CloudWatch Logs uses the operations key for the stack's own log groups (it encrypts every one), each named
        in the encryption context: by the names they are given (ARNs would make the key depend on the groups)."""
        target = self.target
        log_groups = [group.name_input for group in self.node.find_all() if isinstance(group, CloudwatchLogGroup)]
        keys.operations.allow_service(
            ServicePrincipalUse(
                principal=f"logs.{self.config.region}.{target.dns_suffix}",
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

    def _outputs(self, keys: ServiceKeys, stores: ServiceStores, api: PaymentApi, functions: ServiceFunctions) -> None:
        TerraformOutput(self, "api_url", value=api.url)
        aliases = {f.value: c.alias.arn for f, c in functions.functions.items() if c.alias}
        if aliases:  # SnapStart: the alias each serving function is invoked through
            TerraformOutput(self, "function_aliases", value=aliases)
        TerraformOutput(self, "api_id", value=api.api.id)
        # Each merchant's API key by id (its value: `aws apigateway get-api-key --include-value`, docs/runbook.md).
        TerraformOutput(self, "merchant_api_key_ids", value=api.api_key_ids)
        if api.domain:  # the alias the operator's DNS record for the domain points at
            TerraformOutput(self, "api_domain_target", value=api.domain.regional_domain_name)
            TerraformOutput(self, "api_domain_zone_id", value=api.domain.regional_zone_id)
        TerraformOutput(self, "ledger_table", value=stores.ledger.name)
        TerraformOutput(self, "idempotency_table", value=stores.idempotency.name)
        TerraformOutput(self, "merchants_table", value=stores.merchants.name)
        TerraformOutput(self, "vault_key_id", value=keys.vault.arn)
        TerraformOutput(self, "fingerprint_key_id", value=keys.fingerprint.arn)
        TerraformOutput(self, "signing_key_id", value=keys.signing.arn)
        TerraformOutput(self, "checkpoint_bucket", value=stores.archive.name)
        TerraformOutput(self, "gateway_secret_id", value=stores.gateway_secret.arn)
