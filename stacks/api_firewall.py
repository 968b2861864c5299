"""ApiFirewall: the WAFv2 web ACL in front of the API's stage, and its logs.

AWS managed rules block known attacks. A request they block gets the WAF_FILTERED gateway response (the contract's
error, with its request_id): they have no custom response, which would take precedence and could not carry the
request id. Two rules of the service's own answer with the contract's errors: an idempotency key the request's
signature does not cover (400), and a body longer than WAF inspects (413): API Gateway takes 10 MB, Lambda an
invocation of 6 MB, so such a body might never reach the function, whose limit (lambdas/edge.py) it would pass.
Neither has a request_id: a WAF response has none."""

import json
from dataclasses import dataclass
from typing import Any

from cdktf_cdktf_provider_aws.wafv2_web_acl import (
    Wafv2WebAcl,
    Wafv2WebAclAssociationConfig,
    Wafv2WebAclAssociationConfigRequestBody,
    Wafv2WebAclAssociationConfigRequestBodyApiGateway,
    Wafv2WebAclCustomResponseBody,
    Wafv2WebAclDefaultAction,
    Wafv2WebAclDefaultActionAllow,
    Wafv2WebAclRule,
    Wafv2WebAclRuleAction,
    Wafv2WebAclRuleActionBlock,
    Wafv2WebAclRuleActionBlockCustomResponse,
    Wafv2WebAclRuleOverrideAction,
    Wafv2WebAclRuleOverrideActionNone,
    Wafv2WebAclRuleVisibilityConfig,
    Wafv2WebAclVisibilityConfig,
)
from cdktf_cdktf_provider_aws.wafv2_web_acl_association import Wafv2WebAclAssociation
from cdktf_cdktf_provider_aws.wafv2_web_acl_logging_configuration import (
    Wafv2WebAclLoggingConfiguration,
    Wafv2WebAclLoggingConfigurationRedactedFields,
    Wafv2WebAclLoggingConfigurationRedactedFieldsSingleHeader,
)
from constructs import Construct

from lambdas.routes import BODY_TOO_LARGE, IDEMPOTENCY_HEADER, IDEMPOTENCY_KEY_UNSIGNED
from stacks.log_groups import encrypted_log_group
from stacks.payment_key import PaymentKey

# Headers WAF logs never show: the signature, a session's token (usable until it expires), and the idempotency key
# (it identifies a request, and a client may derive it from its own data).
WAF_LOG_REDACTED_HEADERS = ("authorization", "x-amz-security-token", IDEMPOTENCY_HEADER.lower())
WAF_INSPECTION_LIMIT = "KB_64"  # the most of a body WAF inspects at API Gateway (its default is 16 KB)
WAF_INSPECTED_BYTES = int(WAF_INSPECTION_LIMIT.removeprefix("KB_")) * 1024
# An Authorization header (lower-cased) whose SigV4 SignedHeaders list the idempotency key: the WAF refuses a key sent
# without it, as the edge does (lambdas/edge.py), since API Gateway need not pass the header on to the function.
SIGNED_KEY_AUTHORIZATION = (
    rf"^aws4-hmac-sha256 credential=[^,]+, ?signedheaders=([a-z0-9-]+;)*{IDEMPOTENCY_HEADER.lower()}(;|,)"
)


@dataclass(frozen=True)
class ApiFirewallProps:
    name: str  # the web ACL's, its metric's and (after aws-waf-logs-) its log group's
    stage_arn: str  # the stage it guards
    logs_key: PaymentKey
    log_retention_days: int


class ApiFirewall:
    """A part of the API, not a construct of its own: its resources are made in ``scope`` (the ``PaymentApi``), so
    they keep the paths, and so the Terraform names, they are deployed under."""

    def __init__(self, scope: Construct, props: ApiFirewallProps) -> None:
        name = props.name
        self.web_acl = Wafv2WebAcl(
            scope,
            "web-acl",
            name=name,
            scope="REGIONAL",
            default_action=Wafv2WebAclDefaultAction(allow=Wafv2WebAclDefaultActionAllow()),
            # As much of each body as WAF can inspect at API Gateway (its default is 16 KB): past the 32 KiB the
            # function accepts, so the managed rules see all of any body that is processed.
            association_config=Wafv2WebAclAssociationConfig(
                request_body=[
                    Wafv2WebAclAssociationConfigRequestBody(
                        api_gateway=Wafv2WebAclAssociationConfigRequestBodyApiGateway(
                            default_size_inspection_limit=WAF_INSPECTION_LIMIT
                        )
                    )
                ]
            ),
            custom_response_body=[
                _contract_error("body_too_large", BODY_TOO_LARGE),
                _contract_error("idempotency_key_unsigned", IDEMPOTENCY_KEY_UNSIGNED, param=IDEMPOTENCY_HEADER),
            ],
            rule=_rules(),
            visibility_config=Wafv2WebAclVisibilityConfig(
                cloudwatch_metrics_enabled=True, metric_name=name, sampled_requests_enabled=True
            ),
        )
        Wafv2WebAclAssociation(scope, "web-acl-association", resource_arn=props.stage_arn, web_acl_arn=self.web_acl.arn)
        # WAF only delivers to log groups whose name starts with aws-waf-logs-.
        logs = encrypted_log_group(scope, "waf-logs", f"aws-waf-logs-{name}", props.logs_key, props.log_retention_days)
        Wafv2WebAclLoggingConfiguration(
            scope,
            "web-acl-logging",
            resource_arn=self.web_acl.arn,
            log_destination_configs=[logs.arn],
            redacted_fields=[
                Wafv2WebAclLoggingConfigurationRedactedFields(
                    single_header=Wafv2WebAclLoggingConfigurationRedactedFieldsSingleHeader(name=header)
                )
                for header in WAF_LOG_REDACTED_HEADERS
            ],
        )


