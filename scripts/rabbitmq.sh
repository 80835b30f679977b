#!/usr/bin/env bash
# rabbitmq.sh starts (or stops) the local RabbitMQ node that renderfarm's tests
# and demo use. It is idempotent: on a machine where the node already runs it
# only checks it and prints the URL, and a node whose app was left stopped (by
# `rabbitmqctl stop_app`, e.g. an interrupted outage test) is started again.
#
#   scripts/rabbitmq.sh          start if needed, wait, print the AMQP URL
#   scripts/rabbitmq.sh stop     stop the node
#
# Runs as root: Debian's wrappers switch to the rabbitmq user themselves
# (without a login shell, so the environment below reaches the node).
set -euo pipefail

cd "$(dirname "$0")/.."

: "${RABBITMQ_START_TIMEOUT:=90}" # seconds to wait for the node to boot

# Keep everything on loopback: AMQP, Erlang distribution (the node and the CLI
# tools) and epmd. guest/guest only works from localhost anyway.
export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
export RABBITMQ_NODE_PORT=5672
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"

URL="amqp://guest:guest@127.0.0.1:${RABBITMQ_NODE_PORT}/%2F"

log() { echo "rabbitmq: $*" >&2; }

# ctl runs rabbitmqctl with a hard timeout: a wedged node must not hang callers.
ctl() { timeout 60 rabbitmqctl "$@"; }

node_up() { ctl -q ping >/dev/null 2>&1; }

ensure_installed() {
  if ! command -v rabbitmq-server >/dev/null 2>&1; then
    log "rabbitmq-server missing, running scripts/setup.sh"
    bash scripts/setup.sh
  fi
}

start() {
  ensure_installed
  # One CLI call in the common case (already running): each boots an Erlang
  # VM, which takes seconds on a loaded machine.
  local state
  state="$(ctl -q eval 'rabbit:is_running().' 2>/dev/null)" || state=down
  case "$state" in
  true)
    echo "$URL"
    return 0
    ;;
  false)
    # The node is up but its app was stopped (stop_app): start_app is
    # synchronous, await_startup below confirms.
    log "node running with app stopped, starting app"
    ctl -q start_app
    ;;
  *)
    # An epmd left over from an earlier CLI call may listen on all
    # interfaces; with no node registered it is safe to replace with a
    # loopback one.
    local epmd
    epmd="$(command -v epmd || echo /usr/lib/erlang/bin/epmd)"
    if [[ -x "$epmd" ]] && "$epmd" -names 2>/dev/null | grep -q '^epmd: up' &&
      ! "$epmd" -names 2>/dev/null | grep -q '^name '; then
      "$epmd" -kill >/dev/null 2>&1 || true
    fi
    log "starting rabbitmq-server"
    rabbitmq-server -detached
    ;;
  esac
  # await_startup fails at once while the freshly detached node has not yet
  # registered with epmd, so retry it until the deadline.
  local deadline=$((SECONDS + RABBITMQ_START_TIMEOUT))
  until ctl -q await_startup --timeout "$RABBITMQ_START_TIMEOUT" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "node did not start within ${RABBITMQ_START_TIMEOUT}s; see /var/log/rabbitmq/"
      tail -n 20 /var/log/rabbitmq/*.log >&2 2>/dev/null || true
      exit 1
    fi
    sleep 1
  done
  echo "$URL"
}

stop() {
  if ! command -v rabbitmqctl >/dev/null 2>&1 || ! node_up; then
    log "not running"
    return 0
  fi
  log "stopping"
  # shutdown (unlike stop) waits for the Erlang VM to exit, so a start right
  # after this does not find the old node still going away.
  ctl -q shutdown >/dev/null
}

case "${1:-start}" in
start) start ;;
stop) stop ;;
url) echo "$URL" ;;
*)
  echo "usage: $0 [start|stop|url]" >&2
  exit 2
  ;;
esac
