#!/usr/bin/env bash
# bench-e2e.sh is `make bench-e2e`: renderfarm end to end (RabbitMQ -> one
# worker -> S3 in and out) against the in-process engine on the same files,
# in one run.
#
#   BENCH_ROUNDS=N   rounds, medians reported (default 3; BENCH_QUICK=1: 1)
#   BENCH_QUICK=1    one round
#   BENCH_E2E_CONCURRENCY=C  pass --concurrency C to the worker (diagnostic;
#                    default: the worker's own, one task per render slot)
#
# Setup: RabbitMQ (scripts/rabbitmq.sh) with a vhost of its own, versitygw
# on a free loopback port with random keys over a temp dir, buckets bench-src
# and bench-out, the JPEG photos of the bench corpus (tools/bench/bench.sh
# fetches it) uploaded twice under distinct keys: 2 x 16 = 32 sources.
# Each round, order alternating:
#   engine  `renderfarm render --recipe default` of the same 32 files from
#           local disk, one process, slots = cores; wall clock.
#   e2e     32 renderfarm.render tasks (ignore_result, recipe default, dest
#           s3://bench-out/<round>/<n>/) are queued, then ONE worker starts
#           (concurrency = its default, one slot per core); timed from its
#           start until the queue has nothing ready and all 32 job manifests
#           are in the journal (the worker writes a task's manifest after its
#           outputs and acks after that), polled every 50 ms (AMQP passive
#           declare; S3 listing only once nothing is ready). rabbitmqctl
#           then confirms, off the clock, that nothing is unacknowledged, and
#           the worker gets SIGTERM (warm shutdown).
# Afterwards (off the clock) every round must have 32 x 3 outputs in
# bench-out. Worker start-up is inside the e2e figure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BENCH_NAME=bench-e2e
# shellcheck source=tools/bench/lib.sh
source "$ROOT/tools/bench/lib.sh"
cd "$ROOT"

CORES=$(nproc)
ROUNDS=${BENCH_ROUNDS:-3}
if [[ ${BENCH_QUICK:-0} == 1 ]]; then ROUNDS=1; fi
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || { echo "BENCH_ROUNDS must be a positive integer" >&2; exit 2; }
# The corpus x4, as `make bench` uses it: a pass long enough that the
# worker's start-up (about 0.2 s) is not a tenth of it.
COPIES=${BENCH_COPIES:-4}
if [[ ${BENCH_QUICK:-0} == 1 ]]; then COPIES=2; fi
OUTPUTS=3 # the default recipe's variants
TARGET=0.85


export ERL_EPMD_ADDRESS=127.0.0.1
export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"

