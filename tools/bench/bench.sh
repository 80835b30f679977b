#!/usr/bin/env bash
# bench.sh is `make bench`: renderfarm's render engine side by side with
# libvips' own vipsthumbnail, with Pillow (the stack a Python team would
# run) and with the floor the hardware allows (libjpeg-turbo's own decode at
# the same DCT scale), in one run, on real photographs.
#
# Usage: tools/bench/bench.sh            (or `make bench`)
#   BENCH_ROUNDS=N   rounds, medians are quoted over them (default 5)
#   BENCH_REPEAT=N   copies of the corpus per pass (default 2: a pass lasts
#                    seconds, so process start-up and tail effects stay small,
#                    and 5 rounds of 11 passes stay within about 10 minutes)
#   BENCH_QUICK=1    smoke run: 1 round, corpus x1
#   BENCH_VT_CONCURRENCY=N  libvips threads per vipsthumbnail process
#                    (default 1: the parallelism is one process per core)
#   BENCH_RENDERFARM=PATH  time this renderfarm binary instead of building
#                    bin/renderfarm (e.g. to compare two builds)
#
# Workloads: (a) one 512x512 JPEG Q80; (b) 1600/800/200/64 px JPEG Q80;
# (c) the built-in `gallery` recipe (64/200/800/1600 px wide, webp and jpeg).
# Contenders:
#   renderfarm  `renderfarm render`, one process, slots = cores
#   vipsthumbnail  one process per core, files batched ((a) and (b) only)
#   Pillow      tools/bench/pillow_peer.py under /usr/bin/python3 (Debian's
#               python3-pil): draft(), decode once, cascade, one process per
#               core; the same variant JSON and recipes.yaml
#   floor       `djpeg -scale M/8 -outfile /dev/null`, M/8 the DCT scale
#               renderfarm chose for that file and workload (read from its
#               --json in the warm-up), one process per core: the decode
#               alone, which every contender must do
# Output bytes and SSIM against a reference downscale (tools/bench/quality,
# one routine for every side) are measured on the warm-up's outputs.
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
REPEAT=${BENCH_REPEAT:-2}
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
command -v djpeg >/dev/null || die "djpeg is missing (scripts/setup.sh installs libjpeg-turbo-progs)"
PY=/usr/bin/python3 # Debian's, with python3-pil; the first python3 on PATH may lack it
"$PY" -c 'import PIL, yaml' 2>/dev/null || die "Pillow is missing (scripts/setup.sh installs python3-pil)"

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
RF_C=(--recipe gallery)
# Variant flags per workload: renderfarm and the Pillow peer take the same.
flags_for() { case $1 in a) FLAGS=("${RF_A[@]}") ;; b) FLAGS=("${RF_B[@]}") ;; c) FLAGS=("${RF_C[@]}") ;; esac }

log "building tools/bench/quality"
go build -o "$WORK/benchquality" ./tools/bench/quality || die "cannot build tools/bench/quality"

# ---- one pass of each contender ------------------------------------------
# Each sets PASS_T (wall seconds), PASS_CPU (user + system seconds of all
# its processes) and PASS_RSS (KiB, the largest process); vipsthumbnail also
# PASS_RSS_SUM (KiB, the processes running at once). CPU time is reported
# beside wall time because other tenants' load inflates wall time far more.
OUT=$WORK/out

# timed NAME CMD...: runs CMD (stdin passed through) under GNU time, its
# stdout in $WORK/NAME.json and stderr in NAME.err, and sets PASS_T,
# PASS_RSS and PASS_CPU. GNU time counts the CPU of every child CMD reaped.
timed() {
  local name=$1 t0 t1 rc=0
  shift
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%M %U %S' -o "$WORK/$name.rss" "$@" >"$WORK/$name.json" 2>"$WORK/$name.err" || rc=$?
  t1=$EPOCHREALTIME
  PASS_T=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  # GNU time adds a text line when a command fails; keep the numbers.
  read -r PASS_RSS PASS_CPU < <(grep -E '^[0-9]+ [0-9.]+ [0-9.]+$' "$WORK/$name.rss" | awk '{ print $1, $2 + $3 }')
  return "$rc"
}

