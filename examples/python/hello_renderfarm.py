"""Send work to renderfarm workers from a stock Celery app.

Start a worker with the test tasks, then run this with Debian's Python:

    bin/renderfarm worker --test-tasks &
    /usr/bin/python3 examples/python/hello_renderfarm.py [BROKER_URL]

Nothing here knows the worker is written in Go: it is plain Celery 5.
"""
import os
import sys

from celery import Celery, chain, signature
from celery.exceptions import TimeoutError

broker = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "RENDERFARM_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")

# The same settings a Python worker's app would use: JSON, the default
# "celery" queue, results over rpc://.
app = Celery("hello", broker=broker, backend="rpc://")
app.conf.task_serializer = "json"
app.conf.accept_content = ["json"]

# Which workers are up?
replies = app.control.inspect(timeout=2).ping() or {}
print("workers:", ", ".join(sorted(replies)) or "none")

# A value.
result = app.send_task("renderfarm.test.add", args=[2, 3])
print("add(2, 3) =", result.get(timeout=10))

# A failure arrives as the exception it is.
try:
    app.send_task("renderfarm.test.fail", args=["that went wrong"]).get(timeout=10)
except ValueError as exc:
    print("fail raised ValueError:", exc)

# Canvas works too: (1 + 2) + 3, computed by three tasks.
total = chain(signature("renderfarm.test.add", args=(1, 2), app=app),
              signature("renderfarm.test.add", args=(3,), app=app)).apply_async()
print("chain =", total.get(timeout=10))

# A task with a countdown waits in RabbitMQ, not in the worker.
try:
    later = app.send_task("renderfarm.test.add", args=[20, 22], countdown=3)
    print("after a 3 s countdown:", later.get(timeout=15))
except TimeoutError:
    print("countdown task did not finish in time")
    sys.exit(1)