WORK=$(mktemp -d /tmp/bench-e2e.XXXXXX)
S3PID=""
cleanup() {
  local rc=$? i
  trap - EXIT INT TERM
  if [[ -n $S3PID ]]; then
    stop_pid "$S3PID"
  fi
  drop_vhost
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- corpus ------------------------------------------------------------------
CORPUS_DIR=.cache/bench/mate-backgrounds
[[ -f $CORPUS_DIR/.unpacked ]] || die "no corpus in $CORPUS_DIR: run BENCH_QUICK=1 bash tools/bench/bench.sh once"
CORPUS=()
while IFS= read -r -d '' f; do
  [[ $(vipsheader -f vips-loader "$f" 2>/dev/null) == jpegload ]] && CORPUS+=("$f")
done < <(find "$CORPUS_DIR" -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) -print0 | sort -z)
((${#CORPUS[@]})) || die "no JPEG photos in $CORPUS_DIR"
N=$((${#CORPUS[@]} * COPIES))
# The same N files for the engine, under distinct names (its outputs are
# named after the source's base name).
LOCAL=()
mkdir -p "$WORK/src"
for ((k = 0; k < COPIES; k++)); do
  for f in "${CORPUS[@]}"; do
    cp "$f" "$WORK/src/c$k-$(basename "$f")"
    LOCAL+=("$WORK/src/c$k-$(basename "$f")")
  done
done

# ---- binaries ----------------------------------------------------------------
log "building bin/renderfarm and tools/bench/e2e"
go build -o bin/renderfarm ./cmd/renderfarm || die "cannot build bin/renderfarm"
go build -o "$WORK/benche2e" ./tools/bench/e2e || die "cannot build tools/bench/e2e"
RF=$ROOT/bin/renderfarm
BE=$WORK/benche2e
VGW=$(command -v versitygw || echo "$(go env GOPATH)/bin/versitygw")
[[ -x $VGW ]] || die "versitygw not found (bash scripts/setup.sh)"

# ---- S3 ----------------------------------------------------------------------
rand_hex() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }
export AWS_ACCESS_KEY_ID="AK$(rand_hex 9 | tr a-f A-F)"
export AWS_SECRET_ACCESS_KEY=$(rand_hex 20)
export AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true
mkdir -p "$WORK/s3"
for ((attempt = 0; attempt < 3; attempt++)); do
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # Keys through the environment, not argv.
  ROOT_ACCESS_KEY_ID=$AWS_ACCESS_KEY_ID ROOT_SECRET_ACCESS_KEY=$AWS_SECRET_ACCESS_KEY \
    "$VGW" --port "127.0.0.1:$PORT" --region us-east-1 --quiet posix "$WORK/s3" >"$WORK/versitygw.log" 2>&1 &
  S3PID=$!
  for ((i = 0; i < 100; i++)); do
    curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$PORT/" && break 2
    kill -0 "$S3PID" 2>/dev/null || break
    sleep 0.1
  done
  kill -KILL "$S3PID" 2>/dev/null || true
  wait "$S3PID" 2>/dev/null || true
  S3PID=""
done
[[ -n $S3PID ]] || die "versitygw did not start: $(tail -n 5 "$WORK/versitygw.log")"
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$PORT"
log "versitygw on 127.0.0.1:$PORT; uploading $N sources"
"$BE" -mode upload -buckets bench-src,bench-out -bucket bench-src -copies "$COPIES" "${CORPUS[@]}" >"$WORK/keys" ||
  die "upload failed"
(($(wc -l <"$WORK/keys") == N)) || die "uploaded $(wc -l <"$WORK/keys") sources, want $N"

# ---- broker ------------------------------------------------------------------
bash scripts/rabbitmq.sh >/dev/null || die "RabbitMQ did not start (scripts/rabbitmq.sh)"
VHOST=bench-e2e-$$-$(rand_hex 4)
ctl add_vhost "$VHOST" >/dev/null || die "rabbitmqctl add_vhost $VHOST failed"
ctl set_permissions -p "$VHOST" guest '.*' '.*' '.*' >/dev/null || die "rabbitmqctl set_permissions failed"
URL="amqp://guest:guest@127.0.0.1:5672/$VHOST"

# ---- passes ------------------------------------------------------------------
jget() { sed -nE "s/.*\"$2\":\"?([^,\"}]*)\"?[,}].*/\1/p" "$1"; }
f2() { awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }
per_core() { awk -v n="$N" -v s="$1" -v c="$CORES" 'BEGIN { printf "%.4f", n / s / c }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", (b == 0) ? 0 : a / b }'; }

engine_pass() { # ROUND
  local out=$WORK/engine-out TIMEFORMAT='%R %U %S' t rc=0
  rm -rf "$out"
  mkdir -p "$out"
  # bash's time keyword: wall clock, and the process's user and system CPU.
  t=$({ time "$RF" render --recipe default --quiet --json --out "$out" "${LOCAL[@]}" \
    >"$WORK/engine.json" 2>"$WORK/engine.err"; } 2>&1) || rc=$?
  ((rc == 0)) || die "renderfarm render failed: $(tail -n 5 "$WORK/engine.err")"
  local got
  got=$(find "$out" -type f | wc -l)
  ((got == N * OUTPUTS)) || die "engine wrote $got files, want $((N * OUTPUTS))"
  read -r ENGINE_S u s <<<"$t"
  ENGINE_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
}

e2e_pass() { # ROUND
  local r=$1 q="render.r$1"
  "$BE" -mode publish -url "$URL" -queue "$q" -keys "$WORK/keys" -src bench-src -dest "s3://bench-out/$r/" >/dev/null ||
    die "publishing round $r failed"
  "$BE" -mode drain-wait -url "$URL" -vhost "$VHOST" -queue "$q" -n "$N" -bucket bench-out \
    -journal "_jobs/$r/" -log "$WORK/worker-$r.log" -s3-pid "$S3PID" -- \
    "$RF" worker --broker "$URL" --queues "$q" --metrics-listen "" --events=false --hostname "bench-e2e-$r@local" \
    --journal "s3://bench-out/_jobs/$r/" --buckets bench-src,bench-out --s3-path-style \
    --state-dir "$WORK/state-$r" --log-level warn ${BENCH_E2E_CONCURRENCY:+--concurrency "$BENCH_E2E_CONCURRENCY"} \
    >"$WORK/drain.json" ||
    die "end-to-end pass of round $r failed"
  E2E_S=$(jget "$WORK/drain.json" seconds)
}

# Untimed warm-up: page cache, and a check that the engine works at all.
log "warm-up (engine)"
engine_pass 0

declare -a S_ENGINE=() S_E2E=() S_RATIO=()
log "$ROUNDS round(s) of $N images, $CORES cores"
for ((r = 1; r <= ROUNDS; r++)); do
  order=(engine e2e)
  ((r % 2)) || order=(e2e engine)
  for p in "${order[@]}"; do
    "${p}_pass" "$r"
  done
  eng=$(per_core "$ENGINE_S")
  e2e=$(per_core "$E2E_S")
  S_ENGINE+=("$eng") S_E2E+=("$e2e") S_RATIO+=("$(div "$e2e" "$eng")")
  log "round $r/$ROUNDS: engine ${ENGINE_S}s ($eng img/s/core, CPU ${ENGINE_CPU}s), e2e $(f2 "$E2E_S")s ($e2e img/s/core," \
    "consumer up $(f2 "$(jget "$WORK/drain.json" subscribe_s)")s, worker CPU $(f2 "$(jget "$WORK/drain.json" worker_cpu_s)")s," \
    "versitygw CPU $(f2 "$(jget "$WORK/drain.json" s3_cpu_s)")s, stop $(f2 "$(jget "$WORK/drain.json" stop_s)")s," \
    "$(jget "$WORK/drain.json" exit)), e2e/engine $(f2 "$(div "$e2e" "$eng")")x"
done

# ---- verify (off the clock) ----------------------------------------------------
for ((r = 1; r <= ROUNDS; r++)); do
  "$BE" -mode verify -bucket bench-out -prefix "$r/" -want $((N * OUTPUTS)) >/dev/null ||
    die "round $r: outputs missing in s3://bench-out/$r/"
  "$BE" -mode verify -bucket bench-out -prefix "_jobs/$r/" -want "$N" >/dev/null ||
    die "round $r: manifests missing in s3://bench-out/_jobs/$r/"
  "$BE" -mode timings -bucket bench-out -prefix "_jobs/$r/" >"$WORK/timings.json" || die "reading manifests of round $r"
  t=$WORK/timings.json
  log "round $r manifests: $(jget "$t" jobs) jobs, status $(grep -oE '"status":\{[^}]*\}' "$t" | cut -c10-)," \
    "$(jget "$t" attempts) attempts; summed over jobs: fetch $(f2 "$(jget "$t" fetch_s)")s," \
    "render $(f2 "$(jget "$t" render_s)")s, upload $(f2 "$(jget "$t" upload_s)")s, total $(f2 "$(jget "$t" total_s)")s;" \
    "first start to last finish $(f2 "$(jget "$t" span_s)")s"
  if grep -qiE 'level=(warn|error)|"level":"(WARN|ERROR)"' "$WORK/worker-$r.log"; then
    log "round $r: the worker logged warnings or errors:"
    head -n 20 "$WORK/worker-$r.log" >&2
  fi
done
log "verified: $ROUNDS x $N x $OUTPUTS outputs and $ROUNDS x $N manifests in bench-out"

# ---- report --------------------------------------------------------------------
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
m_eng=$(median "${S_ENGINE[@]}")
m_e2e=$(median "${S_E2E[@]}")
m_ratio=$(median "${S_RATIO[@]}")
mark=$(awk -v v="$m_ratio" -v t="$TARGET" 'BEGIN { print (v >= t) ? "ok" : "MISSED" }')
echo
echo "== renderfarm end to end (RabbitMQ + 1 worker + S3) vs in-process engine =="
echo "machine: $CORES cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $N sources (${#CORPUS[@]} JPEG photos x$COPIES), recipe default ($OUTPUTS outputs)"
echo "rounds:  $ROUNDS, medians; per round: engine $(printf '%s ' "${S_ENGINE[@]}")| e2e $(printf '%s ' "${S_E2E[@]}")| ratio $(printf '%s ' "${S_RATIO[@]}")"
printf '%-36s %12s\n' "" "img/s/core"
printf '%-36s %12s\n' "in-process engine (render)" "$(f2 "$m_eng")"
printf '%-36s %12s\n' "end to end (worker, S3 in/out)" "$(f2 "$m_e2e")"
printf '%-36s %11sx  target >= %sx  %s\n' "ratio e2e / engine" "$(f2 "$m_ratio")" "$TARGET" "$mark"
