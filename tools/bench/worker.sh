#!/usr/bin/env bash
# bench-worker.sh is `make bench-worker`: no-op task throughput of renderfarm's
# Go worker against a stock Celery 5.2 worker (prefork), in one run on the
# same RabbitMQ, plus the Go side's publish throughput with confirms.
#
# Usage: tools/bench/worker.sh        (or `make bench-worker`)
#   BENCH_ROUNDS=N        rounds; the table quotes medians over them (default 5)
#   BENCH_QUICK=1         smoke run: 1 round of 3000 tasks
#   BENCH_TASKS=N         tasks per pass (default 20000; quick 3000)
#   BENCH_CONCURRENCY=C   worker concurrency, both workers (default: nproc)
#   BENCH_PUBLISHERS=P    concurrent publishers of the Go publisher (default 8)
#   BENCH_STALL_TIMEOUT=S a pass fails when its queue does not shrink for S
#                         seconds (default 90)
#   BENCH_RENDERFARM=PATH time this renderfarm binary instead of building
#                         bin/renderfarm
#   BENCH_BARE=0          skip the bare-consumer reference pass
#
# Every round, in this order (the workers alternate who goes first):
#   publish  N renderfarm.noop messages (Celery protocol 2, ignore_result, no
#            reply_to, persistent) from Go (tools/bench/pub, through the
#            repo's broker and broker/celery packages) into a durable queue
#            with no consumer, P publishers each waiting for its confirm;
#            encoding is timed too. The queue is purged afterwards.
#   go       N messages are queued, then `bin/renderfarm worker --concurrency C
#            --acks late --prefetch 4C --events=false` starts, timed from its
#            start until the queue is empty.
#   python   the same with `celery -A noop_app worker -P prefork -c C` of
#            Debian's python3-celery (tools/bench/noop_app.py: acks_late,
#            worker_prefetch_multiplier 4, so the same prefetch of 4C, events
#            off, --without-gossip --without-mingle --without-heartbeat).
#   bare     the same with `benchpub -mode consume`: a bare amqp091-go
#            consumer, prefetch 4C, one ack per delivery and nothing else. No
#            worker that acks each task can beat it on this machine and
#            broker, so it shows how much of the gap to the target is the
#            worker's (BENCH_BARE=0 skips it).
# The end of a drain is seen by a passive queue.declare every 20 ms from
# benchpub (an AMQP call the broker answers cheaply, unlike rabbitmqctl,
# which boots an Erlang VM per call); it counts ready messages only, so
# benchpub then confirms with rabbitmqctl, off the clock, that nothing is
# left unacknowledged before it stops the worker (SIGTERM to its process
# group) and checks that no message came back. Worker start-up (start to
# first delivery) is in the timed figure and also reported on its own.
#
# Everything runs in a vhost of its own, deleted at the end. While a pass runs
# it holds internal/testenv's shared lock on the node, so an outage test in a
# concurrent `go test` does not stop RabbitMQ under it (and waits for it).
# The machine is shared and noisy: the table quotes medians and per-round
# ratios, the target is a marker, and a slow run never fails this script; a
# worker that crashes, a publish that is not confirmed or a queue that stops
# draining does.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_NAME=bench-worker
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
cd "$ROOT"

CORES=$(nproc)
ROUNDS=${BENCH_ROUNDS:-5}
N=${BENCH_TASKS:-20000}
if [[ ${BENCH_QUICK:-0} == 1 ]]; then ROUNDS=1 N=${BENCH_TASKS:-3000}; fi
C=${BENCH_CONCURRENCY:-$CORES}
PUBLISHERS=${BENCH_PUBLISHERS:-8}
STALL=${BENCH_STALL_TIMEOUT:-90}
RF=${BENCH_RENDERFARM:-$ROOT/bin/renderfarm}
BARE=${BENCH_BARE:-1}
PY=/usr/bin/python3 # Debian's: the python3 first on PATH may lack its modules
WARM_N=300          # tasks per untimed warm-up pass
TARGET=5            # Go / Python, tasks/s


