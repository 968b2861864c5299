"""Items as the version before merchants wrote them: ``<KIND>#<id>`` keys, pending in the partition ``pending``."""

from lambdas.adapters.dynamo import from_item, to_item
from lambdas.storage_schema import LEDGER, Partition

PK, SK, PENDING_PK = LEDGER.partition_key, LEDGER.sort_key, LEDGER.indexes[0].partition_key


def move_to_pre_merchant_keys(dynamodb, table: str, merchant: str) -> int:
    """Rewrites every item of ``merchant`` under its pre-merchant key (the old layout); returns how many."""
    moved = 0
    for item in [from_item(i) for i in dynamodb.scan(TableName=table)["Items"]]:
        for partition in Partition:
            prefix = partition.key(merchant, "")
            if item[PK].startswith(prefix):
                dynamodb.delete_item(TableName=table, Key=to_item({PK: item[PK], SK: item[SK]}))
                item[PK] = f"{partition.value}{item[PK].removeprefix(prefix)}"
                if PENDING_PK in item:
                    item[PENDING_PK] = "pending"
                dynamodb.put_item(TableName=table, Item=to_item(item))
                moved += 1
    return moved
