"""Fixtures the process tests share with the queue's tests: a redis-server of the test's own
(test_shards.py: the bots use the default key prefix, so no other test's keys may be there)."""

from tests.queue.conftest import redis_server  # noqa: F401 - a fixture, found by its name
