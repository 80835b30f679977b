#!/usr/bin/env bash
# bench-e2e.sh is `make bench-e2e`: the render task end to end (RabbitMQ ->
# one worker -> S3 in and out), renderfarm's worker against a Celery 5.2 +
# Pillow + boto3 worker doing the same task, and against the in-process
# engine on the same files, in one run.
#
#   BENCH_ROUNDS=N   rounds, medians reported (default 3; BENCH_QUICK=1: 1)
#   BENCH_QUICK=1    one round, corpus x2
#   BENCH_E2E_CONCURRENCY=C  pass --concurrency C to renderfarm's worker
#                    (diagnostic; default: the worker's own, one task per
#                    render slot); the peer always runs -c <cores>
#
# The work: four JPEG variants of each source (1600, 800, 200, 64 px, fit
# inside, Q80), the issue's end-to-end workload and `make bench`'s (b).
# Setup: RabbitMQ (scripts/rabbitmq.sh) with a vhost of its own, versitygw
# on a free loopback port with random keys over a temp dir, buckets bench-src
# and bench-out, the JPEG photos of the bench corpus (tools/bench/bench.sh
# fetches it) uploaded COPIES times under distinct keys.
# Each round, order rotating:
#   engine  `renderfarm render` of the same files from local disk, one
#           process, slots = cores; wall clock.
#   rf      renderfarm worker (one, concurrency its default) and
#   peer    tools/bench/celery_peer.py under `celery worker -c <cores>`
#           (prefork, acks late, prefetch 1), each driven by
#           tools/bench/e2e_client.py, a real Celery client: the worker is
#           started and waited for until it consumes, then one
#           renderfarm.render task per source is sent (kwargs source +
#           outputs, rpc:// results) and timed until ResultSet.join() has
#           every result; each result is checked for the contract's shape.
#           Worker start-up is outside the figure, for both.
# Afterwards (off the clock) every round must have N x 4 outputs per worker
# in bench-out, and renderfarm's N manifests in its journal.
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
OUTPUTS=4
TARGET=0.85      # rf / engine
PEER_TARGET=2.0  # rf / peer, per core
PY=/usr/bin/python3 # Debian's, with python3-celery, -pil and -boto3
"$PY" -c 'import celery, PIL, boto3' 2>/dev/null || die "python3-celery, python3-pil or python3-boto3 missing (scripts/setup.sh)"
VARIANTS='['
for s in 1600 800 200 64; do
  VARIANTS+="{\"key\":\"w$s\",\"width\":$s,\"height\":$s,\"format\":\"jpeg\",\"quality\":80},"
done
VARIANTS=${VARIANTS%,}']'
ENGINE_FLAGS=()
while read -r v; do ENGINE_FLAGS+=(--variant "$v"); done < <(jq -c '.[]' <<<"$VARIANTS")


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
  t=$({ time "$RF" render "${ENGINE_FLAGS[@]}" --quiet --json --out "$out" "${LOCAL[@]}" \
    >"$WORK/engine.json" 2>"$WORK/engine.err"; } 2>&1) || rc=$?
  ((rc == 0)) || die "renderfarm render failed: $(tail -n 5 "$WORK/engine.err")"
  local got
  got=$(find "$out" -type f | wc -l)
  ((got == N * OUTPUTS)) || die "engine wrote $got files, want $((N * OUTPUTS))"
  read -r ENGINE_S u s <<<"$t"
  ENGINE_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
}

