"""PaymentKey: a KMS customer-managed key whose policy names every principal
that may use it, and the grants that put those principals there."""

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from constructs import Construct

from lambdas.domain.checkpoints import ALGORITHM as SIGNING_ALGORITHM
from lambdas.domain.merchants import any_path
from lambdas.encryption_context import CONDITION_KEY, Purpose
from stacks.iam import Condition, Grantable, Statement

# AWS's default key-administrator statement, less what is use: its kms:Create* is kms:CreateGrant too (a grant hands
# out use of the key), so the one creation an administrator needs is named; kms:Put* is kms:PutKeyPolicy alone.
KEY_ADMINISTRATION_ACTIONS = (
    "kms:CancelKeyDeletion",
    "kms:CreateAlias",
    "kms:Delete*",
    "kms:Describe*",
    "kms:Disable*",
    "kms:Enable*",
    "kms:Get*",
    "kms:List*",
    "kms:PutKeyPolicy",  # administration (an alarm watches it), though a new policy could grant anything
    "kms:Revoke*",
    "kms:RotateKeyOnDemand",
    "kms:ScheduleKeyDeletion",
    "kms:TagResource",
    "kms:UntagResource",
    "kms:Update*",
)
# Every use of a key, whatever its spec, and the grants that would hand use out: what a key administrator is refused.
KEY_USE_ACTIONS = (
    "kms:CreateGrant",
    "kms:Decrypt",
    "kms:DeriveSharedSecret",
    "kms:Encrypt",
    "kms:GenerateDataKey*",
    "kms:GenerateMac",
    "kms:ReEncrypt*",
    "kms:Sign",
    "kms:Verify",
    "kms:VerifyMac",
)
ENVELOPE_ACTIONS = ("kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*", "kms:DescribeKey")
# What a service needs of a key to read, and to write, data it encrypts with it (aws-cdk's KEY_READ_ACTIONS and
# KEY_WRITE_ACTIONS for DynamoDB tables, SQS queues and Secrets Manager secrets).
KEY_READ_ACTIONS = ("kms:Decrypt", "kms:DescribeKey")
KEY_WRITE_ACTIONS = (*KEY_READ_ACTIONS, "kms:Encrypt", "kms:GenerateDataKey*", "kms:ReEncrypt*")


class KeySpec(str, Enum):
    SYMMETRIC = "SYMMETRIC_DEFAULT"  # envelope encryption, rotated yearly
    HMAC_256 = "HMAC_256"  # keyed hashes (card fingerprints); KMS cannot rotate HMAC keys
    ECC_NIST_P256 = "ECC_NIST_P256"  # signatures (ledger checkpoints); KMS cannot rotate asymmetric keys

    @property
    def usage(self) -> str:
        return {"SYMMETRIC_DEFAULT": "ENCRYPT_DECRYPT", "HMAC_256": "GENERATE_VERIFY_MAC"}.get(
            self.value, "SIGN_VERIFY"
        )


@dataclass(frozen=True)
class ServicePrincipalUse:
    """An AWS service principal allowed to use the key (e.g. CloudWatch Logs), under
    conditions that must bind it to this account (a confused-deputy guard), unless the service supports none and
    ``guarded_elsewhere`` says what binds it instead."""

    principal: str
    actions: tuple[str, ...]
    conditions: tuple[Condition, ...]
    guarded_elsewhere: str = ""


@dataclass(frozen=True)
class PaymentKeyProps:
    alias: str
    description: str
    account_id: str
    partition: str = "aws"
    spec: KeySpec = KeySpec.SYMMETRIC
    deletion_window_days: int = 30
    # Services that may use the key for principals of this account only (kms:ViaService), e.g. DynamoDB SSE.
    via_services: tuple[str, ...] = ()
    service_principals: tuple[ServicePrincipalUse, ...] = ()
    # Decryption by the account's principals whose IAM policy allows it, under these conditions (e.g. the log files
    # of a trail); empty: none (use takes a named grant).
    account_decrypt_conditions: tuple[Condition, ...] = ()
    # The account's key administrators (IAM role or user ARNs, wildcards allowed): refused every use of the key and
    # every grant, directly or through a service, whatever their IAM policies allow.
    administrators: tuple[str, ...] = ()


