"""DynamoDB tables of the service, built from the schemas in ``lambdas.storage_schema``.

Every table is on demand, encrypted with a customer key, recoverable to any
second of the last 35 days and protected from deletion unless a dev environment
switches that off. Each class grants only what its records allow."""

import json
from dataclasses import dataclass
from typing import Any

from cdktf import Fn, IResolvable, TerraformIterator, Token
from cdktf_cdktf_provider_aws.dynamodb_table import (
    DynamodbTable,
    DynamodbTableAttribute,
    DynamodbTableGlobalSecondaryIndex,
    DynamodbTablePointInTimeRecovery,
    DynamodbTableServerSideEncryption,
    DynamodbTableTtl,
)
from cdktf_cdktf_provider_aws.dynamodb_table_item import DynamodbTableItem
from constructs import Construct

from lambdas.storage_schema import (
    IDEMPOTENCY,
    LEDGER,
    MERCHANTS,
    MerchantRecord,
    Partition,
    TableSchema,
    merchant_items,
    to_item,
)
from stacks.iam import Condition, Grantable, Statement
from stacks.payment_key import KEY_READ_ACTIONS, KEY_WRITE_ACTIONS, PaymentKey

READ_ACTIONS = ("dynamodb:GetItem", "dynamodb:Query")


@dataclass(frozen=True)
class TableProps:
    table_name: str
    key: PaymentKey
    via_service: str  # DynamoDB's endpoint host in the stack's region and partition (the key's kms:ViaService)
    deletion_protection: bool = True


WRITE_ACTIONS = frozenset({"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"})


class _EncryptedTable(Construct):
    schema: TableSchema

    def __init__(self, scope: Construct, id: str, props: TableProps) -> None:
        super().__init__(scope, id)
        self.props = props
        self._key_use: dict[str, str] = {}  # grantee -> "Read" or "Write": the table key's use granted so far
        schema = self.schema
        self.table = DynamodbTable(
            self,
            "table",
            name=props.table_name,
            billing_mode="PAY_PER_REQUEST",
            hash_key=schema.partition_key,
            range_key=schema.sort_key,
            attribute=[DynamodbTableAttribute(name=name, type="S") for name in schema.key_attributes],
            global_secondary_index=[
                DynamodbTableGlobalSecondaryIndex(
                    name=index.name,
                    hash_key=index.partition_key,
                    range_key=index.sort_key,
                    projection_type=index.projection,
                )
                for index in schema.indexes
            ]
            or None,
            server_side_encryption=DynamodbTableServerSideEncryption(enabled=True, kms_key_arn=props.key.arn),
            point_in_time_recovery=DynamodbTablePointInTimeRecovery(enabled=True),
            deletion_protection_enabled=props.deletion_protection,
            ttl=DynamodbTableTtl(attribute_name=schema.ttl_attribute, enabled=True) if schema.ttl_attribute else None,
        )

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def arn(self) -> str:
        return self.table.arn

    def _grant(
        self, grantee: Grantable, purpose: str, actions: tuple[str, ...], conditions=(), indexes: bool = False
    ) -> None:
        """The table actions (on its indexes too, with ``indexes``), and the use of the table's key that DynamoDB
        makes for them on the grantee's behalf (through DynamoDB only, for this table only)."""
        resources = (self.arn, f"{self.arn}/index/*") if indexes else (self.arn,)
        sid = f"{self.node.id.title()}{purpose}"
        grantee.add_to_policy(Statement(sid, actions, resources, tuple(conditions)))
        use = "Write" if WRITE_ACTIONS & set(actions) else "Read"
        granted = self._key_use.get(grantee.grant_name)
        if granted in (use, "Write"):
            return
        self._key_use[grantee.grant_name] = use
        key_actions = KEY_WRITE_ACTIONS if use == "Write" else KEY_READ_ACTIONS
        if granted == "Read":  # reading is granted already: writing adds only what reading lacks (no overlap)
            key_actions = tuple(action for action in KEY_WRITE_ACTIONS if action not in KEY_READ_ACTIONS)
        self.props.key.grant_via(
            grantee,
            f"{use}Through{self.node.id.title()}Table",
            self.props.via_service,
            key_actions,
            {"aws:dynamodb:tableName": self.props.table_name},
        )

    def grant_read(self, grantee: Grantable) -> None:
        self._grant(grantee, "Read", READ_ACTIONS, indexes=True)


def _leading_keys(partitions: tuple[Partition, ...]) -> Condition:
    return Condition("ForAllValues:StringLike", "dynamodb:LeadingKeys", tuple(f"{p.value}*" for p in partitions))