for v in ROUNDS N C PUBLISHERS STALL; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
PREFETCH=$((C * 4))

# rabbitmqctl over loopback only, as scripts/rabbitmq.sh and testenv run it;
# benchpub inherits this for its unacknowledged check.
export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"

WORK=$(mktemp -d /tmp/bench-worker.XXXXXX)
RUN_ID=$(basename "$WORK")


# Workers run in process groups of their own (benchpub writes the group id
# to WORK/*.pgid) and carry BENCH_WORKER_RUN=RUN_ID in their environment,
# which also finds a prefork child that left its group; nothing else does.
ours() { grep -qsz "^BENCH_WORKER_RUN=$RUN_ID\$" "/proc/$1/environ" 2>/dev/null; }

# kill_ours SIGNAL: every process of this run's workers.
kill_ours() {
  local sig=$1 f pg p
  for f in "$WORK"/*.pgid; do
    [[ -s $f ]] || continue
    pg=$(<"$f")
    if ours "$pg"; then kill "-$sig" -- "-$pg" 2>/dev/null || true; fi
  done
  for p in /proc/[0-9]*; do
    if ours "${p#/proc/}"; then kill "-$sig" "${p#/proc/}" 2>/dev/null || true; fi
  done
}

ours_alive() {
  local p
  for p in /proc/[0-9]*; do
    ours "${p#/proc/}" && return 0
  done
  return 1
}

cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  # benchpub stops its worker on SIGTERM; kill_ours below makes sure.
  if [[ -n $BG ]]; then
    stop_pid "$BG"
  fi
  if ours_alive; then
    kill_ours TERM
    for ((i = 0; i < 50; i++)); do
      ours_alive || break
      sleep 0.1
    done
    kill_ours KILL
  fi
  drop_vhost
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the node lock (see internal/testenv) ---------------------------------
LOCK=/tmp/renderfarm-testenv-rabbitmq.lock
LOCKFD=""
# (A redirection on exec itself would stick to the shell: test first.)
if (: >>"$LOCK") 2>/dev/null; then exec {LOCKFD}>>"$LOCK"; fi
hold_node() {
  [[ -n $LOCKFD ]] || return 0
  flock -s -w 900 "$LOCKFD" || log "warning: RabbitMQ's test lock still held exclusively after 900s; going on"
}
release_node() { [[ -z $LOCKFD ]] || flock -u "$LOCKFD"; }

# ---- tools -----------------------------------------------------------------
if ! "$PY" -c 'import celery' 2>/dev/null || ! command -v rabbitmq-server >/dev/null; then
  log "python3-celery or rabbitmq-server missing, running scripts/setup.sh"
  bash scripts/setup.sh
fi
PY_VERSIONS=$("$PY" -c 'import sys, celery, kombu, billiard, amqp
print("Python %d.%d.%d, celery %s, kombu %s, billiard %s, py-amqp %s" % (sys.version_info[:3] +
      (celery.__version__, kombu.__version__, billiard.__version__, amqp.__version__)))') ||
  die "$PY cannot import celery"
[[ $PY_VERSIONS == *"celery 5.2."* ]] || log "warning: not Celery 5.2: $PY_VERSIONS"

log "building tools/bench/pub"
go build -o "$WORK/benchpub" ./tools/bench/pub || die "cannot build tools/bench/pub"
BP=$WORK/benchpub

RF_NOTE=""
if [[ -z ${BENCH_RENDERFARM:-} ]]; then
  stale=$(find . -path ./.cache -prune -o \( -name '*.go' -o -name go.mod -o -name go.sum \) \
    -newer "$RF" -print -quit 2>/dev/null || echo missing)
  if [[ ! -x $RF || -n $stale ]]; then
    log "building bin/renderfarm"
    if ! go build -o "$RF" ./cmd/renderfarm 2>"$WORK/build.log"; then
      tail -n 15 "$WORK/build.log" >&2
      [[ -x $RF ]] || die "cannot build bin/renderfarm"
      RF_NOTE="build failed; timed the existing ${RF#"$ROOT"/}, which may be stale"
      log "warning: $RF_NOTE"
    fi
  fi
fi
[[ -x $RF ]] || die "no renderfarm binary at $RF"

# ---- broker ------------------------------------------------------------------
hold_node
bash scripts/rabbitmq.sh >/dev/null || die "RabbitMQ did not start (scripts/rabbitmq.sh)"
VHOST=bench-worker-$$-$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
# One Erlang VM boot instead of two, as testenv does; the plain commands
# are the fallback.
expr="ok = rabbit_vhost:add(<<\"$VHOST\">>, <<\"bench-worker\">>), ok = rabbit_auth_backend_internal:set_permissions(<<\"guest\">>, <<\"$VHOST\">>, <<\".*\">>, <<\".*\">>, <<\".*\">>, <<\"bench-worker\">>)."
if [[ $(ctl eval "$expr" 2>/dev/null) != ok ]]; then
  ctl add_vhost "$VHOST" >/dev/null || die "rabbitmqctl add_vhost $VHOST failed"
  ctl set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null || die "rabbitmqctl set_permissions failed"
fi
URL="amqp://guest:guest@127.0.0.1:5672/$VHOST"
BROKER_INFO=$("$BP" -mode info -url "$URL") || die "cannot connect to $URL"
release_node
RABBIT_VERSION=$(sed -nE 's/.*"version":"([^"]*)".*/\1/p' <<<"$BROKER_INFO")
ERLANG_VERSION=$(erl -noshell -eval 'io:put_chars(erlang:system_info(otp_release)), halt().' 2>/dev/null || echo "?")

# RabbitMQ's own process, to split CPU time between broker and worker.
broker_pid() { pgrep -u rabbitmq -f -- '-s rabbit boot' 2>/dev/null | head -n1 || true; }

# jget FILE KEY: a number or string from benchpub's flat JSON line.
jget() { sed -nE "s/.*\"$2\":\"?([^,\"}]*)\"?[,}].*/\1/p" "$1"; }

# ---- passes ------------------------------------------------------------------
# publish QUEUE N [-purge]: N task messages into QUEUE; JSON in $WORK/pub.json.
publish() {
  local q=$1 n=$2
  shift 2
  run "$WORK/pub.json" "$BP" -mode publish -url "$URL" -queue "$q" -n "$n" -publishers "$PUBLISHERS" \
    -ignore-result "$@" || die "publishing $n messages to $q failed"
}

go_cmd() { # QUEUE
  printf '%s\0' "$RF" worker --broker "$URL" --metrics-listen "" --queues "$1" --concurrency "$C" --acks late \
    --prefetch "$PREFETCH" --events=false --hostname bench-go@local \
    --state-dir "$WORK/go-state" --log-level warn
}
py_cmd() { # QUEUE
  # -b is one of celery's global options in 5.x: it goes before `worker`.
  printf '%s\0' "$PY" -m celery -A noop_app -b "$URL" worker -P prefork -c "$C" \
    --without-gossip --without-mingle --without-heartbeat -Q "$1" -n bench-py@local \
    --loglevel=WARNING
}

bare_cmd() { # QUEUE
  printf '%s\0' "$BP" -mode consume -url "$URL" -queue "$1" -prefetch "$PREFETCH"
}

# drain go|python|bare QUEUE N: queue N tasks, time the worker draining
# them; JSON in $WORK/drain.json.
drain() {
  local w=$1 q=$2 n=$3 bpid
  local -a cmd pidarg=()
  mapfile -d '' cmd < <("${w/python/py}_cmd" "$q")
  publish "$q" "$n"
  bpid=$(broker_pid)
  if [[ -n $bpid ]]; then pidarg=(-broker-pid "$bpid"); fi
  run "$WORK/drain.json" env "PYTHONPATH=$ROOT/tools/bench${PYTHONPATH:+:$PYTHONPATH}" \
    "$BP" -mode drain-wait -url "$URL" -vhost "$VHOST" -queue "$q" -n "$n" \
    -stall-timeout "${STALL}s" -pidfile "$WORK/$w.pgid" -log "$WORK/$w.log" "${pidarg[@]}" \
    -- env "BENCH_WORKER_RUN=$RUN_ID" "${cmd[@]}" ||
    die "$w worker pass on $q failed"
  rm -f "$WORK/$w.pgid"
  if ours_alive; then
    kill_ours KILL
    die "$w worker left processes behind after it stopped"
  fi
}

f0() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }
f2() { awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (b == 0) ? 0 : a / b }'; }

