#!/usr/bin/env bash
# The peers benchmark: the same four jobs in weir (`weir run` on a spec, one
# worker), PyFlink 2.3 (Table API, parallelism 1) and Bytewax 0.21 (one
# worker), on the same generated files; checks that every peer's results equal
# weir's, prints one JSON line per run and a table of medians and ratios.
#
#   (a) k,ts,v CSV, 1 s tumbling sum(v) per k      (b) the same from JSON lines
#   (c) 10 s / 2 s sliding count per k              (d) 30 s-gap session count per k
#
# weir is timed as a whole process (start-up included); PyFlink's time is its
# job time (JobExecutionResult net runtime, without the JVM and Python
# start-up); Bytewax's is the run of its dataflow (run_main).
#
# Usage: benches/peers/run.sh [ROWS] [RUNS] [JOBS...]    (defaults: 2000000 3 a b c d)
# Run by hand, not by .ci/run: it installs apache-flink (~300 MB) and bytewax
# into a venv under target/peers/, and needs Java 17 for Flink. A peer that
# cannot be installed or run is skipped with a message saying why.
set -euo pipefail
rows=${1:-2000000}
runs=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
jobs=${*:-a b c d}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$root/target/peers
venv=$work/venv
mkdir -p "$work"

peers=()
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
if ! command -v java >/dev/null; then
  echo "peers: no java on PATH: skipping PyFlink" >&2
elif "$venv/bin/pip" install -q 'apache-flink==2.3.*' >"$work/pip-flink.log" 2>&1; then
  peers+=(pyflink)
else
  echo "peers: pip could not install apache-flink 2.3 (see $work/pip-flink.log): skipping PyFlink" >&2
fi
if "$venv/bin/pip" install -q 'bytewax==0.21.*' >"$work/pip-bytewax.log" 2>&1; then
  peers+=(bytewax)
else
  echo "peers: pip could not install bytewax 0.21 (see $work/pip-bytewax.log): skipping Bytewax" >&2
fi

(cd "$root" && cargo build --release -q -p weir --bin weir)
weir=$root/target/release/weir

data=$work/data-$rows
if [ ! -f "$data/done" ]; then
  "$venv/bin/python" "$here/gen.py" "$data" "$rows"
  touch "$data/done"
fi

# The weir spec of a job.
spec() {
  local job=$1 source=csv path=$data/rows.csv window agg
  case $job in
    a) window='type = "tumbling"
size_ms = 1000'; agg='s = "sum(v)"' ;;
    b) source=jsonl; path=$data/rows.jsonl; window='type = "tumbling"
size_ms = 1000'; agg='s = "sum(v)"' ;;
    c) window='type = "sliding"
size_ms = 10000
slide_ms = 2000'; agg='n = "count(*)"' ;;
    d) path=$data/sessions.csv; window='type = "session"
gap_ms = 30000'; agg='n = "count(*)"' ;;
  esac
  cat <<TOML
name = "peers-$job"
[source]
type = "$source"
path = "$path"
event_time = { field = "ts", max_out_of_orderness_ms = 0 }
[window]
key = ["k"]
$window
[aggregate]
$agg
[sink]
type = "jsonl"
path = "$work/out/weir-$job.jsonl"
TOML
}

# The input of a job for a peer, and its number of rows.
input() {
  case $1/$2 in
    pyflink/a | pyflink/c) echo "$data/flink/rows.csv" ;;
    pyflink/d) echo "$data/flink/sessions.csv" ;;
    */b) echo "$data/rows.jsonl" ;;
    */d) echo "$data/sessions.csv" ;;
    *) echo "$data/rows.csv" ;;
  esac
}
rows_of() { if [ "$1" = d ]; then echo $(( $(wc -l < "$data/sessions.csv") - 1 )); else echo "$rows"; fi; }

# Adds rows and rows_per_sec to a run's JSON line.
record() {
  python3 -c 'import json, sys
r = json.loads(sys.argv[1]); r["rows"] = int(sys.argv[2]); r["rows_per_sec"] = r["rows"] / r["seconds"]
print(json.dumps(r))' "$1" "$2" | tee -a "$work/runs.jsonl"
}

mkdir -p "$work/out"
: > "$work/runs.jsonl"
for round in $(seq "$runs"); do
  for job in $jobs; do
    n=$(rows_of "$job")
    spec "$job" > "$work/out/$job.toml"
    start=$(date +%s%N)
    /usr/bin/time -f %M -o "$work/out/rss" "$weir" run "$work/out/$job.toml" -q -w 1
    end=$(date +%s%N)
    record "{\"bench\": \"peers\", \"job\": \"$job\", \"impl\": \"weir\", \"workers\": 1, \"round\": $round, \"seconds\": $(( (end - start) / 1000000 )).0e-3, \"peak_rss_bytes\": $(( $(cat "$work/out/rss") * 1024 ))}" "$n"
    outs=()
    for peer in "${peers[@]}"; do
      out=$work/out/$peer-$job
      rm -rf "$out"
      line=$("$venv/bin/python" "$here/${peer}_job.py" "$job" "$(input "$peer" "$job")" "$out" 2>"$work/out/$peer-$job.log" | tail -1) || {
        echo "peers: $peer failed on job $job (see $work/out/$peer-$job.log)" >&2; exit 1; }
      record "${line%\}}, \"round\": $round}" "$n"
      outs+=("$out")
    done
    python3 "$here/report.py" check "$job" "$work/out/weir-$job.jsonl" "${outs[@]}"
  done
done
python3 "$here/report.py" summary "$work/runs.jsonl"
