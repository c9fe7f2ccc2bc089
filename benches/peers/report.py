"""The peers benchmark's checks and table.

  report.py check JOB WEIR_OUT [PEER_OUT...]
      Reads weir's JSON-lines results and each peer's `k,window_start,value`
      lines (a file, or a directory of part files), normalises them to
      (key, window start in ms, value) and exits non-zero naming the first
      difference if any peer disagrees with weir.
  report.py summary RUNS.jsonl
      Prints a Markdown table: per job and implementation the median seconds
      and rows/s over the rounds, and the medians of the per-round ratios
      weir / peer (rows/s).
"""
import json
import os
import statistics
import sys
from collections import defaultdict

AGG = {"a": "s", "b": "s", "c": "n", "d": "n"}


def weir_results(path, job):
    with open(path) as f:
        return sorted(
            (int(r["k"]), int(r["window_start"]), int(r[AGG[job]]))
            for r in map(json.loads, f)
        )


def peer_results(path):
    files = [path]
    if os.path.isdir(path):
        files = [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]
    out = []
    for name in files:
        with open(name) as f:
            for line in f:
                if line.strip():
                    k, start, value = line.strip().split(",")
                    out.append((int(k), int(start), int(value)))
    return sorted(out)


def check(job, weir, peers):
    expected = weir_results(weir, job)
    if not expected:
        sys.exit(f"peers: job {job}: weir wrote no results")
    for peer in peers:
        got = peer_results(peer)
        if got != expected:
            missing = sorted(set(expected) - set(got))[:3]
            extra = sorted(set(got) - set(expected))[:3]
            sys.exit(
                f"peers: job {job}: {peer} disagrees with weir: {len(got)} results vs "
                f"{len(expected)}; only weir has {missing}, only the peer has {extra}"
            )
    print(f"peers: job {job}: {len(expected)} results, the same in weir and {len(peers)} peer(s)",
          file=sys.stderr)


def summary(path):
    runs = [json.loads(l) for l in open(path) if l.startswith("{")]
    by = defaultdict(list)
    for r in runs:
        by[(r["job"], r["impl"])].append(r)
    impls = [i for i in ("weir", "pyflink", "bytewax") if any(k[1] == i for k in by)]
    print("| job | " + " | ".join(f"{i} s | {i} M rows/s" for i in impls)
          + "".join(f" | weir/{i}" for i in impls[1:]) + " |")
    print("|---" * (1 + 2 * len(impls) + len(impls) - 1) + "|")
    for job in sorted({k[0] for k in by}):
        cells = []
        for i in impls:
            rs = by[(job, i)]
            cells.append(f"{statistics.median(r['seconds'] for r in rs):.2f}" if rs else "-")
            cells.append(f"{statistics.median(r['rows_per_sec'] for r in rs) / 1e6:.3f}" if rs else "-")
        for i in impls[1:]:
            pairs = [w["rows_per_sec"] / p["rows_per_sec"]
                     for w, p in zip(by[(job, "weir")], by[(job, i)])]
            cells.append(f"{statistics.median(pairs):.1f}" if pairs else "-")
        print(f"| {job} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    if sys.argv[1] == "check":
        check(sys.argv[2], sys.argv[3], sys.argv[4:])
    elif sys.argv[1] == "summary":
        summary(sys.argv[2])
    else:
        sys.exit(__doc__)