# Untimed: both workers run once on a few tasks (imports, page cache, and a
# check that each of them works at all before anything is timed).
CONTENDERS=(go python)
if ((BARE)); then CONTENDERS+=(bare); fi
log "warm-up ($WARM_N tasks per worker)"
for w in "${CONTENDERS[@]}"; do
  hold_node
  drain "$w" "warmup.$w" "$WARM_N"
  release_node
done

# Per-round samples, space separated.
declare -A S
add() { S[$1]+=" $2"; }

log "$ROUNDS round(s) of $N tasks, concurrency $C, prefetch $PREFETCH, acks late"
for ((r = 1; r <= ROUNDS; r++)); do
  hold_node
  publish "publish.r$r" "$N" -purge
  rate=$(jget "$WORK/pub.json" rate)
  add pub "$rate"
  release_node
  log "round $r/$ROUNDS publish: $(f0 "$rate") msgs/s with confirms ($PUBLISHERS publishers)"

  # Alternate the order, so drift in the machine's load hits all alike.
  order=("${CONTENDERS[@]}")
  ((r % 2)) || mapfile -t order < <(printf '%s\n' "${CONTENDERS[@]}" | tac)
  for w in "${order[@]}"; do
    hold_node
    drain "$w" "drain.$w.r$r" "$N"
    release_node
    j=$WORK/drain.json
    for k in rate steady_rate startup_s worker_cpu_s broker_cpu_s stop_s; do
      v=$(jget "$j" "$k")
      if [[ -n $v ]]; then add "$w/$k" "$v"; fi
    done
    declare "last_$w=$(jget "$j" rate)" "last_steady_$w=$(jget "$j" steady_rate)"
    log "round $r/$ROUNDS $w: $(f0 "$(jget "$j" rate)") tasks/s" \
      "($(f0 "$(jget "$j" steady_rate)") after the first delivery, start-up $(f2 "$(jget "$j" startup_s)")s," \
      "worker CPU $(f2 "$(jget "$j" worker_cpu_s)")s, broker CPU $(f2 "$(jget "$j" broker_cpu_s)")s," \
      "$(jget "$j" exit)$([[ $(jget "$j" killed) == true ]] && echo ', needed SIGKILL'))"
  done
  # Ratios are taken within a round, where both passes ran back to back.
  add ratio "$(div "$last_go" "$last_python")"
  add ratio_steady "$(div "$last_steady_go" "$last_steady_python")"
  if ((BARE)); then
    add go_of_bare "$(div "$last_go" "$last_bare")"
    add bare_of_py "$(div "$last_bare" "$last_python")"
  fi
  log "round $r/$ROUNDS Go/Python: $(f2 "$(div "$last_go" "$last_python")")x"
