#!/usr/bin/env bash
# ab.sh compares two renderfarm builds on `make bench`'s photos, interleaved
# round by round, to decide whether an engine change is a speed-up:
#
#   tools/bench/ab.sh OLD_BINARY NEW_BINARY [a|b|c]...   (default: b c)
#   AB_ROUNDS=N (default 7)  AB_REPEAT=N copies of the corpus (default 1)
#
# Workloads as in bench.sh: (a) 512 px JPEG, (b) 1600/800/200/64 JPEG,
# (c) the gallery recipe. Each round runs both binaries on each workload,
# the order alternating; it prints the medians of wall and CPU seconds and
# of the per-round ratios old/new (> 1: the new build is faster). The corpus
# is bench.sh's (run `BENCH_QUICK=1 make bench` once to fetch it).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
(($# >= 2)) || { sed -n '2,12p' "$0" >&2; exit 2; }
OLD=$(realpath "$1") NEW=$(realpath "$2")
shift 2
MODES=("$@")
((${#MODES[@]})) || MODES=(b c)
ROUNDS=${AB_ROUNDS:-7}
REPEAT=${AB_REPEAT:-1}
CORPUS_DIR=$ROOT/.cache/bench/mate-backgrounds
[[ -f $CORPUS_DIR/.unpacked ]] || { echo "ab: no corpus in $CORPUS_DIR: run BENCH_QUICK=1 make bench once" >&2; exit 1; }

WORK=$(mktemp -d /tmp/bench-ab.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
SRC=()
k=0
while IFS= read -r -d '' f; do
  [[ $(vipsheader -f vips-loader "$f" 2>/dev/null) == jpegload ]] || continue
  for ((c = 1; c <= REPEAT; c++)); do
    k=$((k + 1))
    ln -s "$f" "$WORK/c${c}_${k}_${f##*/}"
    SRC+=("$WORK/c${c}_${k}_${f##*/}")
  done
done < <(find "$CORPUS_DIR" -type f \( -iname '*.jpg' -o -iname '*.jpeg' \) -print0 | sort -z)

variant() { printf '{"key":"%s","width":%d,"height":%d,"format":"jpeg","quality":80}' "$1" "$2" "$2"; }
flags() {
  FLAGS=()
  case $1 in
    a) FLAGS=(--variant "$(variant a 512)") ;;
    b) for s in 1600 800 200 64; do FLAGS+=(--variant "$(variant "w$s" "$s")"); done ;;
    c) FLAGS=(--recipe gallery) ;;
  esac
}

# pass BINARY MODE: prints "wall cpu" seconds.
pass() {
  local t0 t1
  flags "$2"
  rm -rf "$WORK/out"
  t0=$EPOCHREALTIME
  /usr/bin/time -f '%U %S' -o "$WORK/time" "$1" render --quiet --out "$WORK/out" "${FLAGS[@]}" "${SRC[@]}" >/dev/null
  t1=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" -v c="$(tail -n1 "$WORK/time")" 'BEGIN { split(c, x, " "); printf "%.3f %.3f\n", b - a, x[1] + x[2] }'
}

median() { sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

for m in "${MODES[@]}"; do pass "$OLD" "$m" >/dev/null && pass "$NEW" "$m" >/dev/null; done # warm-up
declare -A W C RW RC
for ((r = 1; r <= ROUNDS; r++)); do
  for m in "${MODES[@]}"; do
    order=(old new)
    ((r % 2)) || order=(new old)
    for who in "${order[@]}"; do
      bin=$OLD
      [[ $who == new ]] && bin=$NEW
      read -r w c < <(pass "$bin" "$m")
      W[$who/$m]+="$w " C[$who/$m]+="$c "
      eval "last_w_$who=$w last_c_$who=$c"
    done
    # shellcheck disable=SC2154  # set by the eval above
    RW[$m]+="$(awk -v a="$last_w_old" -v b="$last_w_new" 'BEGIN { printf "%.4f", a / b }') "
    # shellcheck disable=SC2154
    RC[$m]+="$(awk -v a="$last_c_old" -v b="$last_c_new" 'BEGIN { printf "%.4f", a / b }') "
    echo "ab: round $r/$ROUNDS ($m): old ${last_w_old}s/${last_c_old}s CPU, new ${last_w_new}s/${last_c_new}s CPU" >&2
  done
done
echo "ab: ${#SRC[@]} sources, $ROUNDS rounds, load average $(cut -d' ' -f1-3 /proc/loadavg)"
for m in "${MODES[@]}"; do
  med() { tr ' ' '\n' <<<"$1" | grep . | median; }
  printf 'ab (%s): wall old %s s new %s s, old/new %s (rounds: %s); CPU old %s s new %s s, old/new %s (rounds: %s)\n' "$m" \
    "$(med "${W[old/$m]}")" "$(med "${W[new/$m]}")" "$(med "${RW[$m]}")" "${RW[$m]% }" \
    "$(med "${C[old/$m]}")" "$(med "${C[new/$m]}")" "$(med "${RC[$m]}")" "${RC[$m]% }"
done
