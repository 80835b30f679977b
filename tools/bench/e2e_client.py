"""The client side of `make bench-e2e`'s worker passes: a real Celery 5.2
client that feeds one worker, renderfarm's or the Celery peer
(tools/bench/celery_peer.py), the same renderfarm.render tasks and collects
the results the way test-rigs.md says is fair to both.

    /usr/bin/python3 tools/bench/e2e_client.py --broker URL --queue Q --keys FILE \
        --src BUCKET --dest s3://bucket/prefix/ --variants JSON [--log FILE] \
        [--s3-pid PID] [--timeout S] -- WORKER ARGS...

It declares Q (a durable direct exchange and queue named Q, as Celery and
renderfarm declare it), starts the worker in its own process group, waits
until the worker consumes from Q, then, on the clock, sends one task per
source key (kwargs: source s3://BUCKET/KEY and outputs, each variant's key
DEST<n>/<variant key>.<ext>) and waits for every result with
ResultSet.join() (rpc:// backend). Each result must have the contract's
shape (source; outputs with key, width, height, format, bytes, sha256,
etag; timings_ms; attempts) and the variants asked for. Off the clock it
sends SIGTERM to the worker's group and waits. Prints one JSON line:
seconds (first send to last result), subscribe_s (worker start to its
consumer on Q), worker_cpu_s (the worker and its reaped children, whole
life), s3_cpu_s (the S3 server's CPU while on the clock), bytes (outputs),
and the results' own timings summed.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from celery import Celery
from celery.result import ResultSet
from kombu import Exchange, Queue

EXT = {"jpeg": "jpg", "webp": "webp"}


def proc_cpu(pid):
    """User + system seconds of a running process, from /proc."""
    if not pid:
        return 0.0
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def check(result, want_keys):
    for field in ("source", "outputs", "timings_ms", "attempts"):
        if field not in result:
            raise ValueError("result has no %s: %r" % (field, result))
    got = sorted(o["key"] for o in result["outputs"])
    if got != sorted(want_keys):
        raise ValueError("outputs %r, want %r" % (got, sorted(want_keys)))
    for o in result["outputs"]:
        if not (o["width"] > 0 and o["height"] > 0 and o["bytes"] > 0 and len(o["sha256"]) == 64 and o["etag"]):
            raise ValueError("output %r is incomplete" % o)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--broker", required=True)
    ap.add_argument("--queue", required=True)
    ap.add_argument("--keys", required=True)
    ap.add_argument("--src", required=True)
    ap.add_argument("--dest", required=True)
    ap.add_argument("--variants", required=True, help="JSON list of variants; each key becomes DEST<n>/KEY.EXT")
    ap.add_argument("--log", default=os.devnull)
    ap.add_argument("--s3-pid", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("cmd", nargs="+")
    a = ap.parse_args()
    keys = open(a.keys).read().split()
    variants = json.loads(a.variants)

    app = Celery("bench_e2e_client", broker=a.broker, backend="rpc://")
    app.conf.update(task_serializer="json", result_serializer="json", accept_content=["json"])
    q = Queue(a.queue, Exchange(a.queue, "direct", durable=True), a.queue, durable=True)
    with app.connection_for_write() as conn:
        ch = conn.default_channel
        q.bind(ch).declare()
        log = open(a.log, "wb")
        t_start = time.monotonic()
        worker = subprocess.Popen(a.cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            while True:
                if worker.poll() is not None:
                    sys.exit("e2e_client: worker exited before consuming (see %s)" % a.log)
                _, ready, consumers = ch.queue_declare(a.queue, passive=True)
                if consumers > 0:
                    break
                if time.monotonic() - t_start > 120:
                    sys.exit("e2e_client: worker did not consume from %s within 120 s" % a.queue)
                time.sleep(0.05)
            subscribe_s = time.monotonic() - t_start

            s3_cpu0 = proc_cpu(a.s3_pid)
            t0 = time.monotonic()
            results, want = [], []
            for n, k in enumerate(keys):
                outs = [dict(v, key="%s%d/%s.%s" % (a.dest, n, v["key"], EXT[v.get("format", "jpeg")]))
                        for v in variants]
                want.append([o["key"] for o in outs])
                results.append(app.send_task("renderfarm.render", kwargs={
                    "source": "s3://%s/%s" % (a.src, k), "outputs": outs}, queue=q))
            values = ResultSet(results).join(timeout=a.timeout, propagate=True)
            seconds = time.monotonic() - t0
            s3_cpu = proc_cpu(a.s3_pid) - s3_cpu0
        finally:
            if worker.poll() is None:
                os.killpg(worker.pid, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while True:
            pid, status, ru = os.wait4(worker.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.killpg(worker.pid, signal.SIGKILL)
            time.sleep(0.05)
        try:  # whatever of the group the worker left behind
            os.killpg(worker.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        worker.returncode = status
    for v, w in zip(values, want):
        check(v, w)
    sums = {k: round(sum(v["timings_ms"][k] for v in values) / 1000, 3) for k in ("fetch", "render", "upload", "total")}
    print(json.dumps({"n": len(values), "seconds": round(seconds, 3), "subscribe_s": round(subscribe_s, 3),
                      "worker_cpu_s": round(ru.ru_utime + ru.ru_stime, 2), "s3_cpu_s": round(s3_cpu, 2),
                      "bytes": sum(o["bytes"] for v in values for o in v["outputs"]),
                      "task_s": sums, "exit": status}))


if __name__ == "__main__":
    main()
