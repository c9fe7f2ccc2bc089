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

use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Parser;
use futures_executor::block_on;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde::{Deserialize, Serialize};
use weir::aggregate::Sum;
use weir::prelude::*;
use weir::sources::{Amqp, AmqpRecord};
use weir::Checkpointing;
use weir_benches::peak_rss_bytes;

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

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Row {
    k: u64,
    ts: u64,
    v: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let queue = format!("amqp-bench-{nanos}");
    let connection = block_on(Connection::connect(
        &args.url,
        ConnectionProperties::default(),
    ))
    .context("cannot connect to the broker")?;
    let channel = block_on(connection.create_channel())?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    block_on(channel.queue_declare(queue.as_str().into(), durable, FieldTable::default()))?;
    block_on(channel.confirm_select(ConfirmSelectOptions::default()))?;

    let publishing = Instant::now();
    let mut confirms = Vec::new();
    for i in 0..args.records {
        let body = format!(
            r#"{{"k":{},"ts":{},"v":1}}"#,
            i % args.keys.max(1),
            1_704_067_200_000 + i
        );
        let properties = BasicProperties::default().with_message_id(format!("{i}").into());
        confirms.push(block_on(channel.basic_publish(
            "".into(),
            queue.as_str().into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            properties,
        ))?);
        if confirms.len() >= 5_000 || i + 1 == args.records {
            for confirm in confirms.drain(..) {
                ensure!(block_on(confirm)?.is_ack(), "the broker refused a message");
            }
        }
    }
    let publish_seconds = publishing.elapsed().as_secs_f64();

    std::fs::create_dir_all(&args.dir)?;
    let out = args.dir.join("out.jsonl");
    let workers = args.cluster.total_workers();
    let p = Pipeline::new("amqp-bench");
    let source = Amqp::new(&args.url, &queue)
        .json::<Row>()
        .consumers(args.consumers)
        .bounded();
    p.source(source)
        .event_time(
            |r: &AmqpRecord<Row>| r.value.ts,
            Watermark::bounded(Duration::from_millis(0)),
        )
        .key_by(|r: &AmqpRecord<Row>| r.value.k)
        .window(Tumbling::of(Duration::from_secs(1)))
        .aggregate(Sum::of(|r: &AmqpRecord<Row>| r.value.v))
        .sink(JsonLinesFile::to(&out));
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
    let mut sum = 0;
    for line in std::io::BufReader::new(std::fs::File::open(&out)?).lines() {
        let v: serde_json::Value = serde_json::from_str(&line?)?;
        sum += v["value"].as_u64().unwrap_or(0);
    }
    ensure!(sum == read, "the window sums add up to {sum}, not {read}");
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let left =
        block_on(channel.queue_declare(queue.as_str().into(), passive, FieldTable::default()))?
            .message_count();
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
