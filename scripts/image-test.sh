#!/usr/bin/env bash
# image-test.sh IMAGE [VERSION] tests a built renderfarm image on this
# machine, running its own binary with `buildah run --isolation chroot`
# (which shares the host's network; podman/crun cannot start containers here):
#   1. the image's settings: non-root user, MALLOC_ARENA_MAX, health check,
#      entrypoint;
#   2. `renderfarm --version` (the version stamped in) and `renderfarm tune`;
#   3. the web tier and a worker, both from the image, on a fresh vhost of
#      the host's RabbitMQ: a render POSTed to the web tier is rendered by
#      the worker into a host directory, and the image's health check sees
#      the web tier up (and fails on a port where nothing listens).
# Run by scripts/image.sh (`make image`) after the build.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${1:?usage: image-test.sh IMAGE [VERSION]}
VERSION=${2:-}
export BUILDAH_ISOLATION=chroot
UID_IN_IMAGE=10001

log() { echo "image-test: $*" >&2; }
fail() {
  echo "image-test: FAIL: $*" >&2
  exit 1
}

TMP=$(mktemp -d /tmp/renderfarm-image-test.XXXXXX)
VHOST=renderfarm-image-test-$$
CTRS=()
PIDS=()
cleanup() {
  set +e # every step, whatever the one before did
  local p
  for p in "$TMP"/*.pid; do [[ -s $p ]] && kill -TERM "$(cat "$p")" 2>/dev/null; done
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in "${CTRS[@]}"; do buildah rm "$p" >/dev/null 2>&1 || true; done
  timeout 60 rabbitmqctl -q delete_vhost "$VHOST" >/dev/null 2>&1 || true
  rm -rf "$TMP"
}
trap cleanup EXIT

# new_ctr VAR ROLE makes a working container of the image and names it in
# VAR (not through $(...): CTRS must be added to in this shell, for cleanup).
new_ctr() {
  local name=renderfarm-image-test-$2-$$
  CTRS+=("$name")
  buildah from --pull=never --name "$name" "$IMAGE" >/dev/null
  printf -v "$1" %s "$name"
}
# inside CTR CMD...: run CMD in the container as the image's user, with the
# test's directory at /data.
inside() {
  local c=$1
  shift
  buildah run --isolation chroot -v "$TMP:/data" "$c" -- "$@"
}
# start CTR NAME CMD...: run CMD in the background, its output in
# $TMP/NAME.log and its PID in $TMP/NAME.pid. buildah run does not pass
# SIGTERM on (it kills its child), and chroot isolation has no PID
# namespace, so the process's own PID is the one to signal.
start() {
  local c=$1 name=$2
  shift 2
  # shellcheck disable=SC2016 # expanded by the container's sh
  buildah run --isolation chroot -v "$TMP:/data" "$c" -- \
    sh -c 'echo $$ >"/data/$0.pid" && exec "$@"' "$name" "$@" >"$TMP/$name.log" 2>&1 &
  PIDS+=($!)
}

# 1. What the Dockerfile promises about the image itself.
cfg() { buildah inspect --type image --format "$1" "$IMAGE"; }
[[ $(cfg '{{.Docker.Config.User}}') == "$UID_IN_IMAGE:$UID_IN_IMAGE" ]] || fail "image user is '$(cfg '{{.Docker.Config.User}}')'"
[[ $(cfg '{{.Docker.Config.Entrypoint}}') == "[/usr/local/bin/renderfarm]" ]] || fail "entrypoint is $(cfg '{{.Docker.Config.Entrypoint}}')"
cfg '{{.Docker.Config.Healthcheck}}' | grep -q renderfarm-healthcheck || fail "no HEALTHCHECK in the image (built without --format docker?)"
cfg '{{.Docker.Config.Env}}' | grep -q 'MALLOC_ARENA_MAX=2' || fail "MALLOC_ARENA_MAX=2 not set"

new_ctr C cli
[[ $(inside "$C" id -u) == "$UID_IN_IMAGE" ]] || fail "commands do not run as uid $UID_IN_IMAGE"
# The worker's default --state-dir (and file:// journal) must be its own.
inside "$C" sh -c 'touch /var/lib/renderfarm/.w && rm /var/lib/renderfarm/.w' ||
  fail "/var/lib/renderfarm is not writable by the image's user"
inside "$C" sh -c 'command -v curl wget go gcc' 2>/dev/null && fail "build tools or curl/wget are in the runtime image"

# 2. The binary: its version, and what tune makes of this host.
out=$(inside "$C" renderfarm --version)
log "--version: $out"
[[ -z $VERSION || $out == *"$VERSION"* ]] || fail "--version says '$out', want $VERSION"
out=$(inside "$C" renderfarm tune)
printf '    %s\n' "${out//$'\n'/$'\n    '}" >&2
grep -q '^memory budget' <<<"$out" || fail "tune printed no memory budget"

# 3. Web tier and worker from the image, the broker on the host. The host's
# node is shared with the Go tests: hold internal/testenv's node lock
# shared, as each of them does, so that a test stopping the broker (which
# holds it exclusively) does not do so in the middle of this one.
exec 8>>/tmp/renderfarm-testenv-rabbitmq.lock
flock -s 8
URL=$(bash scripts/rabbitmq.sh)
URL=${URL%/*}/$VHOST
timeout 60 rabbitmqctl -q add_vhost "$VHOST" >/dev/null
timeout 60 rabbitmqctl -q set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null
mkdir -p "$TMP/in" "$TMP/out" "$TMP/jobs" "$TMP/state"
cp testdata/photo.jpg "$TMP/in/"
chown -R "$UID_IN_IMAGE:$UID_IN_IMAGE" "$TMP"

QUEUE=renderfarm-image
PORT=$((20000 + $$ % 10000))
TOKEN=image-test-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
COMMON=(--broker "$URL" --file-root /data --journal file:///data/jobs/ --log-level info)

new_ctr W worker
MPORT=$((PORT + 2))
start "$W" worker renderfarm worker "${COMMON[@]}" --queues "$QUEUE" --hostname "image-test@$$" \
  --state-dir /data/state --metrics-listen "127.0.0.1:$MPORT"
new_ctr WEB web
start "$WEB" web renderfarm web "${COMMON[@]}" --queue "$QUEUE" --listen "127.0.0.1:$PORT" \
  --tokens "$TOKEN"

# The health check as Docker would run it, inside the image, given the
# web tier's command line.
healthy=
for _ in $(seq 60); do
  if inside "$WEB" renderfarm-healthcheck web --listen "127.0.0.1:$PORT" 2>/dev/null; then
    healthy=1
    break
  fi
  sleep 0.5
done
[[ -n $healthy ]] || {
  cat "$TMP/web.log" >&2
  fail "health check never passed for the web tier"
}
log "health check: web tier on 127.0.0.1:$PORT healthy"
if inside "$WEB" renderfarm-healthcheck web --listen "127.0.0.1:$((PORT + 1))" 2>/dev/null; then
  fail "health check passed where nothing listens"
fi
for _ in $(seq 60); do
  curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.5
done

accepted=$(curl -fsS -X POST "http://127.0.0.1:$PORT/v1/renders" -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" \
  -d '{"source": "file:///data/in/photo.jpg", "recipe": "default", "dest": "file:///data/out/"}') ||
  fail "POST /v1/renders refused: $(tail -5 "$TMP/web.log")"
id=$(sed -E 's/.*"id":"([^"]+)".*/\1/' <<<"$accepted")
log "web tier accepted render $id"
status=
for _ in $(seq 120); do
  status=$(curl -fsS -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/v1/renders/$id")
  grep -q '"status":"pending"' <<<"$status" || break
  sleep 0.5
done
grep -q '"status":"succeeded"' <<<"$status" || {
  tail -20 "$TMP/worker.log" >&2
  fail "render $id did not succeed: $status"
}
for f in thumb.jpg medium.jpg large.jpg; do
  [[ -s $TMP/out/$f ]] || fail "no $f written by the worker"
  [[ $(stat -c %u "$TMP/out/$f") == "$UID_IN_IMAGE" ]] || fail "$f not owned by the image's user"
done
ls "$TMP"/jobs/*/*/*/"$id".json >/dev/null || fail "no manifest for $id"
log "worker in the image rendered $id: $(find "$TMP/out" -type f -printf '%f ')"
# The worker's health check, on its --metrics-listen /healthz.
inside "$W" renderfarm-healthcheck worker --metrics-listen "127.0.0.1:$MPORT" 2>/dev/null ||
  fail "health check failed for the worker on 127.0.0.1:$MPORT"
log "health check: worker on 127.0.0.1:$MPORT healthy"

# A warm shutdown, as `docker stop` or systemd would ask for one.
kill -TERM "$(cat "$TMP/worker.pid")"
for _ in $(seq 60); do
  kill -0 "${PIDS[0]}" 2>/dev/null || break
  sleep 0.5
done
if kill -0 "${PIDS[0]}" 2>/dev/null; then fail "the worker did not stop on SIGTERM"; fi
if ! grep -q 'warm shutdown' "$TMP/worker.log" || ! grep -q 'worker stopped' "$TMP/worker.log"; then
  tail -5 "$TMP/worker.log" >&2
  fail "no warm shutdown in the worker's log"
fi
log "worker stopped on SIGTERM (warm shutdown)"
log "ok: $IMAGE"
