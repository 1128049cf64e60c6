"""Python kombu as a peer of the AMQP benchmark: one measurement per run, one JSON line out.

Spawned by bench/kombu-peer.ts with Debian's /usr/bin/python3 (python3-kombu 5.2, py-amqp
transport); the workload is amqp-bench.ts's, written the way a kombu user writes it:

  kombu-peer.py publish  QUEUE N   Producer.publish of N dicts with confirm_publish=True.
                                   py-amqp confirms every publish synchronously (it waits
                                   for the broker's ack before returning): that is kombu's
                                   confirm mode, so its window is 1, not 1000.
  kombu-peer.py consume  QUEUE N   Consumer(prefetch_count=1000), ack each, drain_events.
  kombu-peer.py recovery QUEUE     publish + drain_events in a loop through conn.ensure()
                                   (kombu defaults), the consumer revived by on_revive; prints
                                   {"ready": true} once running, then the caller forces the
                                   close; times run from the client seeing the close.
  kombu-peer.py topology URL EXCHANGE QUEUE... one Consumer (prefetch 100) of the queues, each
                                   bound to EXCHANGE under its own name, draining through
                                   conn.ensure() with on_revive; prints {"ready": true},
                                   then {"delivered": QUEUE} for each delivery after the
                                   connection broke (the caller keeps the clock), and exits
                                   once every queue has delivered one.
  kombu-peer.py memory   K         K idle connections + channels: tracemalloc and RSS deltas.

Clocks are time.perf_counter() inside this process; interpreter start, connecting and
declaring are outside them, as for the Node peers.
"""
import gc
import json
import os
import sys
import time
import tracemalloc

from kombu import Connection, Consumer, Exchange, Producer, Queue
from kombu.utils.json import dumps

URL = os.environ.get('BROKER_URL', 'amqp://guest:guest@127.0.0.1:5672//')  # as amqp-bench.ts
WINDOW = 1000


def body(seq, size=256):
    """bench/lib.ts payload(): {seq, pad} padded so that its JSON text is `size` bytes.

    kombu's json serializer writes ', ' and ': ', so the pad is sized on kombu's own
    dumps(): the bytes on the wire are as many as the Node peers send."""
    base = len(dumps({'seq': seq, 'pad': ''}))
    return {'seq': seq, 'pad': 'x' * max(0, size - base)}


def out(**result):
    print(json.dumps(result), flush=True)


def publish(queue, n):
    with Connection(URL, transport_options={'confirm_publish': True}) as conn:
        channel = conn.channel()
        Queue(queue, durable=False)(channel).declare()
        producer = Producer(channel, routing_key=queue, serializer='json')
        start = time.perf_counter()
        for i in range(n):
            producer.publish(body(i))  # returns once the broker has confirmed it
        elapsed = time.perf_counter() - start
    out(rate=n / elapsed)


def consume(queue, n):
    seen = 0

    def on_message(_body, message):
        nonlocal seen
        message.ack()
        seen += 1

    with Connection(URL) as conn:
        consumer = Consumer(conn.channel(), [Queue(queue, durable=False)], callbacks=[on_message],
                            prefetch_count=WINDOW, accept=['json'])
        start = time.perf_counter()
        consumer.consume()
        while seen < n:
            conn.drain_events(timeout=10)
        elapsed = time.perf_counter() - start
    out(rate=n / elapsed)


def recovery(queue, limit=15.0):
    conn = Connection(URL, transport_options={'confirm_publish': True})
    closed_at = published = delivered = 0.0

    def on_message(_body, message):
        nonlocal delivered
        message.ack()
        if closed_at and not delivered:
            delivered = time.perf_counter()

    producer = Producer(conn, routing_key=queue, serializer='json')
    consumer = Consumer(conn, [Queue(queue, durable=False)], callbacks=[on_message], accept=['json'])
    consumer.consume()

    def revive(channel):
        consumer.revive(channel)
        consumer.consume()

    def step(seq):
        nonlocal closed_at, published
        # Only a publish started after the close counts: only the new connection can confirm it.
        # ensure() retries this very call once reconnected, so that retry is the first such one.
        after_close = closed_at != 0
        try:
            producer.publish(body(seq))
            if after_close and not published:
                published = time.perf_counter()
            conn.drain_events(timeout=0)
        except TimeoutError:  # drain_events found nothing to read (an OSError: test it first)
            pass
        except conn.recoverable_connection_errors:
            # The clock starts here: the first moment user code can see the close.
            closed_at = closed_at or time.perf_counter()
            raise

    ensured = conn.ensure(producer, step, on_revive=revive)
    started = time.perf_counter()
    ready = False
    seq = 0
    while not (published and delivered) and time.perf_counter() - started < limit:
        if not ready and time.perf_counter() - started > 0.2:
            out(ready=True)
            ready = True
        ensured(seq)
        seq += 1
    Queue(queue)(conn.default_channel).delete()
    conn.release()

    def since_close(t):  # ms, None if the close or the recovery was never seen within `limit`
        return (t - closed_at) * 1000 if t and closed_at else None

    out(publish=since_close(published), deliver=since_close(delivered))


def topology(url, exchange, names, limit=30.0):
    conn = Connection(url)
    ex = Exchange(exchange, 'direct', durable=False)
    queues = [Queue(name, ex, routing_key=name, durable=False) for name in names]
    broke = False
    waiting = set(names)

    def on_message(_body, message):
        message.ack()
        queue = message.delivery_info['routing_key']
        if broke and queue in waiting:
            waiting.discard(queue)
            out(delivered=queue)

    consumer = Consumer(conn, queues, callbacks=[on_message], prefetch_count=100, accept=['json', 'text/plain'])
    consumer.consume()

    def drain():
        nonlocal broke
        try:
            conn.drain_events(timeout=0.05)
        except TimeoutError:  # nothing to read (an OSError: test it first)
            pass
        except conn.recoverable_connection_errors:
            broke = True
            raise

    # ensure() revives the consumer itself (declarations, bindings, qos); on_revive consumes again.
    ensured = conn.ensure(consumer, drain, on_revive=lambda _channel: consumer.consume())
    out(ready=True)
    started = time.perf_counter()
    while waiting and time.perf_counter() - started < limit:
        ensured()
    conn.release()


def rss_kib():
    with open('/proc/self/status') as status:
        return next(int(line.split()[1]) for line in status if line.startswith('VmRSS:'))


def memory(k):
    def settle():
        gc.collect()
        return tracemalloc.get_traced_memory()[0], rss_kib()

    tracemalloc.start()
    warm = Connection(URL)  # first connection pays for imports and caches, as the Node peers' do not
    warm.channel()
    traced0, rss0 = settle()
    conns = []
    for _ in range(k):
        conn = Connection(URL)
        conn.channel()
        conns.append(conn)
    traced1, rss1 = settle()
    for conn in [warm, *conns]:
        conn.release()
    out(tracemalloc=(traced1 - traced0) / k / 1024, rss=(rss1 - rss0) / k)


if __name__ == '__main__':
    what, *args = sys.argv[1:]
    if what == 'publish':
        publish(args[0], int(args[1]))
    elif what == 'consume':
        consume(args[0], int(args[1]))
    elif what == 'recovery':
        recovery(args[0])
    elif what == 'topology':
        topology(args[0], args[1], args[2:])
    elif what == 'memory':
        memory(int(args[0]))
    else:
        sys.exit(f'unknown measurement {what!r}: publish | consume | recovery | topology | memory')
