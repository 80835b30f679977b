"""A stock Celery 5.2 client for renderfarm's worker integration tests.

Run with Debian's interpreter: /usr/bin/python3 celery_client.py BROKER_URL COMMAND ARGS...
Every command prints one JSON object on stdout. Nothing here knows the
worker is not Python: that is the point.
"""
import json
import sys
import time
import threading
from datetime import datetime, timedelta, timezone

from celery import Celery, chain, signature
from celery.events.state import State


def make_app(broker, protocol=2):
    app = Celery("client", broker=broker, backend="rpc://")
    app.conf.task_protocol = protocol
    app.conf.broker_connection_retry_on_startup = False
    return app


def outcome(res, timeout):
    """Wait for a result and describe it as the caller sees it."""
    try:
        value = res.get(timeout=timeout)
        return {"state": res.state, "result": value}
    except Exception as exc:  # the task's own exception, re-raised by Celery
        return {
            "state": res.state,
            "exc_type": type(exc).__name__,
            "exc_module": type(exc).__module__,
            "exc_message": str(exc),
            "exc_args": [repr(a) for a in exc.args],
        }


def cmd_send(app, name, args="[]", kwargs="{}", options="{}", timeout="30"):
    opts = json.loads(options)
    if "eta_in" in opts:  # seconds from now, as a datetime
        opts["eta"] = datetime.now(timezone.utc) + timedelta(seconds=opts.pop("eta_in"))
    if "expires_in" in opts:
        opts["expires"] = datetime.now(timezone.utc) + timedelta(seconds=opts.pop("expires_in"))
    start = time.monotonic()
    res = app.send_task(name, args=json.loads(args), kwargs=json.loads(kwargs), **opts)
    out = outcome(res, float(timeout))
    out["id"] = res.id
    out["elapsed"] = time.monotonic() - start
    return out


def cmd_link(app, timeout="30"):
    # freeze() gives the callback its id and this client's reply queue, as
    # a Python app does when it wants the callback's result too.
    callback = signature("renderfarm.test.add", args=(10,), app=app)
    frozen = callback.freeze()
    res = app.send_task("renderfarm.test.add", args=[2, 3], link=callback)
    first = outcome(res, float(timeout))
    second = outcome(app.AsyncResult(frozen.id), float(timeout))
    return {"first": first, "callback": second}


def cmd_chain(app, timeout="30"):
    c = chain(
        signature("renderfarm.test.add", args=(1, 2), app=app),
        signature("renderfarm.test.add", args=(3,), app=app),
        signature("renderfarm.test.add", args=(4,), app=app),
    )
    res = c.apply_async()
    return outcome(res, float(timeout))


def cmd_revoke_running(app, timeout="30"):
    res = app.send_task("renderfarm.test.sleep", args=[30])
    insp = app.control.inspect(timeout=1)
    for _ in range(50):  # wait until it runs
        active = insp.active() or {}
        if any(t["id"] == res.id for ts in active.values() for t in ts):
            break
        time.sleep(0.2)
    app.control.revoke(res.id, terminate=True)
    out = outcome(res, float(timeout))
    out["id"] = res.id
    return out


def cmd_revoke_waiting(app, timeout="30"):
    res = app.send_task("renderfarm.test.add", args=[1, 1], countdown=4)
    time.sleep(0.5)
    app.control.revoke(res.id)
    out = outcome(res, float(timeout))
    out["id"] = res.id
    return out


def cmd_inspect(app, method, timeout="5"):
    insp = app.control.inspect(timeout=float(timeout))
    return {"reply": getattr(insp, method)()}


def cmd_control(app, method, destination, timeout="5"):
    reply = app.control.broadcast(method, destination=[destination], reply=True, timeout=float(timeout))
    return {"reply": reply}


def cmd_shutdown(app, destination):
    app.control.shutdown(destination=[destination])
    return {"sent": True}


def cmd_events(app, seconds="6"):
    """Capture events the way `celery events` does and report the State."""
    state = State()
    seen = []

    def on_event(event):
        seen.append(event["type"])
        state.event(event)

    def run():
        with app.connection() as conn:
            recv = app.events.Receiver(conn, handlers={"*": on_event})
            try:
                recv.capture(limit=None, timeout=float(seconds), wakeup=True)
            except Exception:
                pass

    t = threading.Thread(target=run, daemon=True)
    t.start()
    time.sleep(1.0)
    r = app.send_task("renderfarm.test.add", args=[20, 22])
    r.get(timeout=10)
    t.join(float(seconds) + 2)
    workers = {
        name: {"alive": w.alive, "active": w.active, "processed": w.processed, "sw_ident": w.sw_ident, "freq": w.freq}
        for name, w in state.workers.items()
    }
    task = state.tasks.get(r.id)
    return {
        "workers": workers,
        "event_types": sorted(set(seen)),
        "task": {"state": task.state, "name": task.name, "result": task.result} if task else None,
    }


COMMANDS = {
    "send": cmd_send, "link": cmd_link, "chain": cmd_chain,
    "revoke_running": cmd_revoke_running, "revoke_waiting": cmd_revoke_waiting,
    "inspect": cmd_inspect, "control": cmd_control, "shutdown": cmd_shutdown, "events": cmd_events,
}


def main():
    broker, command, *args = sys.argv[1:]
    protocol = 2
    if command.startswith("v1:"):
        protocol, command = 1, command[3:]
    app = make_app(broker, protocol)
    print(json.dumps(COMMANDS[command](app, *args), default=repr))


if __name__ == "__main__":
    main()
