"""One peers-benchmark job in Bytewax (1 worker).

Reads DATA (CSV `k,ts,v` with a header, or JSON lines), event time = ts
(EventClock, no waiting), runs JOB with Bytewax's windowing operators and
writes `k,window_start_ms,value` lines to OUT. Prints one JSON line: `seconds`
is the run of the dataflow (`run_main`), `wall_seconds` the whole script.

Usage: python bytewax_job.py JOB DATA OUT    (JOB: a | b | c | d)
"""
import json
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import bytewax.operators as op
import bytewax.operators.windowing as win
from bytewax.connectors.files import CSVSource, FileSink, FileSource
from bytewax.dataflow import Dataflow
from bytewax.testing import run_main

ALIGN = datetime(2024, 1, 1, tzinfo=timezone.utc)
ALIGN_MS = 1704067200000


def main():
    started = time.time()
    job, data, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    flow = Dataflow(f"peers-{job}")
    if data.endswith(".jsonl"):
        rows = op.map("parse", op.input("in", flow, FileSource(data)), json.loads)
        rows = op.map("ints", rows, lambda r: (str(r["k"]), (r["ts"], r["v"])))
    else:
        rows = op.input("in", flow, CSVSource(data))
        rows = op.map("ints", rows, lambda r: (r["k"], (int(r["ts"]), int(r["v"]))))
    keyed = op.key_on("key", op.map("k", rows, lambda kv: kv), lambda kv: kv[0])
    keyed = op.map_value("value", keyed, lambda kv: kv[1])
    clock = win.EventClock(
        ts_getter=lambda tv: datetime.fromtimestamp(tv[0] / 1000, tz=timezone.utc),
        wait_for_system_duration=timedelta(0),
    )
    if job in ("a", "b"):
        windower = win.TumblingWindower(length=timedelta(seconds=1), align_to=ALIGN)
        offset_ms = 1000
        folded = win.fold_window(
            "sum", keyed, clock, windower, lambda: 0, lambda s, tv: s + tv[1], lambda a, b: a + b
        )
    elif job == "c":
        windower = win.SlidingWindower(
            length=timedelta(seconds=10), offset=timedelta(seconds=2), align_to=ALIGN
        )
        offset_ms = 2000
        folded = win.fold_window(
            "count", keyed, clock, windower, lambda: 0, lambda s, tv: s + 1, lambda a, b: a + b
        )
    else:
        windower = win.SessionWindower(gap=timedelta(seconds=30))
        offset_ms = None
        # (count, first event time): a session starts at its first event.
        folded = win.fold_window(
            "count", keyed, clock, windower,
            lambda: (0, None),
            lambda s, tv: (s[0] + 1, tv[0] if s[1] is None else min(s[1], tv[0])),
            lambda a, b: (a[0] + b[0], min(a[1], b[1])),
        )
    if offset_ms is None:
        lines = op.map("line", folded.down, lambda kv: f"{kv[0]},{kv[1][1][1]},{kv[1][1][0]}")
    else:
        lines = op.map(
            "line",
            folded.down,
            lambda kv: f"{kv[0]},{ALIGN_MS + kv[1][0] * offset_ms},{kv[1][1]}",
        )
    op.output("out", op.key_on("one", lines, lambda _: "0"), FileSink(out))
    ran = time.time()
    run_main(flow)
    done = time.time()
    print(json.dumps({
        "bench": "peers", "job": job, "impl": "bytewax", "workers": 1,
        "seconds": done - ran, "wall_seconds": done - started,
    }), flush=True)


if __name__ == "__main__":
    main()
