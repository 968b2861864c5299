"""WebhookDeadLetters: the queue of events never delivered to a webhook endpoint after every wait, which the delivery
function sends to, encrypted with the operations key as the functions' own dead-letter queues are. A message names
the merchant, the event's id, type and time, never its content (that stays in the ledger table, to redeliver)."""

from dataclasses import dataclass

from cdktf_cdktf_provider_aws.sqs_queue import SqsQueue
from constructs import Construct

from stacks.iam import Statement
from stacks.payment_function import PaymentFunction
from stacks.payment_key import KEY_WRITE_ACTIONS, PaymentKey

RETENTION_SECONDS = 14 * 24 * 3600  # SQS's longest


@dataclass(frozen=True)
class WebhookDeadLettersProps:
    queue_name: str
    key: PaymentKey
    sqs_endpoint: str  # SQS's endpoint host in the stack's region and partition: the key's kms:ViaService
    sqs_arn_prefix: str  # "arn:<partition>:sqs:<region>:<account>:"


class WebhookDeadLetters(Construct):
    def __init__(self, scope: Construct, id: str, props: WebhookDeadLettersProps) -> None:
        super().__init__(scope, id)
        self.props = props
        self.queue = SqsQueue(
            self,
            "queue",
            name=props.queue_name,
            kms_master_key_id=props.key.arn,
            message_retention_seconds=RETENTION_SECONDS,
        )
        self.name = self.queue.name
        self.url = self.queue.url

    def grant_send(self, grantee: PaymentFunction) -> None:
        """``SendMessage`` to this queue, and the key's use through SQS for this queue only."""
        grantee.add_to_policy(Statement("SendWebhookDeadLetters", ("sqs:SendMessage",), (self.queue.arn,)))
        context = {"aws:sqs:arn": f"{self.props.sqs_arn_prefix}{self.props.queue_name}"}
        self.props.key.grant_via(grantee, "WebhookDeadLetters", self.props.sqs_endpoint, KEY_WRITE_ACTIONS, context)
