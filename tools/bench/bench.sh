#!/usr/bin/env bash
# bench.sh is `make bench`: renderfarm's render engine side by side with
# libvips' own vipsthumbnail, in one run, on real photographs.
#
# Usage: tools/bench/bench.sh            (or `make bench`)
#   BENCH_ROUNDS=N   rounds, medians are quoted over them (default 5)
#   BENCH_REPEAT=N   copies of the corpus per pass (default 4: a pass lasts
#                    seconds, so process start-up and tail effects stay small)
#   BENCH_QUICK=1    smoke run: 1 round, corpus x1
#   BENCH_VT_CONCURRENCY=N  libvips threads per vipsthumbnail process
#                    (default 1: the parallelism is one process per core)
#   BENCH_RENDERFARM=PATH  time this renderfarm binary instead of building
#                    bin/renderfarm (e.g. to compare two builds)
#
# The machine is shared and noisy, so contenders alternate within each round
# and the table quotes medians. Targets are printed as markers only: a slow
# run never fails this script; a broken contender or a missing corpus does.
# Downloads and generated images live in .cache/bench/ and are reused; the
# outputs of a run are deleted when it ends.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"

CORES=$(nproc)
ROUNDS=${BENCH_ROUNDS:-5}
REPEAT=${BENCH_REPEAT:-4}
if [[ ${BENCH_QUICK:-0} == 1 ]]; then ROUNDS=1 REPEAT=1; fi
VT_CONCURRENCY=${BENCH_VT_CONCURRENCY:-1}
BATCH=8                    # files per vipsthumbnail process
SIZES_B=(1600 800 200 64)  # the (b) recipe
CACHE=$ROOT/.cache/bench
RF=${BENCH_RENDERFARM:-$ROOT/bin/renderfarm}

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "BENCH_ROUNDS must be a positive integer"
[[ $REPEAT =~ ^[1-9][0-9]*$ ]] || die "BENCH_REPEAT must be a positive integer"
if ! command -v vipsthumbnail >/dev/null || ! command -v vipsheader >/dev/null; then
  die "libvips-tools is missing (scripts/setup.sh installs it)"
fi

# Everything this run makes outside the cache, or half-made inside it.
CLEAN=()
trap 'rm -rf "${CLEAN[@]}"' EXIT

apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  # A fresh machine may have no package lists yet; update only when needed.
  apt-get install -y -qq "$@" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq "$@" >/dev/null; }
}

# GNU time, not the shell keyword: only it reports a child's peak RSS.
if [[ ! -x /usr/bin/time ]]; then
  log "installing GNU time"
  apt_install time
fi

mkdir -p "$CACHE"

# ---- corpus ---------------------------------------------------------------
# mate-backgrounds ships real JPEG photos (1.3 to 18 MP, some progressive),
# from Debian's archive, which is all this network reaches.
CORPUS_DIR=$CACHE/mate-backgrounds
if [[ ! -f $CORPUS_DIR/.unpacked ]]; then
  log "fetching mate-backgrounds into $CACHE"
  dl=$(mktemp -d "$CACHE/dl.XXXXXX")
  CLEAN+=("$dl")
  # As root, apt drops to _apt for downloads, which cannot write into a
  # private temp dir; stay root for this one download instead.
  apt_opts=()
  ((EUID == 0)) && apt_opts=(-o APT::Sandbox::User=root)
  (cd "$dl" && apt-get download -qq "${apt_opts[@]}" mate-backgrounds) ||
    (apt-get update -qq && cd "$dl" && apt-get download -qq "${apt_opts[@]}" mate-backgrounds) ||
    die "apt-get download mate-backgrounds failed"
  rm -rf "$CORPUS_DIR"
  dpkg-deb -x "$dl"/mate-backgrounds_*.deb "$CORPUS_DIR"
  rm -rf "$dl"
  touch "$CORPUS_DIR/.unpacked"
fi

# Only JPEG photos: the package also has PNG artwork, and the name alone
# does not prove the format.
CORPUS=()
while IFS= read -r -d '' f; do
  [[ $(vipsheader -f vips-loader "$f" 2>/dev/null) == jpegload ]] && CORPUS+=("$f")
