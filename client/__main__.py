"""``python -m client``: the SDK from a shell. Credentials and region come from botocore's chain
(``AWS_PROFILE``, ``AWS_SHARED_CREDENTIALS_FILE``...); the API from ``--api-url`` or ``PAYMENTS_API_URL``.

    python -m client tokenize --number 4242424242424242 --exp-month 12 --exp-year 2030
    python -m client pay --amount 1999 --currency usd --token tok_...
    python -m client authorize --amount 1999 --currency usd --token tok_...
    python -m client capture --payment pay_... --amount 1500
    python -m client cancel --payment pay_...
    python -m client refund --payment pay_... --amount 500
    python -m client get --payment pay_...
    python -m client ledger --payment pay_...
    python -m client events --type payment.succeeded
    python -m client settlements --limit 10 [--starting-after st_...]
    python -m client settlement --settlement st_...
    python -m client listen --port 4242 [--forward-to http://127.0.0.1:8000/webhooks]"""

import argparse
import dataclasses
import itertools
import json
import os
import sys

from client.client import PaymentsClient
from client.errors import PaymentsError
from client.listen import DEFAULT_PORT, listen
from client.signing import SigV4

DEFAULT_API_URL = "http://127.0.0.1:3000"  # `make local`


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m client", description="Call the payment API.")
    parser.add_argument("--api-url", default=os.environ.get("PAYMENTS_API_URL", DEFAULT_API_URL))
    parser.add_argument("--profile", default=None, help="AWS profile (default: botocore's chain)")
    parser.add_argument("--region", default=None)
    commands = parser.add_subparsers(dest="command", required=True)
    tokenize = commands.add_parser("tokenize", help="vault a card")
    tokenize.add_argument("--number", required=True)
    tokenize.add_argument("--exp-month", type=int, required=True)
    tokenize.add_argument("--exp-year", type=int, required=True)
    for name, help_text in (("pay", "charge a token"), ("authorize", "authorise a token only, to capture later")):
        pay = commands.add_parser(name, help=help_text)
        pay.add_argument("--amount", type=int, required=True, help="minor units")
        pay.add_argument("--currency", required=True)
        pay.add_argument("--token", required=True)
        pay.add_argument("--description")
        pay.add_argument("--key", help="idempotency key (default: a new one)")
    capture = commands.add_parser("capture", help="capture an authorisation, in full unless --amount")
    capture.add_argument("--payment", required=True)
    capture.add_argument("--amount", type=int)
    capture.add_argument("--key")
    cancel = commands.add_parser("cancel", help="release an authorisation")
    cancel.add_argument("--payment", required=True)
    cancel.add_argument("--key")
    refund = commands.add_parser("refund", help="refund a payment, in full unless --amount")
    refund.add_argument("--payment", required=True)
    refund.add_argument("--amount", type=int)
    refund.add_argument("--key")
    commands.add_parser("get", help="read a payment").add_argument("--payment", required=True)
    commands.add_parser("ledger", help="read a payment's ledger").add_argument("--payment", required=True)
    events = commands.add_parser("events", help="list the merchant's events, newest first")
    events.add_argument("--type", help="one event type, such as payment.succeeded")
    events.add_argument("--limit", type=int, default=10)
    settlements = commands.add_parser("settlements", help="one page of the merchant's settlements, newest first")
    settlements.add_argument("--limit", type=int)
    settlements.add_argument("--starting-after", help="the last settlement id of the previous page")
    commands.add_parser("settlement", help="read a settlement with its mismatches").add_argument(
        "--settlement", required=True
    )
    listener = commands.add_parser("listen", help="receive the merchant's events on a local port and print them")
    listener.add_argument("--port", type=int, default=DEFAULT_PORT)
    listener.add_argument("--events", default="*", help="comma-separated event types (default: all)")
    listener.add_argument("--forward-to", help="pass each verified delivery on to this URL, body and signature as sent")
    listener.add_argument("--public-url", help="register this URL (a tunnel to the port) instead of "
                                               "http://127.0.0.1:<port>/, which only `make local` accepts")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    client = PaymentsClient(args.api_url, SigV4.from_chain(args.profile, args.region))
    result: object
    try:
        match args.command:
            case "tokenize":
                result = client.tokenize(args.number, args.exp_month, args.exp_year)
            case "pay" | "authorize":
                result = client.pay(args.amount, args.currency, token=args.token, description=args.description,
                                    key=args.key, capture=args.command == "pay")  # fmt: skip
            case "capture":
                result = client.capture(args.payment, args.amount, key=args.key)
            case "cancel":
                result = client.cancel(args.payment, key=args.key)
            case "refund":
                result = client.refund(args.payment, args.amount, key=args.key)
            case "get":
                result = client.payment(args.payment)
            case "events":
                result = list(itertools.islice(client.events(args.type, page_size=args.limit), args.limit))
            case "settlements":
                result = client.list_settlements(args.limit, args.starting_after)
            case "settlement":
                result = client.get_settlement(args.settlement)
            case "listen":
                events = tuple(name.strip() for name in args.events.split(","))
                listen(client, args.port, events, args.forward_to, args.public_url)
                return 0
            case _:
                result = client.ledger(args.payment)
    except PaymentsError as error:
        print(json.dumps({"status": error.status, "type": error.type, "code": error.code, "message": error.message}),
              file=sys.stderr)  # fmt: skip
        return 1
    shown = [dataclasses.asdict(r) for r in result] if isinstance(result, list) else dataclasses.asdict(result)
    print(json.dumps(shown, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