# worker_pass SIDE ROUND: renderfarm's worker (rf) or the Celery peer
# (peer) through tools/bench/e2e_client.py; leaves its JSON in
# $WORK/SIDE.json.
worker_pass() {
  local side=$1 r=$2 q="render.$1.r$2"
  local -a cmd
  if [[ $side == rf ]]; then
    # shellcheck disable=SC2054  # the comma is in an argument
    cmd=("$RF" worker --broker "$URL" --queues "$q" --metrics-listen "" --events=false --hostname "bench-e2e-$r@local"
      --journal "s3://bench-out/_jobs/$r/" --buckets bench-src,bench-out --s3-path-style
      --state-dir "$WORK/state-$r" --log-level warn ${BENCH_E2E_CONCURRENCY:+--concurrency "$BENCH_E2E_CONCURRENCY"})
  else
    cmd=(env PEER_BROKER="$URL" PYTHONPATH="$ROOT/tools/bench" "$PY" -m celery -A celery_peer worker -c "$CORES"
      -Q "$q" -n "peer-$r@local" --without-gossip --without-mingle --without-heartbeat --loglevel=WARNING)
  fi
  "$PY" tools/bench/e2e_client.py --broker "$URL" --queue "$q" --keys "$WORK/keys" --src bench-src \
    --dest "s3://bench-out/$r/$side/" --variants "$VARIANTS" --log "$WORK/$side-$r.log" --s3-pid "$S3PID" \
    -- "${cmd[@]}" >"$WORK/$side.json" || die "$side pass of round $r failed: $(tail -n 20 "$WORK/$side-$r.log")"
}
rf_pass() { worker_pass rf "$1"; }
peer_pass() { worker_pass peer "$1"; }

# Untimed warm-up: page cache, and a check that the engine works at all.
log "warm-up (engine)"
engine_pass 0

declare -a S_ENGINE=() S_RF=() S_PEER=() S_RATIO=() S_PEER_RATIO=()
log "$ROUNDS round(s) of $N images, $CORES cores"
for ((r = 1; r <= ROUNDS; r++)); do
  order=(engine rf peer)
  k=$(((r - 1) % 3))
  order=("${order[@]:k}" "${order[@]:0:k}")
  for p in "${order[@]}"; do
    "${p}_pass" "$r"
    [[ $p == engine ]] || cp "$WORK/$p.json" "$WORK/$p-$r.json"
  done
  eng=$(per_core "$ENGINE_S")
  rf=$(per_core "$(jget "$WORK/rf.json" seconds)")
  peer=$(per_core "$(jget "$WORK/peer.json" seconds)")
  S_ENGINE+=("$eng") S_RF+=("$rf") S_PEER+=("$peer")
  S_RATIO+=("$(div "$rf" "$eng")") S_PEER_RATIO+=("$(div "$rf" "$peer")")
  for p in rf peer; do
    j=$WORK/$p.json
    log "round $r/$ROUNDS $p: $(f2 "$(jget "$j" seconds)")s ($(per_core "$(jget "$j" seconds)") img/s/core)," \
      "worker CPU $(f2 "$(jget "$j" worker_cpu_s)")s (life), versitygw CPU $(f2 "$(jget "$j" s3_cpu_s)")s," \
      "consumer up after $(f2 "$(jget "$j" subscribe_s)")s, outputs $(jget "$j" bytes) B"
  done
  log "round $r/$ROUNDS: engine ${ENGINE_S}s ($eng img/s/core, CPU ${ENGINE_CPU}s); rf/engine $(f2 "$(div "$rf" "$eng")")x," \
    "rf/peer $(f2 "$(div "$rf" "$peer")")x"
done

# ---- verify (off the clock) ----------------------------------------------------
for ((r = 1; r <= ROUNDS; r++)); do
  for p in rf peer; do
    "$BE" -mode verify -bucket bench-out -prefix "$r/$p/" -want $((N * OUTPUTS)) >/dev/null ||
      die "round $r: outputs missing in s3://bench-out/$r/$p/"
  done
  "$BE" -mode verify -bucket bench-out -prefix "_jobs/$r/" -want "$N" >/dev/null ||
    die "round $r: manifests missing in s3://bench-out/_jobs/$r/"
  "$BE" -mode timings -bucket bench-out -prefix "_jobs/$r/" >"$WORK/timings.json" || die "reading manifests of round $r"
  t=$WORK/timings.json
  log "round $r manifests: $(jget "$t" jobs) jobs, status $(grep -oE '"status":\{[^}]*\}' "$t" | cut -c10-)," \
    "$(jget "$t" attempts) attempts; summed over jobs: fetch $(f2 "$(jget "$t" fetch_s)")s," \
    "render $(f2 "$(jget "$t" render_s)")s, upload $(f2 "$(jget "$t" upload_s)")s, total $(f2 "$(jget "$t" total_s)")s;" \
    "first start to last finish $(f2 "$(jget "$t" span_s)")s"
  if grep -qiE 'level=(warn|error)|"level":"(WARN|ERROR)"' "$WORK/rf-$r.log"; then
    log "round $r: the worker logged warnings or errors:"
    head -n 20 "$WORK/rf-$r.log" >&2
  fi
