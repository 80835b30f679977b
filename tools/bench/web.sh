#!/usr/bin/env bash
# bench-web.sh is `make bench-web`: the web tier's enqueue throughput
# (POST /v1/renders, answered 202 once the broker confirmed the task) against
# raw amqp091-go publishing of the same task message with confirms, in one
# run on the same RabbitMQ.
#
# Usage: tools/bench/web.sh        (or `make bench-web`)
#   BENCH_ROUNDS=N        rounds; the table quotes medians over them (default 5)
#   BENCH_QUICK=1         smoke run: 1 round of 2000 requests
#   BENCH_REQUESTS=N      requests (and publishes) per pass (default 20000)
#   BENCH_CONCURRENCY=C   HTTP clients, and AMQP publishers (default 32)
#   BENCH_WARMUP=W        untimed requests before each pass (default 4C)
#   BENCH_RENDERFARM=PATH time this renderfarm binary instead of building
#                         bin/renderfarm
#
# Setup: bin/renderfarm (make build, unless make already did), RabbitMQ
# (scripts/rabbitmq.sh) with a vhost of its own, and ONE web tier for the
# whole run on a free loopback port:
#   renderfarm web --listen 127.0.0.1:PORT --broker URL/VHOST --tokens T
#       --queue bench.web --rate -1 --journal file://WORK/jobs/ --file-root WORK
# (--rate -1: no per-token limit; --rate 0 is the default of 50 per second)
# which declares bench.web as a Celery client does; /readyz must answer 200.
# Nothing consumes the queue. Each round, order alternating:
#   raw  tools/bench/web -mode raw: one amqp091-go connection, one channel
#        in confirm mode, C goroutines each publishing a persistent
#        renderfarm.render task (exchange bench.web, key bench.web,
#        mandatory) and waiting for its own confirm; the message is what the
#        web tier publishes for the request body (celery.Encode, a fresh id
#        per message, encoding timed).
#   web  tools/bench/web -mode load: C keep-alive HTTP clients in a process
#        of their own POST the body with the token; anything but a 202 with
#        an id fails the run.
# Both passes first send W untimed requests (connections, the channel, the
# web tier's first requests), then N timed ones. After each pass the queue
# must hold exactly W+N messages, no more, no less; it is purged then.
# The machine is shared and noisy, and the load generator shares its cores
# with the web tier and RabbitMQ (the raw publisher has no such neighbour):
# the table quotes medians and per-round ratios, the target is a marker, and
# a slow run never fails this script; a non-202, an unconfirmed publish or a
# wrong message count does.
#
# While it runs it holds internal/testenv's shared lock on the node, so an
# outage test in a concurrent `go test` does not stop RabbitMQ under the web
# tier (and waits for it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_NAME=bench-web
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
cd "$ROOT"

CORES=$(nproc)
ROUNDS=${BENCH_ROUNDS:-5}
N=${BENCH_REQUESTS:-20000}
if [[ ${BENCH_QUICK:-0} == 1 ]]; then ROUNDS=1 N=${BENCH_REQUESTS:-2000}; fi
C=${BENCH_CONCURRENCY:-32}
W=${BENCH_WARMUP:-$((C * 4))}
RF=${BENCH_RENDERFARM:-$ROOT/bin/renderfarm}
Q=bench.web
TARGET=0.7 # web req/s / raw msgs/s
BODY_JSON='{"source":"s3://bench/in/photo.jpg","recipe":"default","dest":"s3://bench/out/"}'


for v in ROUNDS N C; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer (got '${!v}')"
done
[[ $W =~ ^[0-9]+$ ]] || die "BENCH_WARMUP must be a whole number (got '$W')"

export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"

WORK=$(mktemp -d /tmp/bench-web.XXXXXX)
WEBPID=""



cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [[ -n $BG ]]; then stop_pid "$BG"; fi
  if [[ -n $WEBPID ]]; then stop_pid "$WEBPID"; fi
  drop_vhost
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- binaries ----------------------------------------------------------------
# `make bench-web` has built already (bench-web: build); run alone, build here.
if [[ -z ${BENCH_RENDERFARM:-} && -z ${MAKELEVEL:-} ]]; then
  make --no-print-directory build >&2 || die "make build failed"
fi
[[ -x $RF ]] || die "no renderfarm binary at $RF"
"$RF" web --help >/dev/null 2>&1 || die "$RF has no web command"
log "building tools/bench/web"
go build -o "$WORK/benchweb" ./tools/bench/web || die "cannot build tools/bench/web"
BW=$WORK/benchweb
BODY=$WORK/body.json
printf '%s\n' "$BODY_JSON" >"$BODY"

# ---- the node lock (see internal/testenv) ---------------------------------
# Held for the whole run: the web tier stays connected from its start to its
# stop, so there is no pause between passes in which the node could go away.
LOCK=/tmp/renderfarm-testenv-rabbitmq.lock
if (: >>"$LOCK") 2>/dev/null; then
  exec {LOCKFD}>>"$LOCK"
  flock -s -w 900 "$LOCKFD" || log "warning: RabbitMQ's test lock still held exclusively after 900s; going on"
