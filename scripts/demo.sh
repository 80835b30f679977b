#!/usr/bin/env bash
# demo.sh is `make demo`: the whole path on one machine. RabbitMQ, one
# renderfarm worker on local file storage, and a stock Python Celery app
# that enqueues testdata's photos and prints what was written to ./out;
# then the web tier takes one more render over HTTP and reports it.
#   DEMO_WEB=127.0.0.1:8080  where the web tier listens
#   DEMO_KEEP=1              keep the worker and web tier running (Ctrl-C ends)
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=bin/renderfarm
OUT=$PWD/out
rm -rf "$OUT" && mkdir -p "$OUT"

URL=$(bash scripts/rabbitmq.sh)
echo "demo: RabbitMQ at ${URL%%@*}@…" >&2

"$BIN" worker --broker "$URL" --queues renderfarm-demo --metrics-listen 127.0.0.1:0 \
  --hostname "renderfarm-demo@$(hostname)" \
  --file-root "$PWD/testdata:$OUT" --journal "file://$OUT/_jobs/" \
  --state-dir "$OUT/_state" --log-level warn &
WORKER=$!
WEB=
trap 'kill -TERM $WORKER $WEB 2>/dev/null; wait $WORKER $WEB 2>/dev/null || true' EXIT

# The Python app routes the task to the demo's queue, as an app's
# task_routes would; truncated.jpg shows what a bad upload looks like.
RENDERFARM_QUEUE=renderfarm-demo /usr/bin/python3 examples/python/render_photos.py "$URL" "$OUT" \
  testdata/photo.jpg testdata/photo-progressive.jpg testdata/photo.png testdata/photo.webp \
  testdata/cmyk.jpg testdata/adobergb.jpg testdata/orient-6.jpg testdata/alpha.png \
  testdata/animated.gif testdata/truncated.jpg

echo "demo: manifests in out/_jobs/; outputs in out/<photo>/" >&2

# The web tier: the same queue, storage guards and journal as the worker.
ADDR=${DEMO_WEB:-127.0.0.1:8080}
TOKEN=demo-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
"$BIN" web --listen "$ADDR" --broker "$URL" --queue renderfarm-demo --tokens "$TOKEN" \
  --file-root "$PWD/testdata:$OUT" --journal "file://$OUT/_jobs/" --log-level warn &
WEB=$!
for _ in $(seq 50); do curl -fsS "http://$ADDR/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
echo "demo: POST http://$ADDR/v1/renders" >&2
ACCEPTED=$(curl -fsS -X POST "http://$ADDR/v1/renders" -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" -H "Idempotency-Key: demo-1" \
  -d "{\"source\": \"file://$PWD/testdata/photo.jpg\", \"recipe\": \"gallery\", \"dest\": \"file://$OUT/web-photo/\"}")
echo "  $ACCEPTED" >&2
ID=$(sed -E 's/.*"id":"([^"]+)".*/\1/' <<<"$ACCEPTED")
for _ in $(seq 100); do
  STATUS=$(curl -fsS -H "Authorization: Bearer $TOKEN" "http://$ADDR/v1/renders/$ID")
  grep -q '"status":"pending"' <<<"$STATUS" || break
  sleep 0.2
done
echo "demo: GET /v1/renders/$ID" >&2
/usr/bin/python3 -c 'import json,sys; d=json.load(sys.stdin); print("  status:", d["status"]); [print("  %-40s %4dx%-4d %s" % (o["key"].split("/out/")[-1], o["width"], o["height"], o["format"])) for o in d.get("outputs", [])]' <<<"$STATUS" >&2
grep -q '"status":"succeeded"' <<<"$STATUS"
echo "demo: status page http://$ADDR/ (any user name, password $TOKEN)" >&2
if [[ ${DEMO_KEEP:-0} == 1 ]]; then
  echo "demo: serving until Ctrl-C" >&2
  wait $WEB
fi
