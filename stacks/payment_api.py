"""PaymentApi: the REST API of shared/docs/api-contract.md in front of the
payment functions.

Secure by default: ``AWS_IAM`` on every method, a resource policy that lets only
the configured merchants' principals invoke it, request validation, throttling,
JSON access logs to an encrypted log group, X-Ray, a WAFv2 web ACL
(stacks.api_firewall), data trace off (bodies carry card data),
and error responses in the contract's error shape."""

import hashlib
import json
from dataclasses import dataclass

import jsii
from cdktf import (
    Fn,
    IResolveContext,
    IStringProducer,
    Lazy,
    TerraformIterator,
    TerraformResource,
    TerraformResourceLifecycle,
    Token,
)
from cdktf_cdktf_provider_aws.api_gateway_api_key import ApiGatewayApiKey
from cdktf_cdktf_provider_aws.api_gateway_base_path_mapping import ApiGatewayBasePathMapping
from cdktf_cdktf_provider_aws.api_gateway_deployment import ApiGatewayDeployment
from cdktf_cdktf_provider_aws.api_gateway_domain_name import (
    ApiGatewayDomainName,
    ApiGatewayDomainNameEndpointConfiguration,
)
from cdktf_cdktf_provider_aws.api_gateway_gateway_response import ApiGatewayGatewayResponse
from cdktf_cdktf_provider_aws.api_gateway_integration import ApiGatewayIntegration
from cdktf_cdktf_provider_aws.api_gateway_method import ApiGatewayMethod
from cdktf_cdktf_provider_aws.api_gateway_method_settings import (
    ApiGatewayMethodSettings,
    ApiGatewayMethodSettingsSettings,
)
from cdktf_cdktf_provider_aws.api_gateway_request_validator import ApiGatewayRequestValidator
from cdktf_cdktf_provider_aws.api_gateway_resource import ApiGatewayResource
from cdktf_cdktf_provider_aws.api_gateway_rest_api import (
    ApiGatewayRestApi,
    ApiGatewayRestApiEndpointConfiguration,
)
from cdktf_cdktf_provider_aws.api_gateway_rest_api_policy import ApiGatewayRestApiPolicy
from cdktf_cdktf_provider_aws.api_gateway_stage import ApiGatewayStage, ApiGatewayStageAccessLogSettings
from cdktf_cdktf_provider_aws.api_gateway_usage_plan import (
    ApiGatewayUsagePlan,
    ApiGatewayUsagePlanApiStages,
    ApiGatewayUsagePlanThrottleSettings,
)
from cdktf_cdktf_provider_aws.api_gateway_usage_plan_key import ApiGatewayUsagePlanKey
from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from constructs import Construct

from lambdas.routes import BODY_TOO_LARGE, IDEMPOTENCY_HEADER, Function, Route
from stacks.api_firewall import ApiFirewall, ApiFirewallProps
from stacks.api_policy import invoke_policy
from stacks.config import CustomDomain, Throttling
from stacks.iam import service_principal
from stacks.log_groups import encrypted_log_group
from stacks.payment_function import PaymentFunction
from stacks.payment_key import PaymentKey

STAGE_NAME = "v1"
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "caller": "$context.identity.caller",
        "principal": "$context.identity.userArn",  # the SigV4 signer (an assumed role's session ARN)
        "sourceIp": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "resourcePath": "$context.resourcePath",
        "status": "$context.status",
        "responseLength": "$context.responseLength",
        "integrationLatency": "$context.integrationLatency",
        "wafStatus": "$context.waf.status",
        "xrayTraceId": "$context.xrayTraceId",
    },
    separators=(",", ":"),
)

