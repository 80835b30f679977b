"""The stock Celery 5.2 side of tools/bench/worker.sh.

A worker of this app runs renderfarm.noop, the same no-op task the Go worker
registers, with late acks and Celery's default prefetch multiplier (4), so
that it takes the same window of unacknowledged deliveries as
`renderfarm worker --acks late --prefetch 4*C`:

    /usr/bin/python3 -m celery -A noop_app worker -P prefork -c C \
        -Q QUEUE -b URL --without-gossip --without-mingle --without-heartbeat

Only Debian's python3-celery is assumed (run it with /usr/bin/python3).
"""

from celery import Celery

app = Celery("noop_app")
app.conf.update(
    # The worker is given its broker with -b; this is only the fallback.
    broker_url="amqp://guest:guest@127.0.0.1:5672//",
    task_acks_late=True,
    worker_prefetch_multiplier=4,  # Celery's default, stated for the record
    task_ignore_result=True,
    result_backend=None,
    accept_content=["json"],
    task_serializer="json",
)


@app.task(name="renderfarm.noop", ignore_result=True)
def noop(*args, **kwargs):
    return None
