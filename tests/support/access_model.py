"""The access model: every AWS call a function makes, recorded from botocore's events while its handler runs, the
calls AWS makes on its behalf, and the synthesized stack's policies to judge each of them (tests/support/iam_eval.py).

- ``References`` resolves the stack's Terraform references (``${aws_kms_key.vault_key_X.arn}``) to concrete ARNs in
  one fake account and region; ARNs that only exist once made (a key's id, a secret's random suffix) come from the
  resources made in moto, so the recorded calls and the policies name the same things.
- ``Recorder`` listens on every botocore client made while it is installed (``before-parameter-build``) and turns
  each call made inside ``invoking(function)`` into the requests IAM authorizes: a ``TransactWriteItems`` is one
  ``PutItem``/``UpdateItem``/``DeleteItem``/``ConditionCheckItem`` per item, each with ``dynamodb:LeadingKeys``;
  a KMS call carries its encryption context.
- ``StackModel`` reads the stack: each function's role policy, each key's policy, the functions' and the API's
  resource policies; it adds what AWS does as the role (a CMK table's, secret's and queue's key use through the
  service, the function's logs and traces, a failed asynchronous invocation's dead letter) and decides every request.
  It reads the account stack too (the audit key, bucket and topic), and every S3 bucket's and SNS topic's policy.
- The functions at the end build, from each service's documentation, the requests AWS services make as themselves
  for the stacks (CloudTrail delivering logs, CloudWatch Logs encrypting a group, alarms and rules publishing to an
  encrypted topic) and those Lambda makes for a function's deployer (its encrypted environment).
"""

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import botocore.session

from lambdas.routes import Function
from lambdas.storage_schema import TableSchema
from tests.conftest import SynthesizedStack
from tests.support.iam_eval import (
    Condition,
    Decision,
    Request,
    Statement,
    decide,
    statements_from_document,
    statements_from_json,
)

ACCOUNT = "123456789012"  # moto's account: the ARNs moto hands out and the resolved stack's agree
PARTITION, DNS_SUFFIX = "aws", "amazonaws.com"