class LedgerTable(_EncryptedTable):
    """The payment ledger: tokens, payments, refunds and double-entry ledger entries.

    Writers only ever put new items (``PutItem``; the code adds
    ``attribute_not_exists`` conditions). Payments change state with
    ``UpdateItem``, which is granted only on ``PAYMENT#`` partitions: no role can
    update or delete a ledger entry (``CHAIN#`` heads, updated with every entry, prove the entries: see
    lambdas.domain.chains). Nothing grants ``DeleteItem``, and
    nothing expires: the table has no TTL (its schema names no TTL attribute).
    """

    schema = LEDGER

    def grant_append(self, grantee: Grantable, partitions: tuple[Partition, ...]) -> None:
        """Put new items (and check conditions in a transaction) in these partitions only."""
        purpose = "Append" + "".join(p.name.title() for p in partitions)
        self._grant(grantee, purpose, ("dynamodb:PutItem", "dynamodb:ConditionCheckItem"), (_leading_keys(partitions),))

    def grant_read_partitions(self, grantee: Grantable, partitions: tuple[Partition, ...]) -> None:
        """Read the items of these partitions only, from the table itself (no index)."""
        purpose = "Read" + "".join(p.name.title() for p in partitions)
        self._grant(grantee, purpose, READ_ACTIONS, (_leading_keys(partitions),))

    def grant_query_index(self, grantee: Grantable, index: str, partitions: tuple[Partition, ...]) -> None:
        """Query ``index`` within these partitions only (the index's partition key carries their prefix)."""
        purpose = "Query" + index.title().replace("_", "") + "".join(p.name.title() for p in partitions)
        statement = Statement(
            f"{self.node.id.title()}{purpose}", ("dynamodb:Query",), (f"{self.arn}/index/{index}",),
            (_leading_keys(partitions),),
        )  # fmt: skip
        grantee.add_to_policy(statement)

    def grant_read_together(self, grantee: Grantable, partitions: tuple[Partition, ...]) -> None:
        """Read items of these partitions together, in one ``BatchGetItem``."""
        purpose = "ReadTogether" + "".join(p.name.title() for p in partitions)
        self._grant(grantee, purpose, ("dynamodb:BatchGetItem",), (_leading_keys(partitions),))

    def grant_update(self, grantee: Grantable, partitions: tuple[Partition, ...]) -> None:
        """Update items in these partitions only (payments through their states, chain heads as entries are added);
        ledger entries stay out of reach."""
        if Partition.LEDGER in partitions:
            raise ValueError("ledger entries are never updated")
        purpose = "Update" + "".join(p.name.title() for p in partitions)
        self._grant(grantee, purpose, ("dynamodb:UpdateItem",), (_leading_keys(partitions),))


class IdempotencyTable(_EncryptedTable):
    """Idempotency records and velocity counters (``id`` + ``expiration``), expired by TTL after their retention."""

    schema = IDEMPOTENCY

    def grant_read_write(self, grantee: Grantable) -> None:
        actions = ("dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem")
        self._grant(grantee, "ReadWrite", actions)

    def grant_condition_check(self, grantee: Grantable) -> None:
        """Make a transaction depend on a record (reconciliation gives up nothing a request holds)."""
        self._grant(grantee, "ConditionCheck", ("dynamodb:ConditionCheckItem",))


# Stands for a merchant's API key id in its item until Terraform writes the id (made by API Gateway at apply) there.
API_KEY_ID_PLACEHOLDER = "@api-key-id@"


class MerchantsTable(_EncryptedTable):
    """Who acts for which merchant, and each merchant's rules: one item per principal and per merchant, written by
    Terraform from the configuration (one ``for_each`` resource, however many merchants), read by the functions.
    Data rather than policy text or environment variables, so thousands of principals fit no limit."""

    schema = MERCHANTS

    def hold(self, merchants: dict[str, tuple[tuple[str, ...], dict[str, Any]]], api_key_ids: IResolvable) -> None:
        """Write ``merchants`` (id -> principals, rules as ``RuleSet.from_config`` reads them) as the table's items,
        each merchant's with the id of its API key (``api_key_ids``: a Terraform map by merchant id; API Gateway
        makes the ids at apply, so Terraform writes them in place of a placeholder). A merchant without a key in
        the map keeps the placeholder, which no key's id matches: its requests are refused, not let through."""
        items = {
            item[self.schema.partition_key]: json.dumps(to_item(item), sort_keys=True)
            for merchant_id, (principals, rules) in merchants.items()
            for item in merchant_items(merchant_id, principals, rules, API_KEY_ID_PLACEHOLDER)
        }
        each = TerraformIterator.from_map(items)
        merchant_id = Fn.trimprefix(Token.as_string(each.key), MerchantRecord.MERCHANT.value)  # a principal's: no key
        DynamodbTableItem(
            self,
            "items",
            for_each=each,
            table_name=self.table.name,
            hash_key=self.schema.partition_key,
            item=Fn.replace(
                Token.as_string(each.value),
                API_KEY_ID_PLACEHOLDER,
                Token.as_string(Fn.lookup(api_key_ids, merchant_id, API_KEY_ID_PLACEHOLDER)),
            ),
        )

    def grant_lookup(self, grantee: Grantable) -> None:
        self._grant(grantee, "Lookup", ("dynamodb:GetItem",))

    def grant_list(self, grantee: Grantable) -> None:
        """Every merchant, for the scheduled jobs."""
        self._grant(grantee, "List", ("dynamodb:Scan",))