# API Gateway's own rejections, answered in the contract's error shape.
GATEWAY_RESPONSES = {
    "BAD_REQUEST_PARAMETERS": (400, "invalid_request_error", "parameter_missing", IDEMPOTENCY_HEADER),
    "BAD_REQUEST_BODY": (400, "invalid_request_error", "invalid_body", None),
    "REQUEST_TOO_LARGE": (413, "invalid_request_error", "body_too_large", None),
    "UNSUPPORTED_MEDIA_TYPE": (415, "invalid_request_error", "unsupported_media_type", None),
    "THROTTLED": (429, "rate_limit_error", "rate_limited", None),  # the merchant's usage plan, or the stage
    "INVALID_API_KEY": (403, "permission_error", "invalid_api_key", None),  # no merchant's key in x-api-key
    # Unsigned, badly signed or expired requests, and principals the resource policy refuses.
    # API Gateway answers an unknown route this way too, before any signature is checked.
    "MISSING_AUTHENTICATION_TOKEN": (403, "permission_error", "missing_authentication_token", None),
    "INVALID_SIGNATURE": (403, "permission_error", "invalid_signature", None),
    "EXPIRED_TOKEN": (403, "permission_error", "expired_signature", None),
    "ACCESS_DENIED": (403, "permission_error", "access_denied", None),
    "WAF_FILTERED": (403, "permission_error", "request_blocked", None),  # a request the web ACL blocked
    # Every other type (UNAUTHORIZED too: the API has no authorizer).
    "DEFAULT_4XX": (None, "invalid_request_error", "request_refused", None),
    "DEFAULT_5XX": (None, "api_error", "internal_error", None),
}
# Headers a gateway response carries beside Content-Type: a 429 says when to retry (API Gateway's value is fixed; a
# second is enough for any merchant's bucket to hold a token again at 1 request per second or more).
RETRY_AFTER_SECONDS = 1
GATEWAY_RESPONSE_HEADERS = {"THROTTLED": {"Retry-After": str(RETRY_AFTER_SECONDS)}}
# Each response's message, fixed: API Gateway's own ($context.error.messageString) quotes the request.
# INVALID_SIGNATURE's holds the canonical request (method, path, query), ACCESS_DENIED's the resource ARN with the
# path, an incomplete signature's the Authorization header: a path such as /v1/payments/4242424242424242 would come
# back in the error. No $ or # either: API Gateway reads a template as VTL.
GATEWAY_MESSAGES = {
    "BAD_REQUEST_PARAMETERS": f"The {IDEMPOTENCY_HEADER} header is required.",
    "BAD_REQUEST_BODY": "The request body is not valid for this route.",
    "REQUEST_TOO_LARGE": BODY_TOO_LARGE,
    "UNSUPPORTED_MEDIA_TYPE": "The body must be application/json.",
    "THROTTLED": "Too many requests: retry after a pause.",
    "INVALID_API_KEY": "The request carries no merchant's API key in x-api-key.",
    "MISSING_AUTHENTICATION_TOKEN": "The request is not signed with AWS Signature Version 4, or names no route.",
    "INVALID_SIGNATURE": "The request's AWS Signature Version 4 signature does not verify.",
    "EXPIRED_TOKEN": "The request's signature or security token has expired.",
    "ACCESS_DENIED": "The signer may not call this API.",
    "WAF_FILTERED": "The web application firewall blocked the request.",
    "DEFAULT_4XX": "API Gateway refused the request.",
    "DEFAULT_5XX": "An internal error occurred.",
}


def _gateway_error_template(error_type: str, code: str, message: str, param: str | None) -> str:
    error = {"type": error_type, "code": code, "message": message} | ({"param": param} if param else {})
    return json.dumps({"error": error | {"request_id": "$context.requestId"}}, separators=(",", ":"))


# What a deployment of a REST API captures, by resource type, each under its name in the deployment's triggers.
DEPLOYED_DEFINITIONS = {
    "aws_api_gateway_rest_api": "rest_api",
    "aws_api_gateway_rest_api_policy": "policy",
    "aws_api_gateway_resource": "resources",
    "aws_api_gateway_method": "methods",
    "aws_api_gateway_method_response": "method_responses",
    "aws_api_gateway_integration": "integrations",
    "aws_api_gateway_integration_response": "integration_responses",
    "aws_api_gateway_request_validator": "validators",
    "aws_api_gateway_model": "models",
    "aws_api_gateway_gateway_response": "gateway_responses",
}