class References:
    """Concrete values for the Terraform references in a synthesized stack (one account, the stack's region)."""

    REFERENCE = re.compile(r"\$\{([^}]+)\}")

    def __init__(self, stack: SynthesizedStack, overrides: Mapping[str, str] = ()) -> None:
        self.stack = stack
        self.region = stack.environment.region
        self.overrides = dict(overrides)  # "aws_kms_key.vault_key_X.arn" -> the ARN moto gave the key

    def __call__(self, text: str) -> str:
        return self.REFERENCE.sub(lambda match: self._value(match.group(1)), text)

    def _value(self, reference: str) -> str:
        if reference in self.overrides:
            return self.overrides[reference]
        if reference.startswith("data."):
            _, data_type, name, attribute = reference.split(".", 3)
            return self._data(data_type, name, attribute)
        resource_type, name, attribute = reference.split(".", 2)
        body = self.stack.resources(resource_type).get(name)
        if body is None:
            raise KeyError(f"no resource {resource_type}.{name} in {self.stack.name}")
        return self._attribute(resource_type, name, body, attribute)

    def _data(self, data_type: str, name: str, attribute: str) -> str:
        known = {
            ("aws_caller_identity", "account_id"): ACCOUNT,
            ("aws_partition", "partition"): PARTITION,
            ("aws_partition", "dns_suffix"): DNS_SUFFIX,
        }
        if (data_type, attribute) in known:
            return known[data_type, attribute]
        if (data_type, attribute) == ("aws_service_principal", "name"):
            return f"{self.stack.data(data_type)[name]['service_name']}.{DNS_SUFFIX}"
        raise KeyError(f"no value for data.{data_type}.{name}.{attribute}")

    def _attribute(self, resource_type: str, name: str, body: dict, attribute: str) -> str:  # noqa: PLR0911, PLR0912
        arn = f"arn:{PARTITION}:{{}}:{self.region}:{ACCOUNT}:{{}}"
        named = self(body.get("name") or body.get("function_name") or body.get("bucket") or name)
        if attribute in ("name", "id") and resource_type in ("aws_iam_role", "aws_dynamodb_table"):
            return named
        match resource_type, attribute:
            case "aws_dynamodb_table", "arn":
                return arn.format("dynamodb", f"table/{named}")
            case "aws_kms_key", "arn":
                return arn.format("kms", f"key/{name}")
            case "aws_secretsmanager_secret", "arn":
                return arn.format("secretsmanager", f"secret:{named}-AbCdEf")
            case "aws_cloudwatch_log_group", "arn":
                return arn.format("logs", f"log-group:{named}")
            case "aws_sqs_queue", "arn":
                return arn.format("sqs", named)
            case "aws_sqs_queue", "url":
                return f"https://sqs.{self.region}.{DNS_SUFFIX}/{ACCOUNT}/{named}"
            case "aws_iam_role", "arn":
                return f"arn:{PARTITION}:iam::{ACCOUNT}:role/{named}"
            case "aws_lambda_function", "arn":
                return arn.format("lambda", f"function:{named}")
            case "aws_lambda_function", "function_name":
                return named
            case "aws_lambda_alias", "name":
                return str(body["name"])
            case "aws_api_gateway_rest_api", "id":
                return f"api{name.rsplit('_', 1)[-1].lower()}"
            case "aws_api_gateway_rest_api", "execution_arn":
                return arn.format("execute-api", self._attribute(resource_type, name, body, "id"))
            case "aws_cloudwatch_event_rule", "arn":
                return arn.format("events", f"rule/{named}")
            case "aws_s3_bucket", "id" | "bucket":
                return named
            case "aws_s3_bucket", "arn":
                return f"arn:{PARTITION}:s3:::{named}"
            case "aws_sns_topic", "arn":
                return arn.format("sns", named)
            case "aws_cloudtrail", "arn":
                return arn.format("cloudtrail", f"trail/{named}")
        raise KeyError(f"no value for {resource_type}.{name}.{attribute}")


# --- recording ---------------------------------------------------------------------------------------------------

current_function: ContextVar[Function | None] = ContextVar("current_function", default=None)

TRANSACT_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
DYNAMODB_ITEM_ACTIONS = {"GetItem", "PutItem", "UpdateItem", "DeleteItem"}
DYNAMODB_WRITES = {"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}


@dataclass(frozen=True)
class Recorded:
    """One request IAM authorizes, made by ``function``'s role, and the API call it came from."""

    function: str
    call: str  # the API call: "dynamodb:TransactWriteItems", or "lambda:Invoke" for an invocation itself
    action: str
    resource: str
    context: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "function": self.function,
            "call": self.call,
            "action": self.action,
            "resource": self.resource,
            "context": self.context,
        }

    @classmethod
    def from_json(cls, values: dict) -> "Recorded":
        context = {k: tuple(v) if isinstance(v, list) else v for k, v in values["context"].items()}
        return cls(values["function"], values["call"], values["action"], values["resource"], context)


