//! The path users run: a keyed tumbling-window sum over a file of rows,
//! through the text spec (`weir run`'s pipeline over dynamic rows) or the
//! typed DSL, from CSV or JSON lines. Prints one JSON line per run.
//!
//! The data is `k,ts,v` with `k = i % keys`, `ts = 1704067200000 + i`,
//! `v = 1` (`--rows` rows), written once under `--dir` and reused. The job:
//! event time `ts` with no out-of-orderness, key `k`, tumbling 1 s windows,
//! `sum(v)`, JSON lines to a file in `--dir`. Every run checks that the
//! window sums add up to the number of rows.
//!
//! ```sh
//! cargo run --release -p weir-benches --bin file-bench -- --impl spec --format csv --rows 2000000
//! cargo run --release -p weir-benches --bin file-bench -- --impl typed --format jsonl -w 2
//! cargo run --release -p weir-benches --bin file-bench -- --impl spec --checkpoint-ms 1000
//! cargo run --release -p weir-benches --bin file-bench -- --impl spec --rows 100000000 \
//!     --bad-every 100000 --on-error dead-letter --checkpoint-ms 1000 -w 2     # the soak
//! ```
//!
//! With `--bad-every N` every N-th row has `oops` for `v`; the spec's
//! `--on-error` policy skips those rows or sends them to
//! `<dir>/dead-letters.jsonl`, and the check expects the sums of the other
//! rows (and as many dead letters as bad rows). The resident set is sampled
//! every second and reported at the start, every tenth of the run and at
//! the end.

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::{Parser, ValueEnum};
use serde::{Deserialize, Serialize};
use weir::Checkpointing;
use weir::aggregate::Sum;
use weir::prelude::*;
use weir::spec::Spec;
use weir_benches::{RssSampler, peak_rss_bytes};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Impl {
    /// The text spec (what `weir run spec.toml` runs).
    Spec,
    /// The typed DSL: `Csv::<Row>` or `JsonLines::<Row>` into the same window.
    Typed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Format {
    /// `k,ts,v` with a header row.
    Csv,
    /// `{"k":..,"ts":..,"v":..}` per line.
    Jsonl,
}

/// Keyed window sum over a file.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// Pipeline to run.
    #[arg(long = "impl", value_enum, default_value = "spec")]
    implementation: Impl,
    /// Input format.
    #[arg(long, value_enum, default_value = "csv")]
    format: Format,
    /// Rows in the input.
    #[arg(long, default_value_t = 2_000_000)]
    rows: u64,
    /// Distinct keys.
    #[arg(long, default_value_t = 1_000)]
    keys: u64,
    /// Window length in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    window_ms: u64,
    /// Typed DSL only: write one part file per worker (`JsonLinesFile::parts`)
    /// instead of one file written by worker 0.
    #[arg(long)]
    parts: bool,
    /// Where the input (generated once) and the output go.
    #[arg(long, default_value = "target/file-bench")]
    dir: PathBuf,
    /// Take checkpoints about every this many milliseconds (into
    /// `<dir>/checkpoints`, emptied first); none if not given.
    #[arg(long)]
    checkpoint_ms: Option<u64>,
    /// Every this many rows, one whose `v` is not a number.
    #[arg(long)]
    bad_every: Option<u64>,
    /// The spec's policy for bad rows.
    #[arg(long, value_enum, default_value = "fail")]
    on_error: OnErrorArg,
}

/// `on_error` of the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum OnErrorArg {
    Fail,
    Skip,
    DeadLetter,
}

impl Args {
    /// How many rows are bad.
    fn bad_rows(&self) -> u64 {
        self.bad_every.map_or(0, |n| self.rows / n.max(1))
    }

    /// Whether row `i` is bad.
    fn is_bad(&self, i: u64) -> bool {
        self.bad_every.is_some_and(|n| i % n.max(1) == n.max(1) - 1)
    }
}

/// A row of the input, for the typed DSL.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Row {
    k: u64,
    ts: u64,
    v: i64,
}

const BASE: u64 = 1_704_067_200_000;

/// Writes the input unless a complete one is there.
fn input(args: &Args) -> anyhow::Result<PathBuf> {
    let ext = match args.format {
        Format::Csv => "csv",
        Format::Jsonl => "jsonl",
    };
    std::fs::create_dir_all(&args.dir).with_context(|| format!("creating {:?}", args.dir))?;
    let bad = args.bad_every.map_or(String::new(), |n| format!("-bad{n}"));
    let path = args
        .dir
        .join(format!("rows-{}-{}{bad}.{ext}", args.rows, args.keys));
    let done = path.with_extension(format!("{ext}.done"));
    if done.exists() {
        return Ok(path);
    }
    let mut out = BufWriter::new(std::fs::File::create(&path)?);
    if args.format == Format::Csv {
        writeln!(out, "k,ts,v")?;
    }
    for i in 0..args.rows {
        let (k, ts) = (i % args.keys, BASE + i);
        let v = if args.is_bad(i) { "\"oops\"" } else { "1" };
        match args.format {
            Format::Csv => writeln!(out, "{k},{ts},{}", v.trim_matches('"'))?,
            Format::Jsonl => writeln!(out, "{{\"k\":{k},\"ts\":{ts},\"v\":{v}}}")?,
        }
    }
    out.flush()?;
    std::fs::write(done, "")?;
    Ok(path)
}