def deployment_triggers(definitions: dict[str, dict[str, dict]]) -> dict[str, str]:
    """A REST API serves what it last deployed: a digest of the synthesized definition (Terraform JSON, cdktf's
    ``//`` metadata aside) of every resource a deployment captures, by resource type and name, one digest per type,
    so any change to one deploys the API again."""

    def digest(resources: dict[str, dict]) -> str:
        arguments = {name: {k: v for k, v in body.items() if k != "//"} for name, body in resources.items()}
        return hashlib.sha256(json.dumps(arguments, sort_keys=True).encode()).hexdigest()

    return {DEPLOYED_DEFINITIONS[t]: digest(resources) for t, resources in sorted(definitions.items()) if resources}


@jsii.implements(IStringProducer)
class _DeploymentDigest:
    """One trigger of ``deployment_triggers``: its resources' digest, computed at synth from them as they are then."""

    def __init__(self, resources: list[TerraformResource]) -> None:
        self.resources = resources

    def produce(self, context: IResolveContext) -> str:
        definitions: dict[str, dict[str, dict]] = {}
        for resource in self.resources:
            ((resource_type, by_name),) = context.resolve(resource.to_terraform())["resource"].items()
            definitions.setdefault(resource_type, {}).update(by_name)
        (digest,) = deployment_triggers(definitions).values()
        return digest


@dataclass(frozen=True)
class PaymentApiProps:
    name: str
    routes: tuple[Route, ...]
    functions: dict[Function, PaymentFunction]
    logs_key: PaymentKey
    log_retention_days: int
    throttling: Throttling
    invokers: tuple[str, ...]  # the principals (role or user ARNs, account ids) that act for some merchant
    merchant_rates: dict[str, Throttling]  # each merchant's own request rate, by merchant id
    policy_quota: int  # API Gateway's quota on the resource policy's length (stacks/api_policy.py)
    domain: CustomDomain | None = None  # when set, the API answers there alone (TLS 1.2), not on execute-api