class PaymentKey(Construct):
    """A customer-managed KMS key. Administration belongs to the account; use
    belongs only to principals named in the key policy by a ``grant_*`` call, and
    to the account's principals through the services named in ``via_services``
    (what a service does with the key for the deployer or an operator), and
    never to one of ``administrators``."""

    def __init__(self, scope: Construct, id: str, props: PaymentKeyProps) -> None:
        super().__init__(scope, id)
        self.props = props
        account_root = f"arn:{props.partition}:iam::{props.account_id}:root"
        self.key_policy: list[Statement] = []
        for statement in self._account_statements(account_root):
            self._add_to_key_policy(statement)
        for use in props.service_principals:
            self.allow_service(use)
        if props.account_decrypt_conditions:
            self._add_to_key_policy(
                Statement(
                    "DecryptByThisAccount",
                    ("kms:Decrypt",),
                    ("*",),
                    conditions=props.account_decrypt_conditions,
                    principals=(("AWS", (account_root,)),),
                )
            )
        symmetric = props.spec is KeySpec.SYMMETRIC
        self.key = KmsKey(
            self,
            "key",
            description=props.description,
            key_usage=props.spec.usage,
            customer_master_key_spec=props.spec.value,
            enable_key_rotation=symmetric,
            deletion_window_in_days=props.deletion_window_days,
            is_enabled=True,
            policy=self._key_policy_json(),
        )
        self.alias = KmsAlias(self, "alias", name=props.alias, target_key_id=self.key.key_id)

    def _account_statements(self, account_root: str) -> list[Statement]:
        """The account's administration of the key, what its administrators are refused, and its use through the
        services of ``via_services``."""
        props = self.props
        statements = [
            Statement("KeyAdministration", KEY_ADMINISTRATION_ACTIONS, ("*",), principals=(("AWS", (account_root,)),))
        ]
        if props.administrators:
            # An explicit deny: it wins over the account-wide statements below and over any IAM policy. A name
            # written without its path matches at any path: a deny that silently missed would fail open.
            administrators = tuple(pattern for arn in props.administrators for pattern in any_path(arn))
            statements.append(
                Statement(
                    "KeyAdministratorsNeverUseTheKey",
                    KEY_USE_ACTIONS,
                    ("*",),
                    conditions=(Condition("ArnLike", "aws:PrincipalArn", administrators),),
                    principals=(("AWS", (account_root,)),),
                    effect="Deny",
                )
            )
        if props.via_services:
            # These services use the key with their caller's permissions: Terraform creating a table (DescribeKey,
            # CreateGrant) or a function's encrypted environment, and writing the merchants' items; an operator
            # putting the gateway secret or reading the ledger (`make verify`). The functions have grants of their own.
            statements.append(
                Statement(
                    "UseThroughAwsServicesOfThisAccount",
                    (*ENVELOPE_ACTIONS, "kms:CreateGrant"),
                    ("*",),
                    conditions=(
                        Condition("StringEquals", "kms:ViaService", props.via_services),
                        Condition("StringEquals", "kms:CallerAccount", (props.account_id,)),
                    ),
                    principals=(("AWS", (account_root,)),),
                )
            )
        return statements

    @property
    def arn(self) -> str:
        return self.key.arn

    @property
    def key_id(self) -> str:
        return self.key.key_id

    def allow_service(self, use: ServicePrincipalUse) -> None:
        """Let an AWS service principal use the key as ``use`` says (``service_principals``, or once the resources
        its conditions name exist)."""
        bound = any(self.props.account_id in value for c in use.conditions for value in c.values)
        if not (bound or use.guarded_elsewhere):
            raise ValueError(f"{self.node.path}: service principal {use.principal} needs a condition on the account")
        index = sum(statement.sid.startswith("ServicePrincipal") for statement in self.key_policy)
        self._add_to_key_policy(
            Statement(
                f"ServicePrincipal{index}",
                use.actions,
                ("*",),
                conditions=use.conditions,
                principals=(("Service", (use.principal,)),),
            )
        )

    def grant(self, grantee: Grantable, purpose: str, actions: tuple[str, ...], conditions=()) -> None:
        """Name ``grantee`` in the key policy and give its role the same actions on this key."""
        sid = f"{grantee.grant_name}{purpose}"
        grantee.add_to_policy(Statement(f"{sid}{self.node.id.title()}Key", actions, (self.arn,), conditions))
        self._add_to_key_policy(Statement(sid, actions, ("*",), conditions, principals=(("AWS", (grantee.role_arn,)),)))

    def grant_encrypt(self, grantee: Grantable, purposes: Iterable[Purpose]) -> None:
        """Envelope encryption of data for ``purposes`` only: the encryption context must name one of them."""
        self._require_spec(KeySpec.SYMMETRIC)
        self.grant(grantee, "Encrypt", ("kms:GenerateDataKey",), (self._for_purposes(grantee, "Encrypt", purposes),))

    def grant_decrypt(self, grantee: Grantable, purposes: Iterable[Purpose]) -> None:
        """Decryption of data encrypted for ``purposes`` only (a role that may open one purpose cannot open another)."""
        self._require_spec(KeySpec.SYMMETRIC)
        self.grant(grantee, "Decrypt", ("kms:Decrypt",), (self._for_purposes(grantee, "Decrypt", purposes),))

    def grant_via(
        self, grantee: Grantable, purpose: str, service: str, actions: tuple[str, ...], context: dict[str, str]
    ) -> None:
        """Use of the key only through ``service`` (its endpoint host, e.g. ``dynamodb.<region>.<dns suffix>``)
        and only for the resource the service names in its encryption ``context`` (e.g. one table): what a
        service does with the key on the grantee's behalf when it reads or writes that resource. The context names
        the resource by values known before it exists (its name, an ARN built from it): the key policy cannot
        refer to a resource that is itself encrypted with the key (Terraform would see a cycle)."""
        self._require_spec(KeySpec.SYMMETRIC)
        conditions = [Condition("StringEquals", "kms:ViaService", (service,))]
        for key, value in context.items():  # a value with ? or * is a pattern (an ARN's random suffix)
            test = "StringLike" if "?" in value or "*" in value else "StringEquals"
            conditions.append(Condition(test, f"kms:EncryptionContext:{key}", (value,)))
        self.grant(grantee, purpose, actions, tuple(conditions))

    def grant_mac(self, grantee: Grantable) -> None:
        self._require_spec(KeySpec.HMAC_256)
        self.grant(grantee, "Mac", ("kms:GenerateMac",))

    def grant_sign(self, grantee: Grantable) -> None:
        """Signatures by the checkpoints' algorithm only, over a message (KMS hashes it): never over a digest the
        grantee chose."""
        self._require_spec(KeySpec.ECC_NIST_P256)
        conditions = (
            Condition("StringEquals", "kms:SigningAlgorithm", (SIGNING_ALGORITHM,)),
            Condition("StringEquals", "kms:MessageType", ("RAW",)),
        )
        self.grant(grantee, "Sign", ("kms:Sign",), conditions)

    def grant_public_key(self, grantee: Grantable) -> None:
        """Reading the public key, which anyone may then hold (GET /ledger/public-key serves it)."""
        self._require_spec(KeySpec.ECC_NIST_P256)
        self.grant(grantee, "PublicKey", ("kms:GetPublicKey",))

    def _add_to_key_policy(self, statement: Statement) -> None:
        if any(existing.sid == statement.sid for existing in self.key_policy):
            raise ValueError(f"{self.node.path}: statement {statement.sid} is in the key policy twice")
        self.key_policy.append(statement)
        if hasattr(self, "key"):
            self.key.policy = self._key_policy_json()

    def _key_policy_json(self) -> str:
        # A key policy's only resource is the key itself ("*"): written in IAM's JSON,
        # not as an aws_iam_policy_document, whose scanners read "*" as every resource.
        return json.dumps({"Version": "2012-10-17", "Statement": [s.render_json() for s in self.key_policy]})

    def _for_purposes(self, grantee: Grantable, use: str, purposes: Iterable[Purpose]) -> Condition:
        """The condition that limits a grant to ``purposes``; a grant naming no purpose is refused."""
        values = tuple(sorted({Purpose(purpose).value for purpose in purposes}))
        if not values:
            raise ValueError(f"{self.node.path}: the {use} grant to {grantee.grant_name} names no purpose")
        return Condition("StringEquals", CONDITION_KEY, values)

    def _require_spec(self, spec: KeySpec) -> None:
        if self.props.spec is not spec:
            raise ValueError(f"{self.node.path}: a {self.props.spec.value} key cannot be granted {spec.value} use")
