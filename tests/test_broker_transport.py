"""omnichannel.broker's Redis transport against the real Redis: messages go through kombu as
the web process and the worker send and take them (publish; consume, record, acknowledge)."""

import uuid

import kombu
import pytest
import redis

pytestmark = pytest.mark.redis


def test_publishing_and_acknowledging_reuse_one_redis_client(settings, monkeypatch):
    """kombu's own Redis channel builds a redis.Redis for every command it sends (each
    publish, delivery recorded, acknowledgement): about as much CPU as the command. Ours
    keeps one per connection pool; every message still arrives, once, and is acknowledged
    (nothing is left in the unacknowledged index)."""
    if not settings.USING_REDIS:
        pytest.fail("needs Redis: CI has it; locally start redis-server")
    built = []
    original = redis.Redis.__init__

    def counted(self, *args, **kwargs):
        built.append(kwargs.get("connection_pool"))
        original(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counted)
    queue = kombu.Queue(f"test-broker-{uuid.uuid4().hex}")
    received = []

    def on_message(body, message):
        received.append(body["n"])
        message.ack()

    with kombu.Connection(settings.REDIS_URL, transport="omnichannel.broker:Transport") as conn:
        channel = conn.default_channel
        try:
            with conn.Producer(channel) as producer:
                for n in range(20):
                    producer.publish({"n": n}, routing_key=queue.name, declare=[queue])
            with conn.Consumer(queue, callbacks=[on_message], channel=channel):
                while len(received) < 20:
                    conn.drain_events(timeout=5)
            client = channel._create_client()
            assert client.zcard(channel.qos.unacked_index_key) == 0
            assert client.hlen(channel.qos.unacked_key) == 0
        finally:
            queue(channel).delete()

    assert received == list(range(20))
    # One client for commands and kombu's consuming client, not one per message and step.
    assert len(built) <= 3, len(built)