class PaymentApi(Construct):
    def __init__(self, scope: Construct, id: str, props: PaymentApiProps) -> None:
        super().__init__(scope, id)
        self.props = props
        self.api = ApiGatewayRestApi(
            self,
            "api",
            name=props.name,
            description="Payment ledger API (shared/docs/api-contract.md)",
            endpoint_configuration=ApiGatewayRestApiEndpointConfiguration(types=["REGIONAL"]),
            # The execute-api endpoint negotiates TLS 1.0: with a domain of our own, only that name answers.
            disable_execute_api_endpoint=props.domain is not None,
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
        )
        validator = ApiGatewayRequestValidator(
            self,
            "validator",
            rest_api_id=self.api.id,
            name="body-and-parameters",
            validate_request_body=True,
            validate_request_parameters=True,
        )
        self.policy = ApiGatewayRestApiPolicy(
            self,
            "policy",
            rest_api_id=self.api.id,
            policy=json.dumps(invoke_policy(props.invokers, props.policy_quota)),
        )
        self.integrations = [self._add_route(route, validator) for route in props.routes]
        self.responses = [
            ApiGatewayGatewayResponse(
                self,
                f"response-{response_type.lower()}",
                rest_api_id=self.api.id,
                response_type=response_type,
                status_code=str(status) if status else None,
                response_templates={
                    "application/json": _gateway_error_template(
                        error_type, code, GATEWAY_MESSAGES[response_type], param
                    )
                },
                response_parameters={
                    f"gatewayresponse.header.{name}": f"'{value}'"
                    for name, value in {
                        "Content-Type": "application/json",
                        **GATEWAY_RESPONSE_HEADERS.get(response_type, {}),
                    }.items()
                },
            )
            for response_type, (status, error_type, code, param) in GATEWAY_RESPONSES.items()
        ]
        self.stage = self._add_stage()
        self.api_keys = self._add_usage_plans()
        # Each merchant's API key id by merchant id (a Terraform map): output, and written into the merchant's item.
        self.api_key_ids = TerraformIterator.from_resources(self.api_keys).for_expression_for_map("key", "val.id")
        self.domain = self._add_domain(props.domain) if props.domain else None
        firewall = ApiFirewallProps(props.name, self.stage.arn, props.logs_key, props.log_retention_days)
        self.web_acl = ApiFirewall(self, firewall).web_acl

    @property
    def url(self) -> str:
        """Where clients call the API: its own domain, else the stage's execute-api URL."""
        if self.props.domain:
            return f"https://{self.props.domain.name}/"
        return self.stage.invoke_url

    def _add_domain(self, domain: CustomDomain) -> ApiGatewayDomainName:
        """The API's own name, TLS 1.2 or better, mapped to the stage at its root. The operator points the name's DNS
        record at ``regional_domain_name`` (an alias in ``regional_zone_id``)."""
        name = ApiGatewayDomainName(
            self,
            "domain",
            domain_name=domain.name,
            regional_certificate_arn=domain.certificate_arn,
            endpoint_configuration=ApiGatewayDomainNameEndpointConfiguration(types=["REGIONAL"]),
            security_policy=domain.security_policy,
        )
        ApiGatewayBasePathMapping(
            self, "base-path", api_id=self.api.id, stage_name=self.stage.stage_name, domain_name=name.domain_name
        )
        return name

    def _encrypted_log_group(self, id: str, name: str) -> CloudwatchLogGroup:
        return encrypted_log_group(self, id, name, self.props.logs_key, self.props.log_retention_days)

    def _resource_for(self, parts: tuple[str, ...]) -> str:
        """The id of the API resource at ``parts``, creating the path on first use."""
        if not parts:
            return self.api.root_resource_id
        if not hasattr(self, "_resources"):
            self._resources: dict[tuple[str, ...], ApiGatewayResource] = {}
        if parts not in self._resources:
            self._resources[parts] = ApiGatewayResource(
                self,
                "resource-" + "-".join(part.strip("{}") for part in parts),
                rest_api_id=self.api.id,
                parent_id=self._resource_for(parts[:-1]),
                path_part=parts[-1],
            )
        return self._resources[parts].id

    def _add_route(self, route: Route, validator: ApiGatewayRequestValidator) -> ApiGatewayIntegration:
        function = self.props.functions[route.function]
        route_id = route.method.lower() + "-" + "-".join(part.strip("{}") for part in route.path_parts)
        parameters = {f"method.request.path.{p.strip('{}')}": True for p in route.path_parts if p.startswith("{")}
        if route.idempotent:
            parameters[f"method.request.header.{IDEMPOTENCY_HEADER}"] = True
        method = ApiGatewayMethod(
            self,
            f"method-{route_id}",
            rest_api_id=self.api.id,
            resource_id=self._resource_for(route.path_parts),
            http_method=route.method,
            authorization="AWS_IAM",
            api_key_required=True,  # the merchant's, whose usage plan holds its rate (_add_usage_plans)
            request_validator_id=validator.id,
            request_parameters=parameters or None,
        )
        integration = ApiGatewayIntegration(
            self,
            f"integration-{route_id}",
            rest_api_id=self.api.id,
            resource_id=method.resource_id,
            http_method=method.http_method,
            type="AWS_PROXY",
            integration_http_method="POST",
            uri=function.invoke_arn,
        )
        LambdaPermission(
            self,
            f"permission-{route_id}",
            statement_id=f"invoke-{route_id}",
            action="lambda:InvokeFunction",
            function_name=function.function_name,
            qualifier=function.qualifier,  # the alias the integration invokes (SnapStart), else none
            principal=service_principal(self, "apigateway"),
            source_arn=f"{self.api.execution_arn}/*/{route.method}"
            + "/".join("*" if p.startswith("{") else p for p in ("", *route.path_parts)),
        )
        return integration

    def _add_stage(self) -> ApiGatewayStage:
        props = self.props
        # Made after every definition it deploys (the API, its paths, methods, integrations, validator, policy and
        # gateway responses): it waits for each, and its triggers digest each as synthesized.
        deployed: dict[str, list[TerraformResource]] = {}
        for child in self.node.find_all():
            if isinstance(child, TerraformResource) and child.terraform_resource_type in DEPLOYED_DEFINITIONS:
                deployed.setdefault(DEPLOYED_DEFINITIONS[child.terraform_resource_type], []).append(child)
        deployment = ApiGatewayDeployment(
            self,
            "deployment",
            rest_api_id=self.api.id,
            triggers={part: Lazy.string_value(_DeploymentDigest(deployed[part])) for part in sorted(deployed)},
            lifecycle=TerraformResourceLifecycle(create_before_destroy=True),
            depends_on=[resource for resources in deployed.values() for resource in resources],
        )
        access_logs = self._encrypted_log_group("access-logs", f"/aws/apigateway/{props.name}/access")
        # API Gateway would create this one itself, unencrypted and kept forever.
        execution_logs = self._encrypted_log_group(
            "execution-logs", f"API-Gateway-Execution-Logs_{self.api.id}/{STAGE_NAME}"
        )
        stage = ApiGatewayStage(
            self,
            "stage",
            rest_api_id=self.api.id,
            deployment_id=deployment.id,
            stage_name=STAGE_NAME,
            xray_tracing_enabled=True,
            access_log_settings=ApiGatewayStageAccessLogSettings(
                destination_arn=access_logs.arn, format=ACCESS_LOG_FORMAT
            ),
            # API Gateway writes both groups with the account's logging role (stacks/account_stack.py).
            depends_on=[execution_logs],
        )
        ApiGatewayMethodSettings(
            self,
            "method-settings",
            rest_api_id=self.api.id,
            stage_name=stage.stage_name,
            method_path="*/*",
            settings=ApiGatewayMethodSettingsSettings(
                metrics_enabled=True,
                logging_level="INFO",
                data_trace_enabled=False,  # would log request bodies, card numbers included
                throttling_rate_limit=props.throttling.rate_limit,
                throttling_burst_limit=props.throttling.burst_limit,
                caching_enabled=False,
                cache_data_encrypted=True,
            ),
        )
        return stage

    def _add_usage_plans(self) -> ApiGatewayApiKey:
        """A usage plan per merchant on the stage, throttled at the merchant's own rate, and the merchant's API key
        in it (its value made by API Gateway: in no output; the operator reads it, docs/runbook.md). Each of the
        three is one ``for_each`` resource however many merchants (docs/adr/0006-a-usage-plan-per-merchant.md)."""
        rates = {
            merchant: {"rate": rate.rate_limit, "burst": rate.burst_limit}
            for merchant, rate in self.props.merchant_rates.items()
        }
        each_key = TerraformIterator.from_map(rates)
        keys = ApiGatewayApiKey(
            self, "merchant-keys", for_each=each_key, name=f"{self.props.name}-{each_key.key}", enabled=True
        )
        each_plan = TerraformIterator.from_map(rates)
        plans = ApiGatewayUsagePlan(
            self,
            "merchant-plans",
            for_each=each_plan,
            name=f"{self.props.name}-{each_plan.key}",
            api_stages=[ApiGatewayUsagePlanApiStages(api_id=self.api.id, stage=self.stage.stage_name)],
            throttle_settings=ApiGatewayUsagePlanThrottleSettings(
                rate_limit=each_plan.get_number("rate"), burst_limit=each_plan.get_number("burst")
            ),
        )
        each_merchant = TerraformIterator.from_map(rates)
        ApiGatewayUsagePlanKey(
            self,
            "merchant-plan-keys",
            for_each=each_merchant,
            key_type="API_KEY",
            key_id=Token.as_string(Fn.lookup_nested(keys, [each_merchant.key, "id"])),
            usage_plan_id=Token.as_string(Fn.lookup_nested(plans, [each_merchant.key, "id"])),
        )
        return keys
