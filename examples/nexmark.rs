//! Nexmark queries in the weir DSL over the Nexmark generator.
//!
//! ```sh
//! cargo run --release --example nexmark -- --query q5 --events 1000000 -w 2
//! cargo run --release --example nexmark -- --query q7 --output q7.jsonl
//! ```

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Parser;
use weir::prelude::*;
use weir_examples::nexmark::{self as q, QUERIES};

/// Runs one Nexmark query.
#[derive(Parser)]
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

/// JSON lines to the `--output` file, or to stdout.
fn output<T: Data>(path: Option<&std::path::Path>) -> Box<dyn Sink<T>> {
    match path {
        Some(p) => Box::new(JsonLinesFile::to(p)),
        None => Box::new(Stdout::jsonl()),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let events = args.events;
    let out = args.output.as_deref();
    let job = match args.query.as_str() {
        "q0" => q::q0(events, output(out)),
        "q1" => q::q1(events, output(out)),
        "q2" => q::q2(events, output(out)),
        "q3" => q::q3(events, output(out)),
        "q4" => q::q4(events, output(out)),
        "q5" => q::q5(events, output(out)),
        "q6" => q::q6(events, output(out)),
        "q7" => q::q7(events, output(out)),
        "q8" => q::q8(events, output(out)),
        other => bail!(
            "--query: expected one of {}, got `{other}`",
            QUERIES.join(", ")
        ),
    };
    job.run(args.cluster).context("nexmark query failed")?;
    Ok(())
}
