"""The end-to-end peer in `make bench-e2e`: a Celery 5.2 + Pillow + boto3
worker implementing the `renderfarm.render` task contract
(docs/task-contract.md) for what the benchmark sends, the way a Python team
would write it.

    cd tools/bench && PEER_BROKER=amqp://... AWS_ENDPOINT_URL_S3=http://... \
        /usr/bin/python3 -m celery -A celery_peer worker -c N -Q QUEUE \
        --without-gossip --without-mingle --without-heartbeat --loglevel=WARNING

What it implements: `source` s3://bucket/key; either `outputs` (key
s3://bucket/key, width, height, format jpeg|webp, quality, effort; fit
inside) or `recipe` + `dest` with the recipes in render/recipes.yaml that use
fit inside (`gallery`); `cache_control`, `content_disposition` and `metadata`
on every output. It reads the source from S3, renders with
tools/bench/pillow_peer.render_image (draft(), decode once, cascade),
uploads each variant, and returns the contract's result shape: source,
outputs (key, width, height, format, bytes, sha256, etag), timings_ms,
attempts. Acks late with a prefetch of one per process, as a render-heavy
Celery app should; results go to the rpc:// backend.
"""

import hashlib
import io
import os
import time

import boto3
from botocore.config import Config
from celery import Celery
from PIL import Image

from pillow_peer import EXT, recipe_variants, render_image

RECIPES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../render/recipes.yaml")

app = Celery("celery_peer", broker=os.environ.get("PEER_BROKER", "amqp://guest:guest@127.0.0.1:5672//"),
             backend="rpc://")
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
)

_s3 = None


def s3():
    """One client per worker process, made after the fork."""
    global _s3
    if _s3 is None:
        # boto3 1.26 does not read AWS_ENDPOINT_URL_S3 itself.
        _s3 = boto3.session.Session().client(
            "s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL_S3"),
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 5, "mode": "standard"}))
    return _s3


def split_s3(url):
    if not url.startswith("s3://") or "/" not in url[5:]:
        raise ValueError("want s3://bucket/key, got %r" % url)
    return url[5:].split("/", 1)


CONTENT_TYPE = {"jpeg": "image/jpeg", "webp": "image/webp"}


@app.task(name="renderfarm.render", bind=True)
def render(self, source, outputs=None, recipe=None, dest=None, cache_control=None,
           content_disposition=None, metadata=None):
    t0 = time.perf_counter()
    bucket, key = split_s3(source)
    data = s3().get_object(Bucket=bucket, Key=key)["Body"].read()
    t1 = time.perf_counter()
    if recipe:
        variants = [dict(v, key=dest + v["key"] + "." + EXT[v.get("format", "jpeg")])
                    for v in recipe_variants(RECIPES, recipe)]
    else:
        variants = outputs
    src = io.BytesIO(data)
    with Image.open(src) as im:
        info = {"width": im.width, "height": im.height, "format": im.format.lower(), "bytes": len(data)}
    src.seek(0)
    rendered = render_image(src, variants)
    t2 = time.perf_counter()
    extra = {}
    if cache_control:
        extra["CacheControl"] = cache_control
    if content_disposition:
        extra["ContentDisposition"] = content_disposition
    if metadata:
        extra["Metadata"] = metadata
    outs = []
    for v, w, h, body in rendered:
        fmt = v.get("format", "jpeg")
        ob, ok = split_s3(v["key"])
        r = s3().put_object(Bucket=ob, Key=ok, Body=body, ContentType=CONTENT_TYPE[fmt], **extra)
        outs.append({"key": v["key"], "width": w, "height": h, "format": fmt, "bytes": len(body),
                     "sha256": hashlib.sha256(body).hexdigest(), "etag": r["ETag"]})
    t3 = time.perf_counter()
    ms = lambda a, b: round((b - a) * 1000, 1)
    return {"source": info, "outputs": outs,
            "timings_ms": {"fetch": ms(t0, t1), "render": ms(t1, t2), "upload": ms(t2, t3), "total": ms(t0, t3)},
            "attempts": self.request.retries + 1}
