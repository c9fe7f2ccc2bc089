"""Writes the peers benchmark's input files into DIR.

rows.csv / rows.jsonl: k,ts,v with k = i % 1000, ts = 1704067200000 + i, v = 1
(the job of issue 10: 2 M rows, 1 ms apart, 1000 keys).
sessions.csv: the same shape, but key k is silent during every 50 s period p
with (7 k + p) % 5 == 0, so each key's activity breaks into sessions at gaps
of 50 s or more (a 30 s gap closes them), of lengths that differ per key.

flink/: the two CSV files without their header line (Flink's CSV format cannot
skip one).

Usage: python3 gen.py DIR ROWS
"""
import os
import sys

BASE = 1704067200000


def main():
    out, rows = sys.argv[1], int(sys.argv[2])
    os.makedirs(os.path.join(out, "flink"), exist_ok=True)
    with open(os.path.join(out, "rows.csv"), "w") as csv, open(
        os.path.join(out, "rows.jsonl"), "w"
    ) as jsonl, open(os.path.join(out, "sessions.csv"), "w") as sessions:
        csv.write("k,ts,v\n")
        sessions.write("k,ts,v\n")
        for i in range(rows):
            k, ts = i % 1000, BASE + i
            csv.write(f"{k},{ts},1\n")
            jsonl.write(f'{{"k":{k},"ts":{ts},"v":1}}\n')
            if (7 * k + i // 50_000) % 5 != 0:
                sessions.write(f"{k},{ts},1\n")
    for name in ("rows.csv", "sessions.csv"):
        with open(os.path.join(out, name)) as src, open(
            os.path.join(out, "flink", name), "w"
        ) as dst:
            src.readline()
            dst.writelines(src)


if __name__ == "__main__":
    main()