done

# ---- report --------------------------------------------------------------------
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# shellcheck disable=SC2086 # word splitting of the sample lists is the point
med() { median ${S[$1]}; }
# shellcheck disable=SC2086
spread() {
  # "min-max" of the samples, or nothing for a single round.
  local -a v
  read -r -a v <<<"${S[$1]}"
  ((${#v[@]} > 1)) || return 0
  printf '%s\n' "${v[@]}" | sort -g | awk -v fmt="$2" 'NR == 1 { lo = $1 } { hi = $1 } END { printf fmt "-" fmt, lo, hi }'
}
# per1000 KEY: median of CPU seconds per pass as ms per 1000 tasks.
per1000() { awk -v s="$(med "$1")" -v n="$N" 'BEGIN { printf "%.0f ms", s * 1e6 / n }'; }
mark() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "ok" : "MISSED" }'; }
row() { printf '%-40s %11s  %-15s %s\n' "$@" | sed 's/ *$//'; }

ratio=$(med ratio)
echo
echo "== renderfarm Go worker vs Celery prefork worker: no-op tasks =="
echo "machine:  $CORES cores (nproc; $(nproc --all) online), RabbitMQ $RABBIT_VERSION (Erlang/OTP $ERLANG_VERSION)" \
  "on the same cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "python:   $PY_VERSIONS"
echo "go:       $(go env GOVERSION), ${RF#"$ROOT"/} built from $(git describe --always --dirty 2>/dev/null || echo '?')${RF_NOTE:+ ($RF_NOTE)}"
echo "tasks:    renderfarm.noop, Celery protocol 2, ignore_result, no reply_to, persistent, durable classic queue"
echo "passes:   $N tasks each, $ROUNDS round(s), workers alternating, medians (min-max) below"
echo "workers:  concurrency $C both, acks late both, events off both; prefetch $PREFETCH both:" \
  "Go --prefetch $PREFETCH = Celery's worker_prefetch_multiplier 4 x $C"
echo
row "" median "(min-max)" target
row "publish with confirms, msgs/s" "$(f0 "$(med pub)")" "$(spread pub %.0f)" \
  "$PUBLISHERS publishers, each waiting for its confirm"
for w in "${CONTENDERS[@]}"; do
  case $w in
  go) echo "Go worker (renderfarm worker)" ;;
  python) echo "Python worker (celery worker -P prefork)" ;;
  bare) echo "reference: bare amqp091-go consumer, one ack per delivery, no work" ;;
  esac
  row "  tasks/s, start to queue empty" "$(f0 "$(med "$w/rate")")" "$(spread "$w/rate" %.0f)"
  row "  tasks/s after the first delivery" "$(f0 "$(med "$w/steady_rate")")" "$(spread "$w/steady_rate" %.0f)"
  row "  start-up to first delivery, s" "$(f2 "$(med "$w/startup_s")")" "$(spread "$w/startup_s" %.2f)"
  row "  worker CPU per 1000 tasks" "$(per1000 "$w/worker_cpu_s")" "" "whole process life"
  if [[ -n ${S[$w/broker_cpu_s]:-} ]]; then
    row "  RabbitMQ CPU per 1000 tasks" "$(per1000 "$w/broker_cpu_s")" "" "start to queue empty"
  fi
done
need=$(f0 "$(awk -v p="$(med python/rate)" -v t="$TARGET" 'BEGIN { print p * t }')")
row "Go / Python, tasks/s" "$(f2 "$ratio")x" "$(spread ratio %.2f)" \
  ">= ${TARGET}x $(mark "$ratio" "$TARGET") (${TARGET}x the Python median: $need tasks/s)"
row "Go / Python, after the first delivery" "$(f2 "$(med ratio_steady)")x" "$(spread ratio_steady %.2f)"
if ((BARE)); then
  row "bare consumer / Python, tasks/s" "$(f2 "$(med bare_of_py)")x" "$(spread bare_of_py %.2f)" \
    "ceiling for a worker acking each task"
  row "Go / bare consumer, tasks/s" "$(f2 "$(med go_of_bare)")x" "$(spread go_of_bare %.2f)" \
    "the Go worker as a fraction of its ceiling on this machine"
fi
echo
echo "Ratios: medians of per-round ratios (each round's passes ran back to back)."
echo "A drain ends when the queue has no ready message (passive queue.declare every 20 ms);"
echo "at most $PREFETCH deliveries are then still in flight, confirmed acked before the worker stops."
