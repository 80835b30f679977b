"""Render photos with renderfarm from a stock Celery app.

    /usr/bin/python3 examples/python/render_photos.py BROKER_URL DEST_DIR PHOTO...

Each photo is sent as one renderfarm.render task with the built-in
"default" recipe; outputs go under DEST_DIR/<photo-name-ext>/. The results are
printed as a table. `make demo` runs this against a local worker.
"""
import os
import sys
import time

from celery import Celery

broker, dest, *photos = sys.argv[1:]
app = Celery("render_photos", broker=broker, backend="rpc://")
# Route renders to the queue the workers consume (default: "celery").
queue = os.environ.get("RENDERFARM_QUEUE", "celery")
app.conf.task_routes = {"renderfarm.render": {"queue": queue}}

started = time.monotonic()
pending = []
for path in photos:
    name = os.path.basename(path).replace(".", "-")  # photo.jpg and photo.png apart
    request = {
        "source": "file://" + os.path.abspath(path),
        "recipe": "default",
        "dest": "file://" + os.path.abspath(os.path.join(dest, name)) + "/",
        "cache_control": "public, max-age=31536000, immutable",
    }
    pending.append((path, app.send_task("renderfarm.render", kwargs=request)))

failed = 0
print(f"{'SOURCE':34} {'OUTPUT':44} {'SIZE':>9} {'BYTES':>7} {'MS':>7}")
for path, result in pending:
    try:
        r = result.get(timeout=120)
    except Exception as exc:  # the task's own error, e.g. RenderError
        failed += 1
        print(f"{path:34} FAILED {type(exc).__name__}: {exc}")
        continue
    for o in r["outputs"]:
        key = os.path.relpath(o["key"][len("file://"):])
        print(f"{path:34} {key:44} {o['width']:>4}x{o['height']:<4} {o['bytes']:>7} {r['timings_ms']['total']:>7.1f}")
print(f"{len(photos)} sources, {failed} failed, {time.monotonic() - started:.1f}s")
