//! Click statistics: generated click events keyed by page; per page, the
//! number of clicks and the total dwell time, written as JSON lines (one
//! final result per page, since the generated input is bounded).
//!
//! ```sh
//! cargo run --release --example clicks                          # to stdout
//! cargo run --release --example clicks -- --events 5000000 -w 2 --output pages.jsonl
//! ```

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use serde::{Deserialize, Serialize};
use weir::prelude::*;

/// Counts generated clicks per page.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// Number of click events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Number of distinct pages.
    #[arg(long, default_value_t = 50)]
    pages: u64,
    /// Write results to this JSON lines file instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
}

/// A user's click on a page.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Click {
    user: u64,
    page: u64,
    /// Event time, milliseconds since the epoch.
    ts: u64,
    dwell_ms: u32,
}

/// Per-page result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PageStats {
    clicks: u64,
    dwell_ms: u64,
}

fn click(i: u64, pages: u64) -> Click {
    let mut x = i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 29;
    Click {
        user: x % 10_000,
        page: (x >> 20) % pages,
        ts: 1_700_000_000_000 + i * 10,
        dwell_ms: ((x >> 40) % 30_000) as u32,
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let pages = args.pages.max(1);
    let stats = Pipeline::new("clicks")
        .source(Generator::new(args.events, move |i| click(i, pages)))
        .filter(|c: &Click| c.dwell_ms > 0)
        .key_by(|c: &Click| c.page)
        .fold(
            || PageStats {
                clicks: 0,
                dwell_ms: 0,
            },
            |s, c| {
                s.clicks += 1;
                s.dwell_ms += u64::from(c.dwell_ms);
            },
        );
    let job = match &args.output {
        Some(path) => stats.sink(JsonLinesFile::to(path)),
        None => stats.sink(Stdout::jsonl()),
    };
    if !args.cluster.is_quiet() {
        eprint!("{}", job.explain());
    }
    job.run(args.cluster).context("clicks failed")?;
    Ok(())
}
