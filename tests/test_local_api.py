"""The local API's throttle, on a clock the test moves (API Gateway's token bucket: rate and burst)."""

from tools.local_api import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def admitted(bucket: TokenBucket, attempts: int) -> int:
    return sum(bucket.take() for _ in range(attempts))


def test_a_full_bucket_admits_the_burst_at_once_and_no_more():
    bucket = TokenBucket(rate=50, burst=100, clock=Clock())
    assert admitted(bucket, 150) == 100


def test_the_bucket_refills_at_the_rate():
    clock = Clock()
    bucket = TokenBucket(rate=50, burst=100, clock=clock)
    admitted(bucket, 100)
    clock.now += 0.5
    assert admitted(bucket, 100) == 25
    clock.now += 0.01
    assert admitted(bucket, 1) == 0  # half a token is not a request


def test_an_idle_bucket_holds_no_more_than_the_burst():
    clock = Clock()
    bucket = TokenBucket(rate=50, burst=100, clock=clock)
    clock.now += 3600
    assert admitted(bucket, 1000) == 100
