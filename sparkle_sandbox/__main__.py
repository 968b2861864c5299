"""The Sparkle sandbox (shared/docs/sparkle-gateway.md) on 127.0.0.1. Faults apply to the API routes (/v1/...);
set them here at start, or later with POST /_sandbox/faults (same names, e.g. {"drop_rate": 1.0});
POST /_sandbox/reset restores these."""

import argparse
import os

from sparkle_sandbox.server import DEFAULT_PORT, DEFAULT_SECRET_KEY, SLOW_CARD, SLOW_REFUND_AMOUNT, Faults, serve


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m sparkle_sandbox", description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("SPARKLE_PORT", DEFAULT_PORT)))
    parser.add_argument("--secret-key", default=os.environ.get("SPARKLE_SECRET_KEY", DEFAULT_SECRET_KEY))
    parser.add_argument(
        "--slow-card-delay",
        type=float,
        default=35.0,
        help=f"seconds before answering card {SLOW_CARD}, a refund of {SLOW_REFUND_AMOUNT} "
        "or a request meeting --slow-rate (each is processed at once)",
    )
    parser.add_argument("--latency-ms", type=int, default=0, help="wait before processing each request")
    parser.add_argument("--error-rate", type=float, default=0.0, help="share answered 503, nothing processed")
    parser.add_argument("--redirect-rate", type=float, default=0.0, help="share answered 302, nothing processed")
    parser.add_argument("--redirect-to", default=Faults.redirect_to, help="the Location of those 302s")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of POSTs processed, answer dropped")
    parser.add_argument(
        "--garbage-rate",
        type=float,
        default=0.0,
        help="share of POSTs processed, answered 200 with a body that is not JSON",
    )
    parser.add_argument(
        "--slow-rate", type=float, default=0.0, help="share of POSTs processed, answered after --slow-card-delay"
    )
    args = parser.parse_args()
    faults = Faults(
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        redirect_rate=args.redirect_rate,
        redirect_to=args.redirect_to,
        drop_rate=args.drop_rate,
        garbage_rate=args.garbage_rate,
        slow_rate=args.slow_rate,
    )
    serve(args.port, args.secret_key, faults, args.slow_card_delay)


if __name__ == "__main__":
    main()
