#!/usr/bin/env bash
# Runs nexmark-bench for every query and implementation, RUNS rounds (the
# implementations alternate inside a round), then prints per query the
# median events/s of each implementation and the medians of the ratios
# weir/timely and weir/loop taken within each round.
#
# Usage: benches/nexmark.sh [RUNS] [EVENTS] [WORKERS] [QUERIES...]
#   e.g. benches/nexmark.sh 3 10000000 1 q0 q1 q2 q5 q7 q8
set -euo pipefail
runs=${1:-3}
events=${2:-10000000}
workers=${3:-1}
shift $(( $# < 3 ? $# : 3 ))
queries=${*:-q0 q1 q2 q5 q7 q8}
cd "$(dirname "$0")/.."
cargo build --release -q -p weir-benches
out=$(mktemp)
for _ in $(seq "$runs"); do
  for q in $queries; do
    for i in loop timely weir; do
      target/release/nexmark-bench --query "$q" --impl "$i" --events "$events" -w "$workers" | tee -a "$out"
    done
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
by = defaultdict(list)
for r in rows:
    by[(r["query"], r["impl"])].append(r)
print("| query | loop M ev/s | timely M ev/s | weir M ev/s | weir/timely | weir/loop | weir peak RSS MB |")
print("|---|---|---|---|---|---|---|")
for q in dict.fromkeys(r["query"] for r in rows):
    med = {i: statistics.median(r["events_per_sec"] for r in by[(q, i)]) / 1e6 for i in ("loop", "timely", "weir")}
    pairs = lambda a: [w["events_per_sec"] / o["events_per_sec"] for w, o in zip(by[(q, "weir")], by[(q, a)])]
    rss = statistics.median(r["peak_rss_bytes"] for r in by[(q, "weir")]) / 1e6
    print(f"| {q} | {med['loop']:.2f} | {med['timely']:.2f} | {med['weir']:.2f} | "
          f"{statistics.median(pairs('timely')):.2f} | {statistics.median(pairs('loop')):.2f} | {rss:.0f} |")
PY
