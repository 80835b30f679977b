# shellcheck shell=bash
# lib.sh is what the benchmark scripts share; each sources it after setting
# BENCH_NAME (the prefix of its log lines), and sets VHOST once it made one.

log() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}
ctl() { timeout 60 rabbitmqctl -q "$@"; }

VHOST=""
BG="" # the driver running now, for cleanup

# run OUT CMD...: CMD with its stdout in OUT, in the background so that a
# signal to the script is handled at once rather than after the command.
run() {
  local out=$1 rc=0
  shift
  "$@" >"$out" &
  BG=$!
  wait "$BG" || rc=$?
  BG=""
  return "$rc"
}

# stop_pid PID: SIGTERM, up to 5 s, then SIGKILL.
stop_pid() {
  local i
  kill -TERM "$1" 2>/dev/null || return 0
  for ((i = 0; i < 50; i++)); do
    kill -0 "$1" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL "$1" 2>/dev/null || true
}

# drop_vhost deletes the run's vhost, if it made one.
drop_vhost() {
  [[ -n $VHOST ]] || return 0
  ctl delete_vhost "$VHOST" >/dev/null 2>&1 || log "warning: could not delete vhost $VHOST"
}
