#!/usr/bin/env bash
# redis.sh starts (or stops) a throwaway redis-server for renderfarm's tests:
# loopback only, no persistence, daemonized, its pidfile, log and working
# directory under /tmp. The default port, 6399, keeps it clear of a system
# redis on 6379. Idempotent: when it already answers, start only prints the URL.
#
#   scripts/redis.sh [start] [PORT]   start if needed, wait, print redis://127.0.0.1:PORT/0
#   scripts/redis.sh stop [PORT]      stop it (without saving) and remove its directory
#   scripts/redis.sh url [PORT]       print the URL
#
# PORT may also come from RENDERFARM_REDIS_PORT.
set -euo pipefail

cd "$(dirname "$0")/.."

PORT="${2:-${RENDERFARM_REDIS_PORT:-6399}}"
if ! [[ "$PORT" =~ ^[0-9]+$ ]]; then
  echo "redis: bad port $PORT" >&2
  exit 2
fi
: "${REDIS_START_TIMEOUT:=20}" # seconds to wait for the server to answer
# Tests claim a database each (internal/testenv), so have plenty.
: "${REDIS_DATABASES:=256}"

DIR="/tmp/renderfarm-redis-$PORT"
PIDFILE="$DIR/redis.pid"
URL="redis://127.0.0.1:$PORT/0"

log() { echo "redis: $*" >&2; }

cli() { timeout 10 redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

up() { [[ "$(cli ping 2>/dev/null)" == PONG ]]; }

ensure_installed() {
  if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
    log "redis-server missing, running scripts/setup.sh"
    bash scripts/setup.sh
  fi
}

start() {
  ensure_installed
  if up; then
    echo "$URL"
    return 0
  fi
  mkdir -p "$DIR"
  log "starting redis-server on 127.0.0.1:$PORT"
  # --save "" and --appendonly no: nothing is ever written to disk but the
  # log; protected mode stays on, which is moot on loopback.
  redis-server \
    --bind 127.0.0.1 --port "$PORT" --unixsocket "" \
    --daemonize yes --pidfile "$PIDFILE" --dir "$DIR" --logfile "$DIR/redis.log" \
    --save "" --appendonly no --databases "$REDIS_DATABASES"
  local deadline=$((SECONDS + REDIS_START_TIMEOUT))
  until up; do
    if ((SECONDS >= deadline)); then
      log "redis-server did not answer within ${REDIS_START_TIMEOUT}s; see $DIR/redis.log"
      tail -n 20 "$DIR/redis.log" >&2 2>/dev/null || true
      exit 1
    fi
    sleep 0.1
  done
  echo "$URL"
}

stop() {
  if up; then
    log "stopping redis-server on port $PORT"
    cli shutdown nosave >/dev/null 2>&1 || true
  fi
  # Wait for the process (from our pidfile) to be gone, then tidy up.
  if [[ -f "$PIDFILE" ]]; then
    local pid
    pid="$(cat "$PIDFILE")"
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == redis-server* ]]; then
      kill "$pid"
    fi
  fi
  rm -rf "$DIR"
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
url) echo "$URL" ;;
*)
  echo "usage: $0 [start|stop|url] [PORT]" >&2
  exit 2
  ;;
esac
