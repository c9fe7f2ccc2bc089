//! Clicks from a Kafka topic, counted per user in tumbling event-time
//! windows, written as JSON to another topic (`--to-topic`, keyed by user),
//! or as JSON lines to a file or stdout. With
//! `--checkpoints DIR` the job takes checkpoints there: killed and started
//! again, it resumes at the offsets of its last checkpoint and writes its
//! output exactly once; each checkpoint's offsets are also committed to the
//! consumer group `--group`. `--bounded` reads the topic up to its end as of
//! the start and then finishes.
//!
//! ```sh
//! cargo run --release --example kafka_windows -- --brokers 127.0.0.1:9092 \
//!     --topic clicks --window-ms 1000 --to-topic click-counts -w 2
//! ```

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use weir::prelude::*;
use weir::sinks::KafkaSink;
use weir::sources::{Kafka, KafkaRecord, KafkaStart};
use weir_examples::queue_clicks::{Click, counts_per_user, run};

/// Counts clicks from a Kafka topic per user and window.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// Brokers, `host:port[,host:port...]`.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// The topic to read.
    #[arg(long, default_value = "clicks")]
    topic: String,
    /// The consumer group the offsets of each checkpoint are committed to.
    #[arg(long, default_value = "weir-kafka-windows")]
    group: String,
    /// Window size in milliseconds.
    #[arg(long, default_value_t = 1000)]
    window_ms: u64,
    /// Read each partition up to its end as of the start, then finish.
    #[arg(long)]
    bounded: bool,
    /// Start at the latest records instead of the earliest.
    #[arg(long)]
    latest: bool,
    /// Take checkpoints in this directory (every second).
    #[arg(long)]
    checkpoints: Option<PathBuf>,
    /// Write results to this JSON lines file instead of stdout.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Write results to this Kafka topic (keyed by user) instead.
    #[arg(long, conflicts_with = "output")]
    to_topic: Option<String>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let start = match args.latest {
        true => KafkaStart::Latest,
        false => KafkaStart::Earliest,
    };
    let mut source = Kafka::new(&args.brokers, &args.topic)
        .json::<Click>()
        .group(&args.group)
        .start(start);
    if args.bounded {
        source = source.bounded();
    }
    let p = Pipeline::new("kafka-windows");
    let window = Duration::from_millis(args.window_ms);
    let counts = counts_per_user(p.source(source), |r: &KafkaRecord<Click>| &r.value, window);
    let job = match (&args.output, &args.to_topic) {
        (_, Some(topic)) => counts.sink(
            KafkaSink::new(&args.brokers, topic)
                .key(|w: &WindowResult<String, u64>| w.key.clone().into_bytes()),
        ),
        (Some(path), None) => counts.sink(JsonLinesFile::to(path)),
        (None, None) => counts.sink(Stdout::jsonl()),
    };
    run(
        job,
        args.checkpoints.as_deref(),
        args.cluster,
        "kafka_windows",
    )
}
