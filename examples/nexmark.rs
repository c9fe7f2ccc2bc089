//! Nexmark queries in the weir DSL over the Nexmark generator.
//!
//! ```sh
//! cargo run --release --example nexmark -- --query q5 --events 1000000 -w 2
//! cargo run --release --example nexmark -- --query q7 --output q7.jsonl
//! ```

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Parser;
use weir::prelude::*;
use weir_examples::nexmark::{self as q, QUERIES};

/// Runs one Nexmark query.
#[derive(Parser)]
#[command(disable_help_flag = true)]
struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// The query: q0 to q8.
    #[arg(long, default_value = "q5")]
    query: String,
    /// Number of Nexmark events (persons, auctions and bids) to generate.
    #[arg(long, default_value_t = 1_000_000)]
    events: u64,
    /// Write results as JSON lines to this file instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let events = args.events;
    let job = match (args.query.as_str(), &args.output) {
        ("q0", Some(o)) => q::q0(events, JsonLinesFile::to(o)),
        ("q0", None) => q::q0(events, Stdout::jsonl()),
        ("q1", Some(o)) => q::q1(events, JsonLinesFile::to(o)),
        ("q1", None) => q::q1(events, Stdout::jsonl()),
        ("q2", Some(o)) => q::q2(events, JsonLinesFile::to(o)),
        ("q2", None) => q::q2(events, Stdout::jsonl()),
        ("q3", Some(o)) => q::q3(events, JsonLinesFile::to(o)),
        ("q3", None) => q::q3(events, Stdout::jsonl()),
        ("q4", Some(o)) => q::q4(events, JsonLinesFile::to(o)),
        ("q4", None) => q::q4(events, Stdout::jsonl()),
        ("q6", Some(o)) => q::q6(events, JsonLinesFile::to(o)),
        ("q6", None) => q::q6(events, Stdout::jsonl()),
        ("q5", Some(o)) => q::q5(events, JsonLinesFile::to(o)),
        ("q5", None) => q::q5(events, Stdout::jsonl()),
        ("q7", Some(o)) => q::q7(events, JsonLinesFile::to(o)),
        ("q7", None) => q::q7(events, Stdout::jsonl()),
        ("q8", Some(o)) => q::q8(events, JsonLinesFile::to(o)),
        ("q8", None) => q::q8(events, Stdout::jsonl()),
        (other, _) => bail!(
            "--query: expected one of {}, got `{other}`",
            QUERIES.join(", ")
        ),
    };
    job.run(args.cluster).context("nexmark query failed")?;
    Ok(())
}
