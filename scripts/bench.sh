#!/usr/bin/env bash
# Measures the auditrail binary from outside the process on a cached,
# seeded corpus of about 1 GB written by kube-apiserver's audit backend:
# wall time until every event is acknowledged (--once), CPU seconds, peak
# RSS. The network sinks ship to servers on 127.0.0.1 started fresh for
# every run (MinIO, the ES API test server, a 3-broker kfake cluster); the
# CPU measured is the agent's alone.
# Usage: scripts/bench.sh [runs]
#   CORPUS_DIR moves the cache; CORPUS_BODIES=random fills request and
#   response bodies with random characters, a worst case for compression,
#   instead of Kubernetes objects, CORPUS_BODIES=words with words and hex
#   strings (they compress 4.7 times; 3.7% of requests Secret writes);
#   PIPELINES picks pipelines (discard file
#   s3 elasticsearch kafka all; kafka-none all-kafka-none: Kafka
#   without compression, as Fluent Bit ships by default; kafka-lz4
#   all-kafka-lz4, kafka-snappy all-kafka-snappy: Kafka with lz4 or
#   snappy); PROFILE_DIR
#   writes a CPU profile per run there.
#        scripts/bench.sh sustain [MB/s] [MB]
#        scripts/bench.sh latency [events/s] [duration]
#        scripts/bench.sh live MB/s [duration] [runs]
#        scripts/bench.sh idle [duration] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."

# scripts/bench.sh live MB/s [duration] [runs], scripts/bench.sh idle
# [duration] [runs]: the agent follows a live log to which the cached
# corpus is appended at MB/s through lumberjack (one write per event,
# rotating every 100 MB), or an empty one, into S3 (zstd), Elasticsearch
# and Kafka at default batch settings (every flush interval 1 s), the
# servers in another process (e2e/cmd/live). LIVE_WRITER=apiserver
# generates the events with kube-apiserver's audit backend instead (it
# needs more CPU than the agent: on a loaded 2-core machine it reaches
# about 3 MB/s). Prints each run and the median of each column: the
# agent's CPU from the first write until every event is in every sink,
# as a share of a core and per GB, its peak RSS, and per sink the p99 of
# append -> acknowledged. CORPUS_BODIES=words: bodies of words and hex
# (3.7% of requests Secret writes); PROFILE_DIR keeps a CPU profile of
# each run there.
if [ "${1:-}" = live ] || [ "${1:-}" = idle ]; then
  if [ "$1" = idle ]; then rate=0; shift; else rate=${2:?usage: scripts/bench.sh live MB/s [duration] [runs]}; shift 2; fi
  duration=${1:-60s}
  runs=${2:-3}
  bodies=${CORPUS_BODIES:-k8s}
  secrets=0
  if [ "$bodies" = words ]; then secrets=37; fi
  corpus=${CORPUS_DIR:-$PWD/testdata-cache/corpus-1g-$bodies}
  src=(-corpus "$corpus")
  if [ "${LIVE_WRITER:-}" = apiserver ] || [ "$rate" = 0 ]; then
    src=()
  elif [ ! -f "$corpus/audit.log" ]; then
    echo "generating corpus in $corpus (once)"
    (cd e2e && go run ./cmd/gencorpus -dir "$corpus" -mb 1024 -maxsize-mb 100 -seed 11 -random-bodies="$([ "$bodies" = random ] && echo true || echo false)" \
      -word-bodies="$([ "$bodies" = words ] && echo true || echo false)" -secret-writes-permille "$secrets")
  fi
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  ./scripts/tools.sh > /dev/null
  export AUDITRAIL_MINIO=${AUDITRAIL_MINIO:-$PWD/.tools/bin/minio}
  ./scripts/build.sh "$work/auditrail" bench
  (cd e2e && go build -o "$work/live" ./cmd/live)
  for i in $(seq "$runs"); do
    prof=()
    if [ -n "${PROFILE_DIR:-}" ]; then mkdir -p "$PROFILE_DIR"; prof=(-cpuprofile "$PROFILE_DIR/live-$bodies-$rate-$i.pprof"); fi
    "$work/live" -bin "$work/auditrail" -mbps "$rate" -duration "$duration" -bodies "$bodies" \
      -secret-writes-permille "$secrets" "${src[@]}" "${prof[@]}" $([ "$i" = 1 ] && echo -header) | tee -a "$work/rows"
  done
  # The median of each column over the runs.
  awk -F'\t' '$1 != "bodies" { n++; for (c = 2; c <= NF; c++) v[c, n] = $c; nf = NF; b = $1 }
    END {
      printf "median"
      for (c = 2; c <= nf; c++) {
        k = 0; for (i = 1; i <= n; i++) if (v[c, i] != "-") a[++k] = v[c, i] + 0
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
        printf "\t%s", k ? a[int((k + 1) / 2)] : "-"
      }
      printf "\n"
    }' "$work/rows"
  exit