def _rules() -> list[Wafv2WebAclRule]:
    return [
        _managed(0, "AWSManagedRulesAmazonIpReputationList"),
        # Anonymizing proxies, VPNs and Tor are blocked. Hosting providers are only counted: the callers are
        # merchants' back ends, signing with IAM credentials from AWS or another cloud's hosts.
        _managed(1, "AWSManagedRulesAnonymousIpList", counted=("HostingProviderIPList",)),
        # Its 8 KB body limit is below the contract's 32 KiB, which the function enforces with a 413.
        _managed(2, "AWSManagedRulesCommonRuleSet", counted=("SizeRestrictions_BODY",)),
        _managed(3, "AWSManagedRulesKnownBadInputsRuleSet"),
        _unsigned_idempotency_key(4),
        _body_longer_than_inspected(5),
    ]


def _visibility(metric: str) -> Wafv2WebAclRuleVisibilityConfig:
    return Wafv2WebAclRuleVisibilityConfig(
        cloudwatch_metrics_enabled=True, metric_name=metric, sampled_requests_enabled=True
    )


def _contract_error(code: str, message: str, **extra: str) -> Wafv2WebAclCustomResponseBody:
    """The contract's error body for a request the web ACL blocks, under its code as key (no request_id: WAF's
    answers have none)."""
    error = {"type": "invalid_request_error", "code": code, "message": message, **extra}
    return Wafv2WebAclCustomResponseBody(
        key=code, content=json.dumps({"error": error}), content_type="APPLICATION_JSON"
    )


def _blocked_with(status: int, body_key: str) -> Wafv2WebAclRuleAction:
    """Blocked with the contract's error body of that key (the web ACL's custom response bodies)."""
    return Wafv2WebAclRuleAction(
        block=Wafv2WebAclRuleActionBlock(
            custom_response=Wafv2WebAclRuleActionBlockCustomResponse(
                response_code=status, custom_response_body_key=body_key
            )
        )
    )


def _managed(priority: int, rule_group: str, counted: tuple[str, ...] = ()) -> Wafv2WebAclRule:
    statement: dict[str, Any] = {"name": rule_group, "vendor_name": "AWS"}
    if counted:  # counted instead of blocked: see each group's note in _rules
        statement["rule_action_override"] = [{"name": rule, "action_to_use": {"count": {}}} for rule in counted]
    return Wafv2WebAclRule(
        name=rule_group,
        priority=priority,
        override_action=Wafv2WebAclRuleOverrideAction(none=Wafv2WebAclRuleOverrideActionNone()),
        statement={"managed_rule_group_statement": statement},  # the binding types statements as Any
        visibility_config=_visibility(rule_group),
    )


def _unsigned_idempotency_key(priority: int) -> Wafv2WebAclRule:
    """A key the signature does not cover: a captured request replayed under a fresh key would charge again."""
    key_sent = {
        "size_constraint_statement": {
            "comparison_operator": "GT",
            "size": 0,
            "field_to_match": {"single_header": {"name": IDEMPOTENCY_HEADER.lower()}},
            "text_transformation": [{"priority": 0, "type": "NONE"}],
        }
    }
    key_signed = {
        "regex_match_statement": {
            "regex_string": SIGNED_KEY_AUTHORIZATION,
            "field_to_match": {"single_header": {"name": "authorization"}},
            "text_transformation": [{"priority": 0, "type": "LOWERCASE"}],
        }
    }
    return Wafv2WebAclRule(
        name="idempotency-key-unsigned",
        priority=priority,
        action=_blocked_with(400, "idempotency_key_unsigned"),
        statement={"and_statement": {"statement": [key_sent, {"not_statement": {"statement": [key_signed]}}]}},
        visibility_config=_visibility("idempotency-key-unsigned"),
    )


def _body_longer_than_inspected(priority: int) -> Wafv2WebAclRule:
    """Last, so a request the managed rules block gets their 403 with its request_id. WAF sees a body's first
    WAF_INSPECTED_BYTES: no inspected body is longer, and a longer one matches whatever its length."""
    return Wafv2WebAclRule(
        name="body-longer-than-inspected",
        priority=priority,
        action=_blocked_with(413, "body_too_large"),
        statement={
            "size_constraint_statement": {
                "comparison_operator": "GT",
                "size": WAF_INSPECTED_BYTES,
                "field_to_match": {"body": {"oversize_handling": "MATCH"}},
                "text_transformation": [{"priority": 0, "type": "NONE"}],
            }
        },
        visibility_config=_visibility("body-longer-than-inspected"),
    )
