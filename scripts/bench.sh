#!/usr/bin/env bash
# Measures the auditrail binary from outside the process on a cached,
# seeded corpus of about 1 GB written by kube-apiserver's audit backend:
# wall time until every event is acknowledged (--once), CPU seconds, peak
# RSS. Usage: scripts/bench.sh [runs]   (CORPUS_DIR to move the cache)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
corpus=${CORPUS_DIR:-$PWD/testdata-cache/corpus-1g}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -f "$corpus/audit.log" ]; then
  echo "generating corpus in $corpus (once)"
  (cd e2e && go run ./cmd/gencorpus -dir "$corpus" -mb 1024 -maxsize-mb 100 -seed 11)
fi
go build -trimpath -o "$work/auditrail" ./cmd/auditrail
bytes=$(cat "$corpus"/* | wc -c)
events=$(cat "$corpus"/* | wc -l)
echo "corpus: $bytes bytes, $events events"
printf '%-8s %6s %8s %8s %10s %10s %10s\n' sink wall_s cpu_s MB/s events/s cpu_s/GB rss_MiB
for sink in discard file; do
  for i in $(seq "$runs"); do
    rm -rf "$work/state" "$work/out"
    cat > "$work/cfg.yaml" <<CFG
auditLogPath: $corpus/audit.log
stateDir: $work/state
log: {level: warn}
sinks:
  - name: s
    type: $sink
$( [ "$sink" = file ] && echo "    file: {directory: $work/out}" )
CFG
    cat "$corpus"/* > /dev/null # warm the page cache
    /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$work/auditrail" run --once --config "$work/cfg.yaml"
    read -r wall user sys rss < "$work/time"
    awk -v s="$sink" -v w="$wall" -v u="$user" -v y="$sys" -v r="$rss" -v b="$bytes" -v e="$events" 'BEGIN {
      c = u + y; printf "%-8s %6.2f %8.2f %8.0f %10.0f %10.2f %10.0f\n", s, w, c, b/1e6/w, e/w, c/(b/1e9), r/1024 }'
  done
done