done < <(find "$CORPUS_DIR" -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) -print0 | sort -z)
((${#CORPUS[@]})) || die "no JPEG photos found in $CORPUS_DIR"

# vipsheader has no "interlaced" field at all for a baseline JPEG.
is_progressive() { [[ $(vipsheader -f interlaced "$1" 2>/dev/null || true) == 1 ]]; }

# One large progressive JPEG: it cannot be decoded in strips, so it is the
# worst case for memory. Made from the biggest corpus photo, so it has real
# detail, and kept in the cache since the encode takes seconds.
LARGE=$CACHE/large-progressive-6000x4000.jpg
if [[ ! -f $LARGE ]]; then
  biggest=$(for f in "${CORPUS[@]}"; do
    printf '%s\t%s\n' "$(($(vipsheader -f width "$f") * $(vipsheader -f height "$f")))" "$f"
  done | sort -n | tail -n1 | cut -f2)
  log "generating $LARGE"
  CLEAN+=("$CACHE/large.tmp.jpg")
  vips thumbnail "$biggest" "$CACHE/large.tmp.jpg[Q=90,interlace]" 6000 --height 4000 --size force
  mv "$CACHE/large.tmp.jpg" "$LARGE"
fi
is_progressive "$LARGE" || die "$LARGE is not progressive"

# ---- renderfarm -----------------------------------------------------------
have_rf=1
rf_note=""
build_log=$(mktemp)
CLEAN+=("$build_log")
stale=$(find . -path ./.cache -prune -o \( -name '*.go' -o -name go.mod -o -name go.sum \) \
  -newer "$RF" -print -quit 2>/dev/null || echo missing)
if [[ -z ${BENCH_RENDERFARM:-} && (! -x $RF || -n $stale) ]]; then
  log "building bin/renderfarm"
  if [[ -f Makefile ]] && make -n build >/dev/null 2>&1; then
    build=(make build)
  else
    build=(go build -o bin/renderfarm ./cmd/renderfarm)
  fi
  if ! "${build[@]}" >"$build_log" 2>&1; then
    have_rf=0
    rf_note="build failed (${build[*]}); vipsthumbnail only"
    tail -n 15 "$build_log" >&2
  fi
fi
if ((have_rf)) && [[ ! -x $RF ]]; then have_rf=0 rf_note="no $RF; vipsthumbnail only"; fi

# ---- work area ------------------------------------------------------------
# Inside the cache so the corpus copies can be hard links: distinct names
# keep outputs from colliding, and a hard link is a plain file to any reader.
WORK=$(mktemp -d "$CACHE/run.XXXXXX")
CLEAN+=("$WORK")

# link_set DIR COPIES FILES...: makes COPIES distinctly named copies of
# FILES and prints their paths in order (the index keeps equal basenames from
# different folders apart).
link_set() {
  local dir=$1 copies=$2 k i f dst
  shift 2
  mkdir -p "$dir"
  for ((k = 1; k <= copies; k++)); do
    i=0
    for f in "$@"; do
      i=$((i + 1))
      dst=$dir/c${k}_${i}_${f##*/}
      ln "$f" "$dst" 2>/dev/null || ln -s "$f" "$dst"
      printf '%s\n' "$dst"
    done
  done
}
mapfile -t SRC < <(link_set "$WORK/src" "$REPEAT" "${CORPUS[@]}")
mapfile -t WARM < <(link_set "$WORK/warm" 1 "${CORPUS[@]}")
# The large photo goes mid-list, as it would arrive among ordinary jobs.
half=$((${#CORPUS[@]} / 2))
mapfile -t MEM < <(link_set "$WORK/mem" 1 "${CORPUS[@]:0:half}" "$LARGE" "${CORPUS[@]:half}")
N=${#SRC[@]}

variant() { # KEY SIZE
  printf '{"key":"%s","width":%d,"height":%d,"format":"jpeg","quality":80}' "$1" "$2" "$2"
}
RF_A=(--variant "$(variant a 512)")
RF_B=()
for s in "${SIZES_B[@]}"; do RF_B+=(--variant "$(variant "w$s" "$s")"); done

# ---- one pass of each contender ------------------------------------------
# Each sets PASS_T (wall seconds), PASS_CPU (user + system seconds of all
# its processes) and PASS_RSS (KiB, the largest process); vipsthumbnail also
# PASS_RSS_SUM (KiB, the processes running at once). CPU time is reported
# beside wall time because other tenants' load inflates wall time far more.
OUT=$WORK/out

# rf_pass a|b FILES...
rf_pass() {
  local mode=$1 t0 t1 rc=0
  shift
  local -a flags=("${RF_A[@]}")
  [[ $mode == b ]] && flags=("${RF_B[@]}")
  rm -rf "$OUT" && mkdir -p "$OUT"
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%M %U %S' -o "$WORK/rf.rss" \
    "$RF" render --out "$OUT" --json "${flags[@]}" "$@" >"$WORK/rf.json" 2>"$WORK/rf.err" || rc=$?
  t1=$EPOCHREALTIME
  PASS_T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  read -r PASS_RSS PASS_CPU < <(tail -n1 "$WORK/rf.rss" | awk '{ print $1, $2 + $3 }')
  return "$rc"
}

# Runs inside each xargs child: one vipsthumbnail per size over one batch.
# ">" keeps vipsthumbnail from enlarging small sources, as renderfarm's fit
# "inside" does by default, so both do the same work (1280 px sources at 1600).
# shellcheck disable=SC2317  # called through xargs, which shellcheck cannot see
vt_batch() {
  local s
  for s in $VT_SIZES; do
    /usr/bin/time -f '%M %U %S' -a -o "$VT_RSS" \
      vipsthumbnail --size "${s}x${s}>" -o "$VT_OUT/%s_${s}.jpg[Q=80,optimize_coding,strip]" "$@" || return 255
  done
}
export -f vt_batch

# vt_pass a|b FILES...
vt_pass() {
  local mode=$1 t0 t1 rc=0 sizes=512 procs
  shift
  [[ $mode == b ]] && sizes=${SIZES_B[*]}
  rm -rf "$OUT" "$WORK/vt.rss" && mkdir -p "$OUT"
  t0=$EPOCHREALTIME
  # shellcheck disable=SC2016  # "$@" is for the child bash to expand
  printf '%s\0' "$@" |
    VT_SIZES=$sizes VT_OUT=$OUT VT_RSS=$WORK/vt.rss VIPS_CONCURRENCY=$VT_CONCURRENCY \
      xargs -0 -P "$CORES" -n "$BATCH" bash -c 'vt_batch "$@"' vt_batch || rc=$?
  t1=$EPOCHREALTIME
  PASS_T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  # GNU time adds a text line when a command fails; keep the numbers.
  read -r PASS_RSS PASS_CPU < <(grep -E '^[0-9]+ [0-9.]+ [0-9.]+$' "$WORK/vt.rss" |
    awk '$1 > m { m = $1 } { c += $2 + $3 } END { print m + 0, c + 0 }')
  procs=$(((($# + BATCH - 1) / BATCH) < CORES ? (($# + BATCH - 1) / BATCH) : CORES))
  PASS_RSS_SUM=$((PASS_RSS * procs))
  return "$rc"
}

# outputs_ok EXPECTED: the pass wrote at least that many files.
outputs_ok() {
  local want=$1
  (($(find "$OUT" -type f | wc -l) >= want))
}

nsizes() { if [[ $1 == a ]]; then echo 1; else echo "${#SIZES_B[@]}"; fi; }

# Warm the page cache and check both contenders work before timing anything.
log "warm-up"
for mode in a b; do
  vt_pass "$mode" "${WARM[@]}" || die "vipsthumbnail failed in warm-up ($mode)"
  outputs_ok "$((${#WARM[@]} * $(nsizes "$mode")))" || die "vipsthumbnail wrote too few files ($mode)"
  if ((have_rf)); then
    if ! rf_pass "$mode" "${WARM[@]}"; then
      have_rf=0 rf_note="${RF#"$ROOT"/} render failed in warm-up; vipsthumbnail only"
      tail -n 15 "$WORK/rf.err" >&2
    elif ! outputs_ok "$((${#WARM[@]} * $(nsizes "$mode")))"; then
      log "warning: renderfarm wrote $(find "$OUT" -type f | wc -l) files for" \
        "$((${#WARM[@]} * $(nsizes "$mode"))) expected ($mode)"
    fi
  fi
done
[[ -n $rf_note ]] && log "$rf_note"

# ---- rounds ---------------------------------------------------------------
# Keyed "contender/mode"; values are space-separated, one per round.
declare -A T CPU RSS RSS_SUM LAST RATIO COST
declare -A NAME=([rf]=renderfarm [vt]=vipsthumbnail)
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
rate() { awk -v n="$N" -v t="$1" -v c="$CORES" 'BEGIN { printf "%.2f", n / t / c }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

for ((r = 1; r <= ROUNDS; r++)); do
  # Alternate who goes first, so drift in the machine's load hits both alike.
  order=(vt rf)
  ((r % 2)) && order=(rf vt)
  ((have_rf)) || order=(vt)
  for mode in a b; do
    for c in "${order[@]}"; do
      if [[ $c == rf ]]; then
        rf_pass "$mode" "${SRC[@]}" || { tail -n 15 "$WORK/rf.err" >&2; die "renderfarm failed (round $r, $mode)"; }
        RSS_SUM[$c/$mode]+=" $PASS_RSS"
      else
        vt_pass "$mode" "${SRC[@]}" || die "vipsthumbnail failed (round $r, $mode)"
        RSS_SUM[$c/$mode]+=" $PASS_RSS_SUM"
      fi
      T[$c/$mode]+=" $PASS_T"
      CPU[$c/$mode]+=" $PASS_CPU"
      LAST[$c/$mode]=$PASS_T
      RSS[$c/$mode]+=" $PASS_RSS"
      log "round $r/$ROUNDS ($mode) ${NAME[$c]}: ${PASS_T}s, $(rate "$PASS_T") img/s/core," \
        "CPU ${PASS_CPU}s, peak RSS $(mib "$PASS_RSS") MiB"
    done
  done
  # Ratios are taken within a round, where the passes ran back to back under
  # about the same load, and the table quotes their medians.
  COST[vt]+=" $(div "${LAST[vt/b]}" "${LAST[vt/a]}")"
  if ((have_rf)); then
    RATIO[a]+=" $(div "${LAST[vt/a]}" "${LAST[rf/a]}")"
    RATIO[b]+=" $(div "${LAST[vt/b]}" "${LAST[rf/b]}")"
    COST[rf]+=" $(div "${LAST[rf/b]}" "${LAST[rf/a]}")"
  fi
done

# ---- (c) memory -----------------------------------------------------------
mem_rss="" budget=""
if ((have_rf)); then
  rf_pass b "${MEM[@]}" || { tail -n 15 "$WORK/rf.err" >&2; die "renderfarm failed on the memory pass"; }
  mem_rss=$PASS_RSS
  log "memory pass: ${PASS_T}s, peak RSS $(mib "$mem_rss") MiB"
  budget=$("$RF" tune --json 2>/dev/null |
    grep -oE '"memory_budget_bytes"[[:space:]]*:[[:space:]]*[0-9]+' | grep -oE '[0-9]+$' || true)
fi

# ---- report ---------------------------------------------------------------
median() {
  printf '%s\n' "$@" | sort -g |
    awk '{ a[NR] = $1 } END { if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
# shellcheck disable=SC2086  # word splitting of the per-round lists is the point
med() { median ${1}; }
mark() { # VALUE OP TARGET
  awk -v v="$1" -v t="$3" -v op="$2" 'BEGIN {
    ok = (op == ">=") ? v >= t : (op == "<") ? v < t : 0
    print ok ? "ok" : "MISSED" }'
}

mp_list=()
nprog=0
corpus_lines=()
for f in "${CORPUS[@]}"; do
  w=$(vipsheader -f width "$f") h=$(vipsheader -f height "$f")
  mp=$(awk -v p=$((w * h)) 'BEGIN { printf "%.1f", p / 1e6 }')
  mp_list+=("$mp")
  prog=baseline
  if is_progressive "$f"; then prog=progressive; nprog=$((nprog + 1)); fi
  corpus_lines+=("$(printf '  %-28s %5dx%-5d %5s MP  %s' "${f##*/}" "$w" "$h" "$mp" "$prog")")
done
mp_min=$(printf '%s\n' "${mp_list[@]}" | sort -g | head -n1)
mp_max=$(printf '%s\n' "${mp_list[@]}" | sort -g | tail -n1)

echo
echo "== renderfarm vs vipsthumbnail =="
echo "machine: $CORES cores ($(nproc --all) online), $(vips --version), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "corpus:  ${#CORPUS[@]} JPEG photos from Debian mate-backgrounds, ${mp_min}-${mp_max} MP, $nprog progressive"
printf '%s\n' "${corpus_lines[@]}"
echo "passes:  corpus x$REPEAT = $N source images, $ROUNDS round(s), contenders alternating, medians below"
echo "         renderfarm: one process, $CORES slots;" \
  "vipsthumbnail: $CORES processes x $BATCH files, VIPS_CONCURRENCY=$VT_CONCURRENCY"
[[ -n $rf_note ]] && echo "NOTE:    $rf_note"
echo

f2() { awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }
cpu_ms() { awk -v c="$1" -v n="$N" 'BEGIN { printf "%.0f ms", c * 1000 / n }'; }
row() { printf '%-34s %13s %14s %7s  %s\n' "$@" | sed 's/ *$//'; }
row "" renderfarm vipsthumbnail rf/vt target
for mode in a b; do
  if [[ $mode == a ]]; then echo "(a) 512x512"; else echo "(b) 1600, 800, 200, 64 px"; fi
  vt_cpu=$(med "${CPU[vt/$mode]}")
  rf_rate=- rf_cpu=- rf_mem=- ratio=- cpu_ratio=- target=""
  if ((have_rf)); then
    rf_rate=$(rate "$(med "${T[rf/$mode]}")")
    rf_cpu=$(med "${CPU[rf/$mode]}")
    rf_mem="$(mib "$(med "${RSS[rf/$mode]}")") MiB"
    ratio=$(f2 "$(med "${RATIO[$mode]}")")
    cpu_ratio=$(f2 "$(div "$vt_cpu" "$rf_cpu")")
    [[ $mode == a ]] && target=">= 1.3 $(mark "$ratio" '>=' 1.3)"
    rf_cpu=$(cpu_ms "$rf_cpu")
  fi
  row "  images/s per core" "$rf_rate" "$(rate "$(med "${T[vt/$mode]}")")" "$ratio" "$target"
  row "  CPU time per image" "$rf_cpu" "$(cpu_ms "$vt_cpu")" "$cpu_ratio" ""
  row "  peak RSS, one process" "$rf_mem" "$(mib "$(med "${RSS[vt/$mode]}")") MiB" "" ""
  row "  peak RSS, all processes" "$rf_mem" "~$(mib "$(med "${RSS_SUM[vt/$mode]}")") MiB" "" ""
done

rf_cost=- cost_target="" mem_line="not run (no renderfarm)"
if ((have_rf)); then
  rf_cost=$(f2 "$(med "${COST[rf]}")")
  cost_target="renderfarm < 1.6 $(mark "$rf_cost" '<' 1.6)"
  mem_line="peak RSS $(mib "$mem_rss") MiB, "
  if [[ -z $budget ]]; then
    mem_line+="budget unknown (tune --json gave no memory_budget_bytes)"
  elif ((mem_rss * 1024 < budget)); then
    mem_line+="budget $(mib "$((budget / 1024))") MiB (tune --json): under budget"
  else
    mem_line+="budget $(mib "$((budget / 1024))") MiB (tune --json): OVER budget"
  fi
fi
row "(b)/(a) time per source image" "$rf_cost" "$(f2 "$(med "${COST[vt]}")")" "" "$cost_target"
echo "(c) memory: (b) over the corpus + one $(vipsheader -f width "$LARGE")x$(vipsheader -f height "$LARGE") progressive JPEG"
echo "  renderfarm: $mem_line"
echo
echo "rf/vt: how many times renderfarm beats vipsthumbnail (> 1: renderfarm ahead)."
echo "Wall-time ratios, rf/vt and (b)/(a), are medians of per-round ratios: each"
echo "round's passes ran back to back under about the same load."