fn spec_text(args: &Args, path: &Path, out: &Path) -> String {
    let kind = match args.format {
        Format::Csv => "csv",
        Format::Jsonl => "jsonl",
    };
    let (policy, letters) = match args.on_error {
        OnErrorArg::Fail => ("fail", String::new()),
        OnErrorArg::Skip => ("skip", String::new()),
        OnErrorArg::DeadLetter => (
            "dead_letter",
            format!(
                "[dead_letter]\ntype = \"jsonl\"\npath = \"{}\"\n",
                args.dir.join("dead-letters.jsonl").display()
            ),
        ),
    };
    format!(
        r#"name = "file-bench"
[source]
type = "{kind}"
path = "{}"
event_time = {{ field = "ts", max_out_of_orderness_ms = 0 }}
on_error = "{policy}"
{letters}
[window]
key = ["k"]
type = "tumbling"
size_ms = {}
[aggregate]
s = "sum(v)"
[sink]
type = "jsonl"
path = "{}"
"#,
        path.display(),
        args.window_ms,
        out.display()
    )
}

/// The sum of the `"s"` fields of the output, and the number of lines.
fn check(out: &Path) -> anyhow::Result<(u64, u64)> {
    let file = std::fs::File::open(out).with_context(|| format!("reading {out:?}"))?;
    let (mut sum, mut lines) = (0, 0);
    for line in std::io::BufReader::new(file).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        let s = v
            .get("s")
            .or_else(|| v.get("value"))
            .and_then(|s| s.as_u64());
        sum += s.context("a result without a sum")?;
        lines += 1;
    }
    Ok((sum, lines))
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let path = input(&args)?;
    let out = args.dir.join(format!(
        "out-{:?}-{:?}{}",
        args.implementation,
        args.format,
        if args.parts { "-parts" } else { ".jsonl" }
    ));
    let cluster = args.cluster.clone().quiet(true);
    let workers = cluster.total_workers();
    ensure!(
        args.on_error == OnErrorArg::Fail || args.implementation == Impl::Spec,
        "--on-error is for --impl spec"
    );
    let sampler = RssSampler::start(Duration::from_secs(1));
    let start = Instant::now();
    let pipeline = match args.implementation {
        Impl::Spec => Spec::parse(&spec_text(&args, &path, &out))?.pipeline()?,
        Impl::Typed => {
            let p = Pipeline::new("file-bench");
            let rows = match args.format {
                Format::Csv => p.source(Csv::<Row>::new(&path)),
                Format::Jsonl => p.source(JsonLines::<Row>::new(&path)),
            };
            let results = rows
                .event_time(|r: &Row| r.ts, Watermark::ascending())
                .key_by(|r: &Row| r.k)
                .window(Tumbling::of(Duration::from_millis(args.window_ms)))
                .aggregate(Sum::of(|r: &Row| r.v));
            if args.parts {
                let _ = std::fs::remove_dir_all(&out);
                results.sink(JsonLinesFile::parts(&out));
            } else {
                results.sink(JsonLinesFile::to(&out));
            }
            p
        }
    };
    ensure!(
        !args.parts || args.implementation == Impl::Typed,
        "--parts is for --impl typed"
    );
    let pipeline = match args.checkpoint_ms {
        Some(ms) => {
            let dir = args.dir.join("checkpoints");
            let _ = std::fs::remove_dir_all(&dir);
            pipeline.checkpoint(Checkpointing::to(dir).every(Duration::from_millis(ms)))
        }
        None => pipeline,
    };
    let summary = pipeline.run(cluster)?;
    let rss = sampler.finish();
    let checkpoints = summary.checkpoints.unwrap_or_default();
    let (last_bytes, last_commit_ms) = checkpoints.last.map_or((0, 0.0), |(_, bytes, took)| {
        (bytes, took.as_secs_f64() * 1e3)
    });
    let seconds = start.elapsed().as_secs_f64();
    let (sum, results) = if out.is_dir() {
        let mut total = (0, 0);
        for part in std::fs::read_dir(&out)? {
            let (s, n) = check(&part?.path())?;
            total = (total.0 + s, total.1 + n);
        }
        total
    } else {
        check(&out)?
    };
    let good = args.rows - args.bad_rows();
    ensure!(sum == good, "the window sums add up to {sum}, not {good}");
    let dead_letters: u64 = summary.dead_letters.iter().map(|(_, n)| n).sum();
    let skipped: u64 = summary.skipped.iter().map(|(_, n)| n).sum();
    if args.on_error == OnErrorArg::DeadLetter {
        let written = std::fs::read_to_string(args.dir.join("dead-letters.jsonl"))?
            .lines()
            .count() as u64;
        ensure!(
            written == args.bad_rows() && dead_letters == written,
            "{written} dead letters written, {dead_letters} counted, for {} bad rows",
            args.bad_rows()
        );
    }
    // The resident set at the start, at every tenth of the run, at the end.
    let tenths: Vec<f64> = (0..=10)
        .map(|t| rss[(t * (rss.len() - 1)) / 10])
        .map(|mb| (mb * 10.0).round() / 10.0)
        .collect();
    println!(
        "{}",
        serde_json::json!({
            "bench": "file",
            "impl": format!("{:?}", args.implementation).to_lowercase(),
            "format": format!("{:?}", args.format).to_lowercase(),
            "rows": args.rows,
            "keys": args.keys,
            "workers": workers,
            "parts": args.parts,
            "results": results,
            "seconds": seconds,
            "rows_per_sec": args.rows as f64 / seconds,
            "peak_rss_bytes": peak_rss_bytes(),
            "checkpoint_ms": args.checkpoint_ms,
            "checkpoints": checkpoints.taken,
            "last_checkpoint_bytes": last_bytes,
            "last_commit_ms": last_commit_ms,
            "bad_rows": args.bad_rows(),
            "skipped": skipped,
            "dead_letters": dead_letters,
            "rss_mb_by_tenths": tenths,
        })
    );
    Ok(())
}