fi

# ---- broker ------------------------------------------------------------------
rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
bash scripts/rabbitmq.sh >/dev/null || die "RabbitMQ did not start (scripts/rabbitmq.sh)"
VHOST=bench-web-$$-$(rand_hex 4)
ctl add_vhost "$VHOST" >/dev/null || die "rabbitmqctl add_vhost $VHOST failed"
ctl set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null || die "rabbitmqctl set_permissions failed"
URL="amqp://guest:guest@127.0.0.1:5672/$VHOST"
# RabbitMQ's own process, for its CPU time over each pass.
BPID=$(pgrep -u rabbitmq -f -- '-s rabbit boot' 2>/dev/null | head -n1 || true)
ERLANG_VERSION=$(erl -noshell -eval 'io:put_chars(erlang:system_info(otp_release)), halt().' 2>/dev/null || echo "?")

# ---- the web tier ------------------------------------------------------------
TOKEN=bench-$(rand_hex 16)
# No S3 is used (requests are only validated and queued); keep the AWS SDK
# from looking for an instance metadata service.
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
for ((attempt = 0; attempt < 3; attempt++)); do
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  "$RF" web --listen "127.0.0.1:$PORT" --broker "$URL" --tokens "$TOKEN" --queue "$Q" --rate -1 \
    --journal "file://$WORK/jobs/" --file-root "$WORK" >"$WORK/web.log" 2>&1 &
  WEBPID=$!
  for ((i = 0; i < 300; i++)); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "http://127.0.0.1:$PORT/readyz") == 200 ]] && break 2
    kill -0 "$WEBPID" 2>/dev/null || break
    sleep 0.1
  done
  stop "$WEBPID"
  wait "$WEBPID" 2>/dev/null || true
  WEBPID=""
  # Another process may have taken the port in between: only that is retried.
  grep -qi 'address already in use' "$WORK/web.log" || break
done
[[ -n $WEBPID ]] || die "the web tier did not become ready on 127.0.0.1:$PORT within 30s:
$(tail -n 20 "$WORK/web.log")"
log "web tier on 127.0.0.1:$PORT (pid $WEBPID), queue $Q in vhost $VHOST"
WEB_URL=http://127.0.0.1:$PORT/v1/renders

# ---- passes ------------------------------------------------------------------
jget() { sed -nE "s/.*\"$2\":\"?([^,\"}]*)\"?[,}].*/\1/p" "$1"; }
f0() { awk -v v="$1" 'BEGIN { printf "%.0f", v }'; }
f2() { awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }
f1() { awk -v v="$1" 'BEGIN { printf "%.1f", v }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (b == 0) ? 0 : a / b }'; }

# purge WANT [OUT]: the queue must hold exactly WANT messages; it is
# emptied, and what one of them was like goes to OUT.
purge() {
  "$BW" -mode purge -url "$URL" -queue "$Q" -want "$1" >"${2:-/dev/null}" || die "message count check on $Q failed"
}

raw_pass() {
  run "$WORK/raw.json" "$BW" -mode raw -url "$URL" -queue "$Q" -c "$C" -n "$N" -warmup "$W" \
    -body "$BODY" ${BPID:+-broker-pid "$BPID"} || die "raw publishing failed"
}

web_pass() {
  local lines
  lines=$(wc -l <"$WORK/web.log")
  run "$WORK/web.json" "$BW" -mode load -url "$WEB_URL" -token "$TOKEN" -c "$C" -n "$N" -warmup "$W" \
    -body "$BODY" -server-pid "$WEBPID" ${BPID:+-broker-pid "$BPID"} ||
    die "the web tier failed requests (above); its log's tail:
$(tail -n 20 "$WORK/web.log")"
  kill -0 "$WEBPID" 2>/dev/null || die "the web tier exited: $(tail -n 20 "$WORK/web.log")"
  if tail -n +"$((lines + 1))" "$WORK/web.log" | grep -qiE 'level=(warn|error)|"level":"(WARN|ERROR)"'; then
    log "the web tier logged warnings or errors in this pass:"
    tail -n +"$((lines + 1))" "$WORK/web.log" | grep -iE 'level=(warn|error)|"level":"(WARN|ERROR)"' | head -n 10 >&2
  fi
}

# Per-round samples, space separated.
declare -A S
add() { S[$1]+=" $2"; }

purge 0 # a fresh queue: nothing in it but what the passes send
log "$ROUNDS round(s) of $N requests after $W untimed, concurrency $C"
for ((r = 1; r <= ROUNDS; r++)); do
  # Alternate the order, so drift in the machine's load hits both alike.
  order=(raw web)
  ((r % 2)) || order=(web raw)
  for p in "${order[@]}"; do
    "${p}_pass"
    purge $((W + N)) "$WORK/$p.msg"
    j=$WORK/$p.json
    for k in rate p50_ms p99_ms self_cpu_s server_cpu_s broker_cpu_s connections; do
      v=$(jget "$j" "$k")
      if [[ -n $v ]]; then add "$p/$k" "$v"; fi
    done
    log "round $r/$ROUNDS $p: $(f0 "$(jget "$j" rate)")/s, p50 $(jget "$j" p50_ms) ms," \
      "p99 $(jget "$j" p99_ms) ms, max $(jget "$j" max_ms) ms; queue held exactly $((W + N))"
  done
  add first "${order[0]}"
  add ratio "$(div "$(jget "$WORK/web.json" rate)" "$(jget "$WORK/raw.json" rate)")"