done
log "verified: $ROUNDS x 2 x $N x $OUTPUTS outputs and $ROUNDS x $N manifests in bench-out"

# ---- report --------------------------------------------------------------------
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
m_eng=$(median "${S_ENGINE[@]}")
m_rf=$(median "${S_RF[@]}")
m_peer=$(median "${S_PEER[@]}")
m_ratio=$(median "${S_RATIO[@]}")
m_peer_ratio=$(median "${S_PEER_RATIO[@]}")
mark() { awk -v v="$1" -v t="$2" 'BEGIN { print (v >= t) ? "ok" : "MISSED" }'; }
cpu_img() { # SIDE FIELD: median over rounds, ms per image
  local r v=()
  for ((r = 1; r <= ROUNDS; r++)); do v+=("$(jget "$WORK/$1-$r.json" "$2")"); done
  awk -v s="$(median "${v[@]}")" -v n="$N" 'BEGIN { printf "%.0f ms", s * 1000 / n }'
}
echo
echo "== the render task end to end: renderfarm worker vs Celery + Pillow + boto3, and the in-process engine =="
echo "machine: $CORES cores, load average $(cut -d' ' -f1-3 /proc/loadavg); $N sources (${#CORPUS[@]} JPEG photos x$COPIES),"
echo "         4 JPEG variants (1600/800/200/64 px, Q80) each; RabbitMQ and versitygw on the same cores"
echo "peer:    Celery $("$PY" -c 'import celery; print(celery.__version__)') prefork -c $CORES, Pillow $("$PY" -c 'import PIL; print(PIL.__version__)'), boto3 $("$PY" -c 'import boto3; print(boto3.__version__)') (tools/bench/celery_peer.py)"
echo "rounds:  $ROUNDS, medians; img/s/core per round: engine $(printf '%s ' "${S_ENGINE[@]}")| rf $(printf '%s ' "${S_RF[@]}")| peer $(printf '%s ' "${S_PEER[@]}")"
printf '%-44s %12s %16s %16s\n' "" "img/s/core" "worker CPU/img" "versitygw CPU/img"
printf '%-44s %12s\n' "in-process engine (render, local files)" "$(f2 "$m_eng")"
printf '%-44s %12s %16s %16s\n' "renderfarm worker (S3 in/out, rpc results)" "$(f2 "$m_rf")" "$(cpu_img rf worker_cpu_s)" "$(cpu_img rf s3_cpu_s)"
printf '%-44s %12s %16s %16s\n' "Celery + Pillow + boto3 worker" "$(f2 "$m_peer")" "$(cpu_img peer worker_cpu_s)" "$(cpu_img peer s3_cpu_s)"
printf '%-44s %11sx  target >= %sx  %s\n' "renderfarm worker / Celery peer, per core" "$(f2 "$m_peer_ratio")" "$PEER_TARGET" "$(mark "$m_peer_ratio" "$PEER_TARGET")"
printf '%-44s %11sx  target >= %sx  %s\n' "renderfarm worker / in-process engine" "$(f2 "$m_ratio")" "$TARGET" "$(mark "$m_ratio" "$TARGET")"
echo "Ratios are medians of per-round ratios. Worker CPU covers the worker's whole life (start-up included)."
