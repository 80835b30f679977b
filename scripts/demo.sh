#!/usr/bin/env bash
# demo.sh is `make demo`: the whole path on one machine. RabbitMQ, one
# renderfarm worker on local file storage, and a stock Python Celery app
# that enqueues testdata's photos and prints what was written to ./out.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=bin/renderfarm
OUT=$PWD/out
rm -rf "$OUT" && mkdir -p "$OUT"

URL=$(bash scripts/rabbitmq.sh)
echo "demo: RabbitMQ at ${URL%%@*}@…" >&2

"$BIN" worker --broker "$URL" --queues renderfarm-demo \
  --hostname "renderfarm-demo@$(hostname)" \
  --file-root "$PWD/testdata:$OUT" --journal "file://$OUT/_jobs/" \
  --state-dir "$OUT/_state" --log-level warn &
WORKER=$!
trap 'kill -TERM $WORKER 2>/dev/null; wait $WORKER 2>/dev/null || true' EXIT

# The Python app routes the task to the demo's queue, as an app's
# task_routes would; truncated.jpg shows what a bad upload looks like.
RENDERFARM_QUEUE=renderfarm-demo /usr/bin/python3 examples/python/render_photos.py "$URL" "$OUT" \
  testdata/photo.jpg testdata/photo-progressive.jpg testdata/photo.png testdata/photo.webp \
  testdata/cmyk.jpg testdata/adobergb.jpg testdata/orient-6.jpg testdata/alpha.png \
  testdata/animated.gif testdata/truncated.jpg

echo "demo: manifests in out/_jobs/; outputs in out/<photo>/" >&2