class Recorder:
    """Records, for every botocore client made while installed, the calls made while a handler runs."""

    def __init__(self, tables: Mapping[str, TableSchema], region: str) -> None:
        self.region = region
        self.tables = dict(tables)  # table name -> schema: which attribute is the partition key
        self.calls: list[Recorded] = []
        self.unattributed = 0  # calls outside any handler (the test's own set-up and checks)
        self.errors: list[str] = []  # calls the recorder could not read

    @contextmanager
    def installed(self, monkeypatch) -> Iterator["Recorder"]:
        create_client = botocore.session.Session.create_client
        recorder = self

        def creating(session, *args, **kwargs):
            client = create_client(session, *args, **kwargs)
            client.meta.events.register("before-parameter-build", recorder._on_call)
            return client

        monkeypatch.setattr(botocore.session.Session, "create_client", creating)
        yield self

    @contextmanager
    def invoking(self, function: Function, asynchronous: bool = False) -> Iterator[None]:
        """Attribute the calls in the block to ``function``; the invocation itself is recorded (Lambda writes its
        logs and traces as the role), and a failed asynchronous one as failed (Lambda sends its dead letter)."""
        token = current_function.set(function)
        outcome = "lambda:Invoke"
        try:
            yield
        except Exception:
            if not asynchronous:
                raise
            outcome = "lambda:InvokeFailed"
        finally:
            current_function.reset(token)
        self.calls.append(Recorded(function.value, outcome, outcome, function.value))

    def _on_call(self, params: dict, model, **_: Any) -> None:
        try:
            self._record(params, model)
        except Exception as error:  # a call raising here would look like an AWS failure to the code under test
            self.errors.append(f"{model.name}: {error!r}")
            raise

    def _record(self, params: dict, model) -> None:
        function = current_function.get()
        if function is None:
            self.unattributed += 1
            return
        service = model.service_model.signing_name or model.service_model.endpoint_prefix
        call = f"{service}:{model.name}"
        for action, resource, context in self._authorizations(service, model.name, params):
            self.calls.append(Recorded(function.value, call, action, resource, context))

    def _authorizations(self, service: str, operation: str, params: dict) -> list[tuple[str, str, dict]]:
        if service == "dynamodb":
            return self._dynamodb(operation, params)
        if service == "kms":
            key = params["KeyId"]
            if not key.startswith("arn:"):
                raise AssertionError(f"kms:{operation} names its key by {key!r}, not by ARN")
            context = {f"kms:EncryptionContext:{k}": v for k, v in params.get("EncryptionContext", {}).items()}
            if params.get("EncryptionContext"):
                context["kms:EncryptionContextKeys"] = tuple(params["EncryptionContext"])
            if operation == "Sign":  # the condition keys KMS sets on a signature (MessageType defaults to RAW)
                context["kms:SigningAlgorithm"] = params["SigningAlgorithm"]
                context["kms:MessageType"] = params.get("MessageType", "RAW")
            return [(f"kms:{operation}", key, context)]
        if service == "secretsmanager":
            return [(f"secretsmanager:{operation}", params["SecretId"], {})]
        if service == "sqs" and operation == "SendMessage":  # the queue, by its URL's account and name
            *_, account, name = params["QueueUrl"].rstrip("/").split("/")
            return [("sqs:SendMessage", f"arn:{PARTITION}:sqs:{self.region}:{account}:{name}", {})]
        if service == "s3" and operation in ("GetObject", "PutObject"):
            # Over HTTPS, as boto3 calls; a conditional write carries its header as a condition key.
            context = {"aws:SecureTransport": "true"} | (
                {"s3:if-none-match": params["IfNoneMatch"]} if "IfNoneMatch" in params else {}
            )
            return [(f"s3:{operation}", f"arn:{PARTITION}:s3:::{params['Bucket']}/{params['Key']}", context)]
        raise AssertionError(f"a call the access model does not know: {service}:{operation}")

    def _dynamodb(self, operation: str, params: dict) -> list[tuple[str, str, dict]]:
        if operation == "TransactWriteItems":
            found = []
            for item in params["TransactItems"]:
                ((kind, part),) = item.items()
                found += self._item_request(TRANSACT_ACTIONS[kind], part)
            return found
        if operation == "BatchGetItem":  # IAM sees every key's partition (dynamodb:LeadingKeys, multivalued)
            ((table, request),) = params["RequestItems"].items()
            leading = tuple(self._leading_key(table, key) for key in request["Keys"])
            return [("dynamodb:BatchGetItem", self._table_arn(table), {"dynamodb:LeadingKeys": leading})]
        if operation in DYNAMODB_ITEM_ACTIONS:
            return self._item_request(f"dynamodb:{operation}", params)
        if operation == "Query":
            resource = self._table_arn(params["TableName"])
            if params.get("IndexName"):
                resource += f"/index/{params['IndexName']}"
            return [(f"dynamodb:{operation}", resource, {"dynamodb:LeadingKeys": (self._queried_partition(params),)})]
        if operation == "Scan":
            return [("dynamodb:Scan", self._table_arn(params["TableName"]), {})]
        raise AssertionError(f"a DynamoDB call the access model does not know: {operation}")

    def _item_request(self, action: str, part: dict) -> list[tuple[str, str, dict]]:
        leading = self._leading_key(part["TableName"], part.get("Key") or part["Item"])
        return [(action, self._table_arn(part["TableName"]), {"dynamodb:LeadingKeys": (leading,)})]

    def _leading_key(self, table: str, key: dict) -> str:
        return next(iter(key[self.tables[table].partition_key].values()))

    def _queried_partition(self, params: dict) -> str:
        schema = self.tables[params["TableName"]]
        partition_key = schema.partition_key
        if params.get("IndexName"):
            (index,) = [i for i in schema.indexes if i.name == params["IndexName"]]
            partition_key = index.partition_key
        names = params.get("ExpressionAttributeNames", {})
        for name, value in re.findall(r"(#?\w+)\s*=\s*(:\w+)", params["KeyConditionExpression"]):
            if names.get(name, name) == partition_key:
                return next(iter(params["ExpressionAttributeValues"][value].values()))
        raise AssertionError(f"no partition key in {params['KeyConditionExpression']!r}")

    def _table_arn(self, name: str) -> str:
        if name not in self.tables:
            raise AssertionError(f"a table the access model does not know: {name}")
        return f"arn:{PARTITION}:dynamodb:{self.region}:{ACCOUNT}:table/{name}"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps([call.to_json() for call in self.calls], indent=1, sort_keys=True))


