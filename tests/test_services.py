"""The test harness's own guarantees."""

from tests.services import REDIS_CLAIMS_DB, REDIS_URL, redis_broker


def test_redis_brokers_never_share_a_database() -> None:
    import redis

    claims = redis.Redis.from_url(f"{REDIS_URL}/{REDIS_CLAIMS_DB}")
    with redis_broker() as first, redis_broker() as second, redis_broker() as third:
        assert len({first, second, third}) == 3
        numbers = [url.rsplit("/", 1)[1] for url in (first, second, third)]
        assert all(claims.exists(f"shears-test:redis-db:{n}") for n in numbers)
    assert not any(claims.exists(f"shears-test:redis-db:{n}") for n in numbers)