# rf_pass a|b|c FILES...
rf_pass() {
  local mode=$1
  shift
  flags_for "$mode"
  rm -rf "$OUT" && mkdir -p "$OUT"
  timed rf "$RF" render --out "$OUT" --json "${FLAGS[@]}" "$@"
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

# pil_pass a|b|c FILES...: the Pillow peer, one process per core.
pil_pass() {
  local mode=$1
  shift
  flags_for "$mode"
  rm -rf "$OUT" && mkdir -p "$OUT"
  timed pil "$PY" tools/bench/pillow_peer.py --out "$OUT" --procs "$CORES" "${FLAGS[@]}" "$@"
}

# The decode floor's DCT scale for each file and workload: the scale M/8
# renderfarm chose, from its --json, keyed "mode/<index>_<name>" (the copy
# prefix stripped, so every copy of a photo shares its warm-up's entry).
declare -A SCALE
record_scales() { # MODE, after a renderfarm pass
  local mode=$1 scale src
  while IFS=$'\t' read -r scale src; do
    src=${src##*/}
    SCALE[$mode/${src#c*_}]=$scale
  done < <(jq -r '.files[] | "\(.result.scale)\t\(.source)"' "$WORK/rf.json")
}

# Runs inside each xargs child: djpeg over pairs of SCALE FILE.
# shellcheck disable=SC2317  # called through xargs
fl_batch() {
  while (($# >= 2)); do
    djpeg -scale "$1" -outfile /dev/null "$2" || return 255
    shift 2
  done
}
export -f fl_batch

# fl_pass a|b|c FILES...: the decode floor, one process per core.
fl_pass() {
  local mode=$1 f k
  shift
  local -a pairs=()
  for f in "$@"; do
    k=${f##*/}
    k=$mode/${k#c*_}
    [[ -n ${SCALE[$k]:-} ]] || { log "no scale recorded for $k"; return 1; }
    pairs+=("${SCALE[$k]}" "$f")
  done
  # Not a pipe: timed must run in this shell to set PASS_*.
  # shellcheck disable=SC2016  # "$@" is for the child bash to expand
  timed fl xargs -0 -P "$CORES" -n $((2 * BATCH)) bash -c 'fl_batch "$@"' fl_batch < <(printf '%s\0' "${pairs[@]}")
}

# outputs_ok EXPECTED: the pass wrote at least that many files.
outputs_ok() {
  local want=$1
  (($(find "$OUT" -type f | wc -l) >= want))
}

nsizes() { case $1 in a) echo 1 ;; b) echo "${#SIZES_B[@]}" ;; c) echo 8 ;; esac; }
MODES=(a b c)
# contenders MODE: who runs that workload (vipsthumbnail has no recipes;
# the floor needs renderfarm's shrinks).
contenders() {
  local -a who=()
  ((have_rf)) && who+=(rf)
  [[ $1 != c ]] && who+=(vt)
  ((have_rf)) && who+=(fl)
  who+=(pil)
  echo "${who[@]}"
}
run_pass() { # CONTENDER MODE FILES...
  local c=$1
  shift
  case $c in rf) rf_pass "$@" ;; vt) vt_pass "$@" ;; fl) fl_pass "$@" ;; pil) pil_pass "$@" ;; esac
}

# Warm the page cache and check every contender works before timing
# anything; the warm-up's outputs (the corpus once) are what bytes and SSIM
# are measured on, off the clock.
log "warm-up"
declare -A QUAL # "contender/mode/format" -> "bytes ssim_mean ssim_min"
for mode in "${MODES[@]}"; do
  qual_dirs=()
  for c in $(contenders "$mode"); do
    if [[ $c == rf ]]; then
      if ! rf_pass "$mode" "${WARM[@]}"; then
        have_rf=0 rf_note="${RF#"$ROOT"/} render failed in warm-up; vipsthumbnail and Pillow only"
        tail -n 15 "$WORK/rf.err" >&2
        continue
      fi
      record_scales "$mode"
    else
      run_pass "$c" "$mode" "${WARM[@]}" || die "$c failed in warm-up ($mode)"
    fi
    [[ $c == fl ]] && continue
    if ! outputs_ok "$((${#WARM[@]} * $(nsizes "$mode")))"; then
      log "warning: $c wrote $(find "$OUT" -type f | wc -l) files for" \
        "$((${#WARM[@]} * $(nsizes "$mode"))) expected ($mode)"
    fi
    mv "$OUT" "$WORK/q-$c-$mode"
    qual_dirs+=("$c=$WORK/q-$c-$mode")
  done
  "$WORK/benchquality" -src "$WORK/warm" "${qual_dirs[@]}" >"$WORK/quality-$mode.json" ||
    die "scoring the warm-up's outputs failed ($mode)"
  while read -r c f bytes mean mn; do
    QUAL[$c/$mode/$f]="$bytes $mean $mn"
  done < <(jq -r '"\(.contender) \(.format) \(.bytes) \(.ssim_mean) \(.ssim_min)"' "$WORK/quality-$mode.json")
  rm -rf "$WORK"/q-*-"$mode"
done
[[ -n $rf_note ]] && log "$rf_note"

# ---- rounds ---------------------------------------------------------------
# Keyed "contender/mode"; values are space-separated, one per round.
declare -A T CPU RSS RSS_SUM LAST LAST_CPU RATIO COST
declare -A NAME=([rf]=renderfarm [vt]=vipsthumbnail [fl]="djpeg floor" [pil]=Pillow)
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
rate() { awk -v n="$N" -v t="$1" -v c="$CORES" 'BEGIN { printf "%.2f", n / t / c }'; }
mib() { awk -v k="$1" 'BEGIN { printf "%.0f", k / 1024 }'; }

for ((r = 1; r <= ROUNDS; r++)); do
  for mode in "${MODES[@]}"; do
    # Rotate who goes first, so drift in the machine's load hits all alike.
    read -r -a order <<<"$(contenders "$mode")"
    k=$(((r - 1) % ${#order[@]}))
    order=("${order[@]:k}" "${order[@]:0:k}")
    for c in "${order[@]}"; do
      run_pass "$c" "$mode" "${SRC[@]}" || {
        tail -n 15 "$WORK/$c.err" >&2 2>/dev/null || true
        die "${NAME[$c]} failed (round $r, $mode)"
      }
      if [[ $c == vt ]]; then RSS_SUM[$c/$mode]+=" $PASS_RSS_SUM"; else RSS_SUM[$c/$mode]+=" $PASS_RSS"; fi
      T[$c/$mode]+=" $PASS_T"
      CPU[$c/$mode]+=" $PASS_CPU"
      LAST[$c/$mode]=$PASS_T
      LAST_CPU[$c/$mode]=$PASS_CPU
      RSS[$c/$mode]+=" $PASS_RSS"
      log "round $r/$ROUNDS ($mode) ${NAME[$c]}: ${PASS_T}s, $(rate "$PASS_T") img/s/core," \
        "CPU ${PASS_CPU}s, peak RSS $(mib "$PASS_RSS") MiB"
    done
  done
  # Ratios are taken within a round, where the passes ran back to back under
  # about the same load, and the tables quote their medians. Wall-time
  # ratios compare throughput; the floor is compared by CPU time too.
  COST[vt]+=" $(div "${LAST[vt/b]}" "${LAST[vt/a]}")"
  for mode in "${MODES[@]}"; do
    ((have_rf)) || continue
    RATIO[pil/fl/$mode]+=" $(div "${LAST_CPU[pil/$mode]}" "${LAST_CPU[fl/$mode]}")"
    [[ $mode != c ]] && RATIO[$mode]+=" $(div "${LAST[vt/$mode]}" "${LAST[rf/$mode]}")"
    RATIO[rf/pil/$mode]+=" $(div "${LAST[pil/$mode]}" "${LAST[rf/$mode]}")"
    RATIO[rf/fl/$mode]+=" $(div "${LAST_CPU[rf/$mode]}" "${LAST_CPU[fl/$mode]}")"
    RATIO[rf/flw/$mode]+=" $(div "${LAST[rf/$mode]}" "${LAST[fl/$mode]}")"
  done
  ((have_rf)) && COST[rf]+=" $(div "${LAST[rf/b]}" "${LAST[rf/a]}")"
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

# ---- renderfarm vs Pillow and the decode floor -------------------------------
# qual C MODE FORMAT FIELD(1 bytes, 2 mean, 3 min)
qual() {
  local q=${QUAL[$1/$2/$3]:--}
  awk -v q="$q" -v i="$4" 'BEGIN { if (q == "-") print "-"; else { split(q, a, " "); print a[i] } }'
}
kib() { awk -v b="$1" 'BEGIN { if (b == "-") print "-"; else printf "%.0f KiB", b / 1024 }'; }
f4() { awk -v v="$1" 'BEGIN { if (v == "-") print "-"; else printf "%.4f", v }'; }
row2() { printf '%-30s %11s %11s %11s %9s %9s %9s  %s\n' "$@" | sed 's/ *$//'; }
echo
echo "== renderfarm vs Pillow and the JPEG decode floor =="
echo "Pillow:  $("$PY" -c 'import PIL; print(PIL.__version__)') (Debian python3-pil), tools/bench/pillow_peer.py: draft(), decode once,"
echo "         cascade, LANCZOS reducing_gap 2, $CORES processes (multiprocessing), same quality and webp method"
echo "floor:   $(djpeg -version 2>&1 | head -n1), djpeg -scale M/8 -outfile /dev/null, M/8 = renderfarm's DCT scale"
echo "         for that file and workload, $CORES processes: the decode every contender must do, and nothing else;"
echo "         at 1/8 renderfarm leaves out a progressive file's unread AC scans, so there it can beat the floor"
echo "quality: bytes and SSIM (luma, 11x11 Gaussian) of the warm-up's outputs (corpus x1) against libvips'"
echo "         Lanczos3 downscale of the full-size decode to the same size (tools/bench/quality)"
if ((!have_rf)); then
  echo "NOTE:    $rf_note; no floor (its scales come from renderfarm)"
fi
echo
row2 "" renderfarm Pillow floor rf/Pil rf/floor Pil/floor target
for mode in "${MODES[@]}"; do
  case $mode in
    a) echo "(a) 512x512 JPEG Q80" ;;
    b) echo "(b) 1600, 800, 200, 64 px JPEG Q80" ;;
    c) echo "(c) gallery recipe: 64, 200, 800, 1600 px wide, webp + jpeg" ;;
  esac
  rfr=- rfc=- flr=- flc=- r_pil=- r_fl=- r_flw=- r_pilfl=- tp="" tf=""
  if ((have_rf)); then
    rfr=$(rate "$(med "${T[rf/$mode]}")") rfc=$(cpu_ms "$(med "${CPU[rf/$mode]}")")
    flr=$(rate "$(med "${T[fl/$mode]}")") flc=$(cpu_ms "$(med "${CPU[fl/$mode]}")")
    r_pil=$(f2 "$(med "${RATIO[rf/pil/$mode]}")")
    r_fl=$(f2 "$(med "${RATIO[rf/fl/$mode]}")") r_flw=$(f2 "$(med "${RATIO[rf/flw/$mode]}")")
    r_pilfl=$(f2 "$(med "${RATIO[pil/fl/$mode]}")")
    case $mode in
      a) tp=">= 1.05 $(mark "$r_pil" '>=' 1.05)" tf="<= 1.15 $(mark "$r_fl" '<' 1.1501)" ;;
      b) tp=">= 2.0 $(mark "$r_pil" '>=' 2.0)" tf="<= 1.6 $(mark "$r_fl" '<' 1.6001)" ;;
      c) tp=">= 2.0 $(mark "$r_pil" '>=' 2.0)" ;;
    esac
  fi
  row2 "  images/s per core" "$rfr" "$(rate "$(med "${T[pil/$mode]}")")" "$flr" "$r_pil" "$r_flw" "" "rf/Pil $tp"
  row2 "  CPU time per image" "$rfc" "$(cpu_ms "$(med "${CPU[pil/$mode]}")")" "$flc" "" "$r_fl" "$r_pilfl" "${tf:+rf/floor (CPU) $tf}"
  row2 "  peak RSS, largest process" "$( ((have_rf)) && echo "$(mib "$(med "${RSS[rf/$mode]}")") MiB" || echo -)" \
    "$(mib "$(med "${RSS[pil/$mode]}")") MiB" "" "" "" "" ""
  formats=(all)
  [[ $mode == c ]] && formats=(webp jpeg all)
  for f in "${formats[@]}"; do
    rb=$(qual rf "$mode" "$f" 1) pb=$(qual pil "$mode" "$f" 1)
    br=- note=""
    [[ $rb != - && $pb != - ]] && br=$(f2 "$(div "$rb" "$pb")")
    if [[ $mode == c && $f == all && $br != - ]]; then
      note="bytes within 5%: $(awk -v r="$br" 'BEGIN { print (r <= 1.05) ? "ok" : "MISSED" }')"
    fi
    row2 "  output bytes ($f)" "$(kib "$rb")" "$(kib "$pb")" "" "$br" "" "" "$note"
    rm=$(qual rf "$mode" "$f" 2) pm=$(qual pil "$mode" "$f" 2)
    note=""
    if [[ $mode == c && $f == all && $rm != - && $pm != - ]]; then
      note="quality no worse: $(awk -v a="$rm" -v b="$pm" 'BEGIN { print (a >= b - 0.0005) ? "ok" : "MISSED" }')"
    fi
    row2 "  SSIM mean / min ($f)" "$(f4 "$rm")/$(f4 "$(qual rf "$mode" "$f" 3)" | cut -c2-)" \
      "$(f4 "$pm")/$(f4 "$(qual pil "$mode" "$f" 3)" | cut -c2-)" "" "" "" "" "$note"
  done
done
echo
echo "rf/Pil: Pillow's wall time over renderfarm's, per round (> 1: renderfarm ahead); images/s"
echo "rf/floor: renderfarm's CPU time over the floor's (CPU row) and wall time (images/s row);"
echo "Pil/floor likewise for Pillow's CPU. SSIM: 1 is identical to the reference; \"no worse\""
echo "allows 0.0005. vipsthumbnail's bytes and SSIM: $(qual vt a all 1) B / $(f4 "$(qual vt a all 2)") (a), $(qual vt b all 1) B / $(f4 "$(qual vt b all 2)") (b)."