done
RABBIT_VERSION=$(jget "$WORK/raw.json" server_version)
# What one message of each pass's last round was like: the reference is only
# a reference if it sent what the web tier sends.
msg() { echo "$(jget "$WORK/$1.msg" task), $(jget "$WORK/$1.msg" body_bytes) B body, kwargs $(jget "$WORK/$1.msg" kwargs_sha)"; }
SAME_MSG="the same task and kwargs"
if [[ $(jget "$WORK/web.msg" task) != "$(jget "$WORK/raw.msg" task)" ||
  $(jget "$WORK/web.msg" kwargs_sha) != "$(jget "$WORK/raw.msg" kwargs_sha)" ]]; then
  SAME_MSG="NOT THE SAME MESSAGE"
  log "warning: the passes sent different messages: web $(msg web); raw $(msg raw)"
fi

# ---- report --------------------------------------------------------------------
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# shellcheck disable=SC2086 # word splitting of the sample lists is the point
med() { median ${S[$1]}; }
# nth KEY I: the I-th sample (1-based).
nth() { awk -v i="$2" '{ print $i }' <<<"${S[$1]}"; }
# per1000 KEY: median CPU seconds per pass as ms per 1000 requests, or "-".
per1000() {
  [[ -n ${S[$1]:-} ]] || { echo -; return; }
  awk -v s="$(med "$1")" -v n="$N" 'BEGIN { printf "%.0f ms", s * 1e6 / n }'
}
mark() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "ok" : "MISSED" }'; }
row() { printf '%-7s %-5s %11s %10s %8s %11s %11s %11s %11s\n' "$@"; }

ratio=$(med ratio)
echo
echo "== renderfarm web tier (POST /v1/renders) vs raw amqp091-go publishing with confirms =="
echo "machine:  $CORES cores (nproc), load average $(cut -d' ' -f1-3 /proc/loadavg);" \
  "RabbitMQ $RABBIT_VERSION (Erlang/OTP $ERLANG_VERSION) on the same cores, loopback"
echo "go:       $(go env GOVERSION), ${RF#"$ROOT"/} built from $(git describe --always --dirty 2>/dev/null || echo '?')"
echo "passes:   $N requests each after $W untimed, $ROUNDS round(s), order alternating;" \
  "queue $Q (classic, durable), no consumer, exactly $((W + N)) messages checked after each pass"
echo "web:      renderfarm web --rate -1 (no rate limit); benchweb -mode load in its own process," \
  "$C keep-alive clients ($(med web/connections) connections opened), body $(wc -c <"$BODY") B"
echo "raw:      amqp091-go, one connection, one confirm-mode channel, $C publishers each waiting for" \
  "its own confirm (mandatory, persistent); Celery message encoded per publish"
echo "messages: web $(msg web); raw $(msg raw): $SAME_MSG"
echo
row round first "raw msgs/s" "web req/s" "web/raw" "web p99 ms" "raw p99 ms" "web p50 ms" "raw p50 ms"
for ((r = 1; r <= ROUNDS; r++)); do
  row "$r" "$(nth first "$r")" "$(f0 "$(nth raw/rate "$r")")" "$(f0 "$(nth web/rate "$r")")" \
    "$(f2 "$(nth ratio "$r")")x" "$(f1 "$(nth web/p99_ms "$r")")" "$(f1 "$(nth raw/p99_ms "$r")")" \
    "$(f1 "$(nth web/p50_ms "$r")")" "$(f1 "$(nth raw/p50_ms "$r")")"
done
row median "" "$(f0 "$(med raw/rate)")" "$(f0 "$(med web/rate)")" "$(f2 "$ratio")x" \
  "$(f1 "$(med web/p99_ms)")" "$(f1 "$(med raw/p99_ms)")" "$(f1 "$(med web/p50_ms)")" "$(f1 "$(med raw/p50_ms)")"
echo
echo "web / raw, median of per-round ratios: $(f2 "$ratio")x   target >= ${TARGET}x   $(mark "$ratio" "$TARGET")"
echo "          (the web tier's enqueue rate as a fraction of its ceiling here: raw publishing with confirms)"
echo "CPU per 1000 requests (medians): web pass: web tier $(per1000 web/server_cpu_s)," \
  "load generator $(per1000 web/self_cpu_s), RabbitMQ $(per1000 web/broker_cpu_s);" \
  "raw pass: publisher $(per1000 raw/self_cpu_s), RabbitMQ $(per1000 raw/broker_cpu_s)"