def load(path: Path) -> list[Recorded]:
    return [Recorded.from_json(values) for values in json.loads(path.read_text())]


# --- the stack's policies ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionModel:
    function: Function
    name: str
    arn: str
    invoked_arn: str  # what its callers invoke: its alias (SnapStart), else the function itself
    role_arn: str
    log_group_arn: str
    dead_letter_arn: str | None
    environment: dict[str, str]
    policy: tuple[Statement, ...]  # the role's identity policy


@dataclass(frozen=True)
class Judged:
    recorded: Recorded
    request: Request
    decision: Decision


@dataclass(frozen=True)
class StackModel:
    functions: dict[Function, FunctionModel]
    key_policies: dict[str, tuple[Statement, ...]]  # key ARN -> key policy
    resource_keys: dict[str, str]  # table name, secret ARN or queue ARN -> the ARN of the key that encrypts it
    resource_policies: dict[str, tuple[Statement, ...]]  # function ARN or API execution ARN -> its resource policy
    identities: dict[str, tuple[Statement, ...]]  # principals besides the roles (e.g. an administrator)
    keys: dict[str, str]  # a key's short name (its alias's last word: vault, fingerprint, operations) -> its ARN
    region: str

    @classmethod
    def read(cls, stack: SynthesizedStack, refs: References) -> "StackModel":
        documents = stack.data("aws_iam_policy_document")
        role_policies: dict[str, list[Statement]] = {}
        for policy in stack.resources("aws_iam_role_policy").values():
            name = policy["policy"].removeprefix("${data.aws_iam_policy_document.").removesuffix(".json}")
            role_policies.setdefault(refs(policy["role"]), []).extend(_resolved(documents[name], refs))
        functions = {}
        aliases = {refs(body["function_name"]): body["name"] for body in stack.resources("aws_lambda_alias").values()}
        for body in stack.resources("aws_lambda_function").values():
            function = next(f for f in Function if f.handler == body["handler"])
            name = refs(body["function_name"])
            arn = f"arn:{PARTITION}:lambda:{refs.region}:{ACCOUNT}:function:{name}"
            (group,) = [
                g for g in stack.resources("aws_cloudwatch_log_group").values() if g["name"] == f"/aws/lambda/{name}"
            ]
            dead_letters = body.get("dead_letter_config", {}).get("target_arn")
            functions[function] = FunctionModel(
                function=function,
                name=name,
                arn=arn,
                invoked_arn=f"{arn}:{aliases[name]}" if name in aliases else arn,
                role_arn=refs(body["role"]),
                log_group_arn=f"arn:{PARTITION}:logs:{refs.region}:{ACCOUNT}:log-group:{group['name']}",
                dead_letter_arn=refs(dead_letters) if dead_letters else None,
                environment={k: refs(v) for k, v in body["environment"]["variables"].items()},
                policy=tuple(role_policies[refs(body["role"]).rsplit("/", 1)[-1]]),
            )
        key_policies = {
            refs(f"${{aws_kms_key.{name}.arn}}"): tuple(statements_from_json(json.loads(refs(body["policy"]))))
            for name, body in stack.resources("aws_kms_key").items()
        }
        resource_keys = {
            refs(t["name"]): refs(t["server_side_encryption"]["kms_key_arn"])
            for t in stack.resources("aws_dynamodb_table").values()
        }
        for kind, attribute in (("aws_secretsmanager_secret", "kms_key_id"), ("aws_sqs_queue", "kms_master_key_id")):
            for name, body in stack.resources(kind).items():
                resource_keys[refs(f"${{{kind}.{name}.arn}}")] = refs(body[attribute])
        for body in stack.resources("aws_s3_bucket_server_side_encryption_configuration").values():
            (rule,) = body["rule"]
            bucket = refs(body["bucket"].replace(".id}", ".arn}"))
            resource_keys[bucket] = refs(rule["apply_server_side_encryption_by_default"]["kms_master_key_id"])
        keys = {
            refs(alias["name"]).rsplit("-", 1)[-1]: refs(alias["target_key_id"].replace(".key_id}", ".arn}"))
            for alias in stack.resources("aws_kms_alias").values()
        }
        policies = _resource_policies(stack, refs)
        return cls(functions, key_policies, resource_keys, policies, {}, keys, refs.region)

    # -- what AWS authorizes for one recorded call, and its decision

    def requests(self, recorded: Recorded) -> list[Request]:
        """The recorded request, and those AWS makes as the same role on its behalf."""
        model = self.functions[Function(recorded.function)]
        role = model.role_arn
        if recorded.call in ("lambda:Invoke", "lambda:InvokeFailed"):
            stream = f"{model.log_group_arn}:log-stream:2026/01/01/[$LATEST]0123456789abcdef"
            found = [Request(role, f"logs:{a}", stream) for a in ("CreateLogStream", "PutLogEvents")]
            found += [Request(role, f"xray:{a}", "*") for a in ("PutTraceSegments", "PutTelemetryRecords")]
            if recorded.call == "lambda:InvokeFailed":  # the event goes to the dead-letter queue, as the role
                if model.dead_letter_arn is None:
                    raise AssertionError(f"{model.name} failed asynchronously and has no dead-letter queue")
                found.append(Request(role, "sqs:SendMessage", model.dead_letter_arn))
                found += self.through(
                    "sqs",
                    self.resource_keys[model.dead_letter_arn],
                    role,
                    ("kms:GenerateDataKey", "kms:Decrypt"),
                    {"aws:sqs:arn": model.dead_letter_arn},
                )
            return found
        context = dict(recorded.context)
        if recorded.action.startswith("kms:"):
            context["kms:CallerAccount"] = ACCOUNT
        found = [Request(role, recorded.action, recorded.resource, context)]
        if recorded.action.startswith("dynamodb:"):
            table = recorded.resource.split(":table/", 1)[1].split("/", 1)[0]
            key = self.resource_keys.get(table)
            if key:  # DynamoDB opens the table key as the caller; a write also makes new data keys with it
                uses = (
                    ("kms:Decrypt", "kms:GenerateDataKey") if recorded.action in DYNAMODB_WRITES else ("kms:Decrypt",)
                )
                context = {"aws:dynamodb:tableName": table, "aws:dynamodb:subscriberId": ACCOUNT}
                found += self.through("dynamodb", key, role, uses, context)
        bucket = recorded.resource.split("/", 1)[0]
        if recorded.action in ("s3:PutObject", "s3:GetObject") and bucket in self.resource_keys:
            # S3 makes (a put) or opens (a get) the object's data key with the bucket's key as the caller; with an
            # S3 Bucket Key the encryption context names the bucket.
            uses = ("kms:GenerateDataKey",) if recorded.action == "s3:PutObject" else ("kms:Decrypt",)
            found += self.through("s3", self.resource_keys[bucket], role, uses, {"aws:s3:arn": bucket})
        if recorded.action == "sqs:SendMessage" and recorded.resource in self.resource_keys:
            # SQS makes (and checks) the message's data key with the queue's key as the caller
            uses = ("kms:GenerateDataKey", "kms:Decrypt")
            found += self.through(
                "sqs", self.resource_keys[recorded.resource], role, uses, {"aws:sqs:arn": recorded.resource}
            )
        if recorded.action == "secretsmanager:GetSecretValue" and recorded.resource in self.resource_keys:
            context = {"SecretARN": recorded.resource, "SecretVersionId": "EXAMPLE1-90ab-cdef-fedc-ba987EXAMPLE"}
            found += self.through(
                "secretsmanager", self.resource_keys[recorded.resource], role, ("kms:Decrypt",), context
            )
        return found

    def through(self, service: str, key: str, role: str, actions, encryption_context: dict) -> list[Request]:
        """What ``service`` asks of ``key`` as ``role``, its caller, for the resource its ``encryption_context``
        names (kms:ViaService; kms:CallerAccount is the caller's)."""
        context: dict[str, Any] = encryption(encryption_context)
        context |= {
            "kms:CallerAccount": Request(role, "", "").account,
            "kms:ViaService": f"{service}.{self.region}.{DNS_SUFFIX}",
        }
        return [Request(role, action, key, context) for action in actions]

    def decide(self, request: Request, alone: str | None = None) -> Decision:
        """IAM's decision; ``alone="role"``: the role's identity policy by itself (as if every resource policy left the
        decision to IAM); ``alone="key"``: a key's policy by itself (only statements naming the role count, as for a
        role with no identity policy; a request on anything but a key is not the key policy's to decide)."""
        identity = self.identities.get(request.principal, ())
        for model in self.functions.values():
            if model.role_arn == request.principal:
                identity = model.policy
        if alone == "role":
            return decide(request, identity, None, ACCOUNT)
        if alone == "key":
            if request.resource not in self.key_policies:
                return Decision.ALLOWED
            return decide(request, (), self.key_policies[request.resource], ACCOUNT, resource_policy_required=True)
        if request.resource in self.key_policies:
            return decide(
                request, identity, self.key_policies[request.resource], ACCOUNT, resource_policy_required=True
            )
        for resource, policy in self.resource_policies.items():
            if request.resource == resource or request.resource.startswith(f"{resource}/"):
                return decide(request, identity, policy, ACCOUNT)
        return decide(request, identity, None, ACCOUNT)

    def judge(self, recorded: list[Recorded], alone: str | None = None) -> list[Judged]:
        return [Judged(r, request, self.decide(request, alone)) for r in recorded for request in self.requests(r)]

    # -- mutants

    def without_role_statement(self, function: Function, sid: str) -> "StackModel":
        model = self.functions[function]
        kept = tuple(s for s in model.policy if s.sid != sid)
        assert len(kept) == len(model.policy) - 1, f"{function.value} has no statement {sid}"
        return replace(self, functions={**self.functions, function: replace(model, policy=kept)})

    def without_key_statement(self, key: str, sid: str) -> "StackModel":
        kept = tuple(s for s in self.key_policies[key] if s.sid != sid)
        assert len(kept) == len(self.key_policies[key]) - 1, f"{key} has no statement {sid}"
        return replace(self, key_policies={**self.key_policies, key: kept})

    def with_identity(self, principal: str, statements: list[Statement]) -> "StackModel":
        return replace(self, identities={**self.identities, principal: tuple(statements)})