fi

# scripts/bench.sh latency [rate] [duration]: latency at a fixed rate with
# all three sinks (e2e/cmd/latency).
if [ "${1:-}" = latency ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  ./scripts/tools.sh
  ./scripts/build.sh "$work/auditrail" bench
  (cd e2e && go run ./cmd/latency -bin "$work/auditrail" -rate "${2:-5000}" -duration "${3:-60s}")
  exit
fi

# scripts/bench.sh sustain [MB/s] [MB]: the agent follows a live log that
# e2e/cmd/replay appends the corpus to at a fixed rate (rotating every
# 100 MB), with all three sinks at their default batch sizes; reports
# whether it kept up and what it cost.
mode=bulk
if [ "${1:-}" = sustain ]; then
  mode=sustain
  rate=${2:-116}
  limit=${3:-0}
  set -- 1
fi

runs=${1:-3}
bodies=${CORPUS_BODIES:-k8s}
corpus=${CORPUS_DIR:-$PWD/testdata-cache/corpus-1g-$bodies}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if [ ! -f "$corpus/audit.log" ]; then
  echo "generating corpus in $corpus (once)"
  (cd e2e && go run ./cmd/gencorpus -dir "$corpus" -mb 1024 -maxsize-mb 100 -seed 11 -random-bodies="$([ "$bodies" = random ] && echo true || echo false)" \
    -word-bodies="$([ "$bodies" = words ] && echo true || echo false)" -secret-writes-permille "$([ "$bodies" = words ] && echo 37 || echo 0)")
fi
./scripts/build.sh "$work/auditrail" bench
./scripts/tools.sh
(cd e2e && go build -o "$work/sinkservers" ./cmd/sinkservers)
bytes=$(cat "$corpus"/* | wc -c)
events=$(cat "$corpus"/* | wc -l)
echo "corpus: $bytes bytes, $events events"

# sink_yaml NAME prints the sinks: entries for a pipeline.
sink_yaml() {
  case $1 in
  discard) printf '  - {name: s, type: discard}\n' ;;
  file) printf '  - {name: s, type: file, file: {directory: %s}}\n' "$work/out" ;;
  s3) cat <<Y
  - name: s3
    type: s3
    batch: {flushInterval: 1s}
    s3: {bucket: bench, endpoint: "$S3_ENDPOINT", forcePathStyle: true, region: us-east-1,
         accessKeyID: "$S3_ACCESS_KEY", secretAccessKey: "$S3_SECRET_KEY",
         cluster: bench, node: node-1, objectLock: {mode: GOVERNANCE, retention: 1h}}
Y
  ;;
  elasticsearch) printf '  - {name: es, type: elasticsearch, elasticsearch: {addresses: ["%s"]}}\n' "$ES_URL" ;;
  kafka) printf '  - {name: kafka, type: kafka, kafka: {brokers: ["%s"], topic: k8s-audit}}\n' "${KAFKA_BROKERS//,/\",\"}" ;;
  kafka-none) printf '  - {name: kafka, type: kafka, kafka: {brokers: ["%s"], topic: k8s-audit, compression: none}}\n' "${KAFKA_BROKERS//,/\",\"}" ;;
  kafka-lz4) printf '  - {name: kafka, type: kafka, kafka: {brokers: ["%s"], topic: k8s-audit, compression: lz4}}\n' "${KAFKA_BROKERS//,/\",\"}" ;;
  kafka-snappy) printf '  - {name: kafka, type: kafka, kafka: {brokers: ["%s"], topic: k8s-audit, compression: snappy}}\n' "${KAFKA_BROKERS//,/\",\"}" ;;
  all) sink_yaml s3; sink_yaml elasticsearch; sink_yaml kafka ;;
  all-kafka-none) sink_yaml s3; sink_yaml elasticsearch; sink_yaml kafka-none ;;
  all-kafka-lz4) sink_yaml s3; sink_yaml elasticsearch; sink_yaml kafka-lz4 ;;
  all-kafka-snappy) sink_yaml s3; sink_yaml elasticsearch; sink_yaml kafka-snappy ;;
  esac
}

# start_servers starts MinIO, the Elasticsearch API test server and a kfake
# cluster on 127.0.0.1 and exports their addresses; $servers is its pid.
start_servers() {
  "$work/sinkservers" -env "$work/env" -dir "$work" > "$work/servers.log" 2>&1 &
  servers=$!
  for _ in $(seq 300); do [ -s "$work/env" ] && break; sleep 0.1; done
  set -a; . "$work/env"; set +a
}

# before_run NAME warms the page cache and sets prof to the flags that
# write run NAME's CPU profile into PROFILE_DIR, if set.
before_run() {
  cat "$corpus"/* > /dev/null
  prof=()
  if [ -n "${PROFILE_DIR:-}" ]; then mkdir -p "$PROFILE_DIR"; prof=(--cpuprofile "$PROFILE_DIR/$1.pprof"); fi
}

if [ "$mode" = sustain ]; then
  (cd e2e && go build -o "$work/replay" ./cmd/replay)
  start_servers
  mkdir -p "$work/live"
  port=$((20000 + RANDOM % 20000))
  cat > "$work/cfg.yaml" <<CFG
auditLogPath: $work/live/audit.log
stateDir: $work/state
log: {level: warn}
http: {address: "127.0.0.1:$port"}
sinks:
$(sink_yaml all)
CFG
  before_run sustain
  /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$work/auditrail" run --config "$work/cfg.yaml" "${prof[@]}" &
  agent=$!
  trap 'pkill -P "$agent"; kill "$servers" 2> /dev/null; rm -rf "$work"' EXIT
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/healthz" > /dev/null && break; sleep 0.1; done
  "$work/replay" -from "$corpus" -live "$work/live/audit.log" -mbps "$rate" -mb "$limit" | tee "$work/replay.out"
  stopped=$(date +%s.%N)
  lag() { curl -fs "http://127.0.0.1:$port/metrics" | awk '/^auditrail_sink_lag_bytes/ {s += $2} END {print s + 0}'; }
  sleep 1.5 # a scan and a checkpoint see the final size
  while [ "$(lag)" != 0 ]; do sleep 0.2; done
  drained=$(date +%s.%N)
  curl -fs "http://127.0.0.1:$port/metrics" | grep -E '^auditrail_(reader_blocks|sink_batches|sink_bytes)_total' || true
  pkill -TERM -P "$agent"; wait "$agent" || true # the agent, under time
  kill "$servers"; wait "$servers" || true
  read -r wall user sys rss < <(tail -1 "$work/time")
  bytes=$(awk '{print $2}' "$work/replay.out")
  awk -v w="$wall" -v u="$user" -v y="$sys" -v r="$rss" -v b="$bytes" -v t0="$stopped" -v t1="$drained" 'BEGIN {
    d = t1 - t0
    c = u + y; printf "sustained: %.0f MB, caught up %.1f s after the writer stopped; agent %.2f CPU s (%.0f%% of a core over %.0f s), %.2f CPU s/GB, peak RSS %.0f MiB\n",
      b/1e6, d, c, 100*c/w, w, c/(b/1e9), r/1024 }'
  exit
fi

printf '%-14s %6s %8s %8s %10s %10s %10s\n' pipeline wall_s cpu_s MB/s events/s cpu_s/GB rss_MiB
for sink in ${PIPELINES:-discard file s3 elasticsearch kafka all all-kafka-none}; do
  for i in $(seq "$runs"); do
    rm -rf "$work/state" "$work/out" "$work/env"
    servers=""
    if [ "$sink" != discard ] && [ "$sink" != file ]; then
      start_servers
    fi
    cat > "$work/cfg.yaml" <<CFG
auditLogPath: $corpus/audit.log
stateDir: $work/state
log: {level: warn}
sinks:
$(sink_yaml "$sink")
CFG
    before_run "$sink-$i"
    /usr/bin/time -f '%e %U %S %M' -o "$work/time" "$work/auditrail" run --once --config "$work/cfg.yaml" "${prof[@]}"
    if [ -n "$servers" ]; then kill "$servers"; wait "$servers" || true; fi
    read -r wall user sys rss < "$work/time"
    awk -v s="$sink" -v w="$wall" -v u="$user" -v y="$sys" -v r="$rss" -v b="$bytes" -v e="$events" 'BEGIN {
      c = u + y; printf "%-14s %6.2f %8.2f %8.0f %10.0f %10.2f %10.0f\n", s, w, c, b/1e6/w, e/w, c/(b/1e9), r/1024 }'
  done
done
