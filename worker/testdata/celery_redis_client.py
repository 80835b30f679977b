"""A stock Celery 5.2 client whose result backend is Redis.

Run with Debian's interpreter:
    /usr/bin/python3 celery_redis_client.py BROKER_URL BACKEND_URL send TASK [ARGS_JSON [TIMEOUT]]

Prints one JSON object: the outcome as the caller sees it (as celery_client.py
does), plus what the backend's own reader makes of the stored state. The
client waits the way every redis-backend client does: it SUBSCRIBEs to
celery-task-meta-<id> when sending, reads the key once, then waits for a
PUBLISH; a worker that only SETs the key leaves it waiting forever.
"""
import json
import sys
import time

from celery import Celery

from celery_client import outcome  # the same view of a result as the rpc tests


def make_app(broker, backend):
    app = Celery("client", broker=broker, backend=backend)
    app.conf.broker_connection_retry_on_startup = False
    return app


def cmd_send(app, name, args="[]", timeout="30"):
    start = time.monotonic()
    res = app.send_task(name, args=json.loads(args))
    out = outcome(res, float(timeout))
    out["id"] = res.id
    out["elapsed"] = time.monotonic() - start
    # The backend's own view of the stored meta (a fresh read, not the
    # cache filled by get()).
    meta = app.backend._get_task_meta_for(res.id)
    out["backend"] = type(app.backend).__name__
    out["meta_status"] = meta.get("status")
    out["meta_task_id"] = meta.get("task_id")
    out["date_done"] = res.date_done.isoformat() if res.date_done else None
    out["has_traceback"] = bool(res.traceback)
    return out


COMMANDS = {"send": cmd_send}


def main():
    broker, backend, command, *args = sys.argv[1:]
    app = make_app(broker, backend)
    print(json.dumps(COMMANDS[command](app, *args), default=repr))


if __name__ == "__main__":
    main()