def _resolved(document: dict, refs: References) -> list[Statement]:
    return statements_from_document(json.loads(refs(json.dumps(document))))


def _resource_policies(stack: SynthesizedStack, refs: References) -> dict[str, tuple[Statement, ...]]:
    """Each Lambda function's resource policy (its ``aws_lambda_permission`` resources, by the function's or the
    alias's ARN they name), the REST API's, each S3 bucket's and each SNS topic's."""
    policies: dict[str, list[Statement]] = {}
    for permission in stack.resources("aws_lambda_permission").values():
        name = refs(permission["function_name"])
        principal = refs(permission["principal"])
        kind = "Service" if principal.endswith(f".{DNS_SUFFIX}") else "AWS"
        conditions = ()
        if "source_arn" in permission:
            conditions = (Condition("ArnLike", "aws:SourceArn", (refs(permission["source_arn"]),)),)
        arn = f"arn:{PARTITION}:lambda:{refs.region}:{ACCOUNT}:function:{name}"
        if "qualifier" in permission:  # on an alias: it admits invoking that alias, not the function's $LATEST
            arn = f"{arn}:{refs(permission['qualifier'])}"
        statement = Statement(
            actions=(permission["action"],),
            resources=(arn,),
            principals=((kind, (principal,)),),
            conditions=conditions,
            sid=permission["statement_id"],
        )
        policies.setdefault(arn, []).append(statement)
    for body in stack.resources("aws_api_gateway_rest_api_policy").values():
        api = refs(body["rest_api_id"].replace(".id}", ".execution_arn}"))
        text = refs(body["policy"]).replace('"execute-api:/', f'"{api}/')  # API Gateway's shorthand for this API
        policies[api] = statements_from_json(json.loads(text))
    for body in stack.resources("aws_s3_bucket_policy").values():
        bucket = refs(body["bucket"].replace(".id}", ".arn}"))
        policies[bucket] = statements_from_json(json.loads(refs(body["policy"])))
    for body in stack.resources("aws_sns_topic_policy").values():
        policies[refs(body["arn"])] = statements_from_json(json.loads(refs(body["policy"])))
    return {arn: tuple(statements) for arn, statements in policies.items()}


