//! The Kafka source on the user's path: records already in a topic, read
//! by a keyed tumbling-window sum into a JSON lines file, beside the same
//! job over a file (`file-bench`). Prints one JSON line.
//!
//! It makes a topic of `--partitions` partitions, produces `--records`
//! JSON records `{"k":..,"ts":..,"v":1}` (`k = i % keys`,
//! `ts = 1704067200000 + i`) with rdkafka's producer, then runs the job
//! with a bounded Kafka source on `-w` workers and checks that the window
//! sums add up to the records read. The broker is `--brokers` (a Kafka or
//! tansu on loopback; see examples/README.md).
//!
//! ```sh
//! cargo run --release -p weir-benches --bin kafka-bench -- --brokers 127.0.0.1:9092 --records 2000000
//! ```

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use weir::prelude::*;
use weir::sources::{Kafka, KafkaRecord};
use weir_benches::peak_rss_bytes;
use weir_benches::queues::{check_sums, row_json, window_sums, Row};

/// Keyed window sum over a Kafka topic.
#[derive(Parser)]
struct Args {
    #[command(flatten)]
    cluster: Cluster,
    /// The brokers.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// Records to produce and read.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Partitions of the topic.
    #[arg(long, default_value_t = 4)]
    partitions: i32,
    /// Distinct keys.
    #[arg(long, default_value_t = 1000)]
    keys: u64,
    /// Where the results go.
    #[arg(long, default_value = "target/kafka-bench")]
    dir: std::path::PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let topic = format!("kafka-bench-{nanos}");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .create()?;
    let new = NewTopic::new(&topic, args.partitions, TopicReplication::Fixed(1));
    for r in futures_executor::block_on(admin.create_topics([&new], &AdminOptions::new()))
        .context("cannot create the topic")?
    {
        r.map_err(|(t, e)| anyhow::anyhow!("cannot create topic {t}: {e}"))?;
    }

    let producing = Instant::now();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", "20")
        .set("batch.size", "1000000")
        .create()?;
    for i in 0..args.records {
        let k = i % args.keys.max(1);
        let value = row_json(i, args.keys);
        let partition = (k % args.partitions as u64) as i32;
        loop {
            match producer.send(
                BaseRecord::<(), _>::to(&topic)
                    .payload(&value)
                    .partition(partition),
            ) {
                Ok(()) => break,
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => anyhow::bail!("producing: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(120))?;
    let produce_seconds = producing.elapsed().as_secs_f64();

    std::fs::create_dir_all(&args.dir)?;
    let out = args.dir.join("out.jsonl");
    let workers = args.cluster.total_workers();
    let p = Pipeline::new("kafka-bench");
    let records = p.source(Kafka::new(&args.brokers, &topic).json::<Row>().bounded());
    window_sums(records, |r: &KafkaRecord<Row>| &r.value, &out);
    let start = Instant::now();
    let summary = p.run(args.cluster.clone().quiet(true))?;
    let seconds = start.elapsed().as_secs_f64();
    let read: u64 = summary.sources.iter().map(|(_, n)| n).sum();
    check_sums(&out, read)?;
    println!(
        "{}",
        serde_json::json!({
            "bench": "kafka",
            "records": args.records,
            "read": read,
            "partitions": args.partitions,
            "keys": args.keys,
            "workers": workers,
            "produce_seconds": produce_seconds,
            "seconds": seconds,
            "records_per_sec": read as f64 / seconds,
            "peak_rss_bytes": peak_rss_bytes(),
        })
    );
    Ok(())
}
