"""`python -m sparkle_sandbox [--port 4010] [--latency-ms N] [--error-rate F] [--drop-rate F]`"""

import argparse
import os

from sparkle_sandbox.server import DEFAULT_PORT, DEFAULT_SECRET_KEY, Faults, serve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=int(os.environ.get("SPARKLE_PORT", DEFAULT_PORT)))
    parser.add_argument("--secret-key", default=os.environ.get("SPARKLE_SECRET_KEY", DEFAULT_SECRET_KEY))
    parser.add_argument("--slow-card-delay", type=float, default=35.0, help="seconds the delayed test card waits")
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 503 unprocessed")
    parser.add_argument("--drop-rate", type=float, default=0.0, help="share of requests processed, answer dropped")
    args = parser.parse_args()
    faults = Faults(latency_ms=args.latency_ms, error_rate=args.error_rate, drop_rate=args.drop_rate)
    serve(args.port, args.secret_key, faults, args.slow_card_delay)


if __name__ == "__main__":
    main()