# --- what AWS services ask as themselves -------------------------------------------------------------------------
# Each request below is built from the service's documentation: the principal it signs as, the action, the resource
# and the condition keys it sends. A key policy that conditions a statement on a key the request does not carry is
# false for it (``DescribeKey`` carries no encryption context).


def encryption(context: Mapping[str, str]) -> dict[str, Any]:
    """The condition keys of a KMS request made under encryption ``context``."""
    keys: dict[str, Any] = {f"kms:EncryptionContext:{k}": v for k, v in context.items()}
    if context:
        keys["kms:EncryptionContextKeys"] = tuple(context)
    return keys


def service_principal(service: str) -> str:
    return f"{service}.{DNS_SUFFIX}"


def acting_for(source_arn: str) -> dict[str, str]:
    """The confused-deputy keys a service sends for the resource it acts for (IAM's aws:SourceArn and
    aws:SourceAccount, the account that owns that resource)."""
    return {"aws:SourceArn": source_arn, "aws:SourceAccount": source_arn.split(":")[4]}


def _service(service: str, action: str, resource: str, context: Mapping[str, Any]) -> Request:
    return Request(service_principal(service), action, resource, dict(context), principal_type="Service")


def cloudtrail_delivery(trail: str, key: str, bucket: str) -> list[Request]:
    """CloudTrail delivering ``trail``'s log files to ``bucket`` under ``key`` (CloudTrail User Guide: "Amazon S3
    bucket policy for CloudTrail" and "Configure AWS KMS key policies for CloudTrail"): it checks the bucket's ACL,
    writes each file under AWSLogs/<account>/ granting the bucket owner full control, over TLS; makes each file's
    data key under the trail's encryption context; describes the key; and decrypts with it, which a bucket with an
    S3 Bucket Key needs (S3 names the bucket in that key's encryption context)."""
    source, tls = acting_for(trail), {"aws:SecureTransport": "true"}
    account, region = trail.split(":")[4], trail.split(":")[3]
    log = f"{bucket}/AWSLogs/{account}/CloudTrail/{region}/2026/01/01/{account}_CloudTrail_{region}_x.json.gz"
    return [
        _service("cloudtrail", "s3:GetBucketAcl", bucket, source | tls),
        _service("cloudtrail", "s3:PutObject", log, source | tls | {"s3:x-amz-acl": "bucket-owner-full-control"}),
        _service(
            "cloudtrail",
            "kms:GenerateDataKey",
            key,
            source | encryption({"aws:cloudtrail:arn": trail, "aws:s3:arn": log}),
        ),
        _service("cloudtrail", "kms:DescribeKey", key, source),
        _service("cloudtrail", "kms:Decrypt", key, source | encryption({"aws:s3:arn": bucket})),
    ]


