//! The RabbitMQ source on the user's path: messages already in a queue,
//! read by a keyed tumbling-window sum into a JSON lines file, without and
//! with checkpoints (where a message is acknowledged only once a checkpoint
//! holds it). Prints one JSON line.
//!
//! It declares a queue, publishes `--records` JSON messages
//! `{"k":..,"ts":..,"v":1}` (`k = i % keys`, `ts = 1704067200000 + i`),
//! each with a message id, with lapin directly (publisher confirms), then
//! runs the job with a bounded `Amqp` source of `--consumers` consumers on
//! `-w` workers, and checks that the window sums add up to the messages
//! read and that the queue is empty after. The broker is `--url` (or
//! `AMQP_URL`; see examples/README.md).
//!
//! ```sh
//! cargo run --release -p weir-benches --bin amqp-bench -- --records 1000000 --consumers 2 -w 2
//! ```

use std::time::{Duration, Instant};

use anyhow::ensure;
use clap::Parser;
use weir::Checkpointing;
use weir::prelude::*;
use weir::sources::{Amqp, AmqpRecord};
use weir_benches::peak_rss_bytes;
use weir_benches::queues::{Row, check_sums, row_json, window_sums};
use weir_examples::amqp::QueuePublisher;

/// Keyed window sum over a RabbitMQ queue.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// The broker.
    #[arg(
        long,
        env = "AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    url: String,
    /// Messages to publish and read.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Consumers of the queue.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Distinct keys.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Take checkpoints this often (milliseconds; 0: none).
    #[arg(long, default_value_t = 0)]
    checkpoint_ms: u64,
    /// Where the results (and checkpoints) go.
    #[arg(long, default_value = "target/amqp-bench")]
    dir: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let queue = format!("amqp-bench-{nanos}");
    let mut publisher = QueuePublisher::to_queue(&args.url, &queue)?;
    let publishing = Instant::now();
    for i in 0..args.records {
        publisher.publish(row_json(i, args.keys).as_bytes(), i.to_string())?;
    }
    publisher.confirm()?;
    let publish_seconds = publishing.elapsed().as_secs_f64();

    std::fs::create_dir_all(&args.dir)?;
    let out = args.dir.join("out.jsonl");
    let workers = args.cluster.total_workers();
    let p = Pipeline::new("amqp-bench");
    let source = Amqp::new(&args.url, &queue)
        .json::<Row>()
        .consumers(args.consumers)
        .bounded();
    window_sums(p.source(source), |r: &AmqpRecord<Row>| &r.value, &out);
    let p = match args.checkpoint_ms {
        0 => p,
        ms => p.checkpoint(
            Checkpointing::to(args.dir.join("checkpoints"))
                .every(Duration::from_millis(ms))
                .fresh(),
        ),
    };
    let start = Instant::now();
    let summary = p.run(args.cluster.clone().quiet(true))?;
    let seconds = start.elapsed().as_secs_f64();
    let read: u64 = summary.sources.iter().map(|(_, n)| n).sum();
    check_sums(&out, read)?;
    let left = publisher.ready()?;
    ensure!(left == 0, "{left} messages left in the queue");
    println!(
        "{}",
        serde_json::json!({
            "bench": "amqp",
            "records": args.records,
            "read": read,
            "consumers": args.consumers,
            "keys": args.keys,
            "workers": workers,
            "checkpoint_ms": args.checkpoint_ms,
            "publish_seconds": publish_seconds,
            "seconds": seconds,
            "records_per_sec": read as f64 / seconds,
            "peak_rss_bytes": peak_rss_bytes(),
        })
    );
    Ok(())
}
