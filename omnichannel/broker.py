"""The Redis broker transport, as kombu's, less one way for a worker to die with Redis.

Under load a worker nearly always holds a message: a task running (acknowledged late) or one
waiting for its countdown. When Redis goes away, the consumer closes its channel, and closing
hands the held messages back to Redis. kombu's Redis channel drops its connection pool before
that hand-back, which then fails building a new one (AttributeError: 'NoneType' object has no
attribute 'hostname') and the worker exits with "Unrecoverable error" instead of reconnecting
(tests/test_faults.py reproduces it with kombu 5.7.0).

The same happens to a task that finished while Redis was away: its acknowledgement, on the
channel closed meanwhile, built a client from a connection that is gone and the worker exited
(prefork: a pool process ran the task while the consumer lost the broker).

Here the hand-back that cannot reach Redis, and an acknowledgement or rejection on a closed
channel, are given up with a warning, and the worker goes on to reconnect. Nothing depends
on those messages: Redis keeps a message it delivered in its unacknowledged index and
delivers it again after the visibility timeout; a Redis restarted empty has lost them
anyway, and every task here is idempotent with a beat sweeper behind it (availability
outbox, webhook deliveries, the nightly jobs).

It also keeps the Redis client it sends commands with, instead of building one per command
(see Channel._create_client).

Settings: CELERY_BROKER_TRANSPORT = "omnichannel.broker:Transport" when REDIS_URL is set.
"""

import logging

from kombu.transport import redis as kombu_redis

log = logging.getLogger(__name__)


class QoS(kombu_redis.QoS):
    def ack(self, delivery_tag):
        """A task that finished while Redis was away (a pool process ran it: prefork) is
        acknowledged when the worker is back, on the channel closed meanwhile; kombu built a
        client for it from a connection that is gone (AttributeError: 'NoneType' object has
        no attribute 'client') and the worker exited, the outbox undrained until someone
        restarted it. On a closed channel the acknowledgement is given up (see the module):
        a new channel carries on."""
        if self._channel_closed():
            return self._give_up(delivery_tag, "acknowledgement")
        return super().ack(delivery_tag)

    def reject(self, delivery_tag, requeue=False):
        if self._channel_closed():
            return self._give_up(delivery_tag, "rejection")
        return super().reject(delivery_tag, requeue=requeue)

    def _channel_closed(self) -> bool:
        return self.channel.closed or self.channel.connection is None

    def _give_up(self, delivery_tag, what: str) -> None:
        log.warning(
            "The %s of a message held on a channel closed since (the broker went away) is "
            "given up; Redis delivers it again after the visibility timeout, beat's sweepers "
            "cover the rest",
            what,
        )
        self._delivered.pop(delivery_tag, None)

    def restore_unacked(self, client=None):
        try:
            return super().restore_unacked(client)
        except Exception as exc:  # the broker is unreachable or this channel's pool is gone
            log.warning(
                "%d held message(s) not handed back to the broker (%s: %s); Redis delivers "
                "them again after the visibility timeout, beat's sweepers cover the rest",
                len(self._delivered),
                type(exc).__name__,
                exc,
            )
            self._delivered.clear()
            return None


class Channel(kombu_redis.Channel):
    QoS = QoS

    def _create_client(self, asynchronous=False):
        """kombu builds a new redis.Redis around the channel's pool for every command it
        sends outside the consuming loop: each publish, each delivery recorded and each
        acknowledgement, three per message. Building one costs about as much CPU as sending
        the command (80 us here: redis-py fills its table of response callbacks), a sixth
        of the worker's consumer process per task in a profile. Such a client holds no
        connection (each command takes one from the pool, which is thread-safe), so one per
        pool is kept; a new pool (kombu drops it on a reconnect) gets a new client. The
        consuming client (BRPOP), which pins a connection, is kombu's own, built once per
        channel."""
        if asynchronous:
            return super()._create_client(asynchronous=True)
        pool = self.pool
        client = self.__dict__.get("_command_client")
        if client is None or client.connection_pool is not pool:
            client = self.__dict__["_command_client"] = super()._create_client()
        return client


class Transport(kombu_redis.Transport):
    Channel = Channel