def log_group_encryption(group: str, key: str) -> list[Request]:
    """CloudWatch Logs encrypting and reading ``group``'s events with ``key``, as its regional principal, under the
    encryption context that names the group (CloudWatch Logs User Guide, "Encrypt log data in CloudWatch Logs using
    AWS KMS")."""
    region = group.split(":")[3]
    context = encryption({"aws:logs:arn": group})
    return [
        _service(f"logs.{region}", action, key, context)
        for action in ("kms:Encrypt", "kms:GenerateDataKey", "kms:Decrypt")
    ]


def topic_publication(service: str, source: str, topic: str, key: str) -> list[Request]:
    """A CloudWatch alarm (``service`` cloudwatch) or an EventBridge rule (events) publishing to the encrypted
    ``topic``: sns:Publish for its ``source``, and SNS asking ``key`` for a data key and its decryption for that
    publisher (SNS Developer Guide, "Enable compatibility between event sources from AWS services and encrypted
    topics": its step 3 adds aws:SourceAccount and aws:SourceArn to the key policy, and says they are not supported
    for EventBridge-to-encrypted topics). SNS sends the source keys to KMS for CloudWatch, not for EventBridge: there
    the topic policy alone binds the rule."""
    source_keys = acting_for(source)
    via = {"kms:ViaService": f"sns.{topic.split(':')[3]}.{DNS_SUFFIX}"}
    on_key = via | (source_keys if service == "cloudwatch" else {})
    return [
        _service(service, "sns:Publish", topic, source_keys | {"aws:SecureTransport": "true"}),
        _service(service, "kms:GenerateDataKey", key, on_key),
        _service(service, "kms:Decrypt", key, on_key),
    ]


def function_environment(deployer: str, function: str, key: str) -> list[Request]:
    """Lambda encrypting ``function``'s environment with ``key`` when the function is made or changed, as its caller
    ``deployer`` through Lambda, and creating the grant under which Lambda decrypts it for the function's role at
    each cold start (Lambda Developer Guide, "Securing Lambda environment variables"; the encryption context names
    the function). That decryption is the grant's, not the key policy's: a key policy cannot refuse it."""
    region = function.split(":")[3]
    caller = {"kms:ViaService": f"lambda.{region}.{DNS_SUFFIX}", "kms:CallerAccount": Request(deployer, "", "").account}
    context = caller | encryption({"aws:lambda:FunctionArn": function})
    return [
        Request(deployer, "kms:CreateGrant", key, caller),
        Request(deployer, "kms:Encrypt", key, context),
        Request(deployer, "kms:Decrypt", key, context),
    ]
