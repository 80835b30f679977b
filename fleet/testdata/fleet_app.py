"""A stock Celery 5.2 app for the fleet tests: a worker of it is the Python
peer that renderfarm's remote-control client and heartbeat listener must
read as they read our own worker.

    /usr/bin/python3 -m celery -A fleet_app worker -b URL -n NAME -E
"""
import time

from celery import Celery

app = Celery("fleet_app")
app.conf.update(
    broker_url="amqp://guest:guest@127.0.0.1:5672//",
    task_ignore_result=True,
    result_backend=None,
    accept_content=["json"],
    task_serializer="json",
)


@app.task(name="fleet.sleep", ignore_result=True)
def sleep(seconds=0.0):
    time.sleep(float(seconds))
