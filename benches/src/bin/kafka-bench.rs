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
//! With `--to-topic` the sums go to a topic instead (`KafkaSink`, keyed by
//! nothing), read back and checked the same way; with `--checkpoint-ms N`
//! the job takes checkpoints every `N` ms (the sink then publishes each
//! checkpoint's results in one transaction).
//!
//! ```sh
//! cargo run --release -p weir-benches --bin kafka-bench -- --brokers 127.0.0.1:9092 --records 2000000
//! cargo run --release -p weir-benches --bin kafka-bench -- --to-topic --checkpoint-ms 1000
//! ```

use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use weir::Checkpointing;
use weir::prelude::*;
use weir::sinks::KafkaSink;
use weir::sources::{Kafka, KafkaRecord};
use weir_benches::peak_rss_bytes;
use weir_benches::queues::{Row, check_sums, row_json, sums, window_sums};

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
    /// Write the sums to a topic (of `--partitions` partitions) instead of a
    /// file.
    #[arg(long)]
    to_topic: bool,
    /// Take checkpoints (in `--dir`) every this many milliseconds.
    #[arg(long)]
    checkpoint_ms: Option<u64>,
    /// Sample the consumer lag (the sum over partitions of
    /// `weir_kafka_consumer_lag_records`, from the job's own metrics
    /// endpoint, served for it on a free loopback port) every this many
    /// milliseconds, and print the samples as `lag`: `[ms since the start,
    /// records]`.
    #[arg(long)]
    lag_every_ms: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let topic = format!("kafka-bench-{nanos}");
    let out_topic = format!("kafka-bench-out-{nanos}");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .create()?;
    let topics = [
        NewTopic::new(&topic, args.partitions, TopicReplication::Fixed(1)),
        NewTopic::new(&out_topic, args.partitions, TopicReplication::Fixed(1)),
    ];
    for r in futures_executor::block_on(admin.create_topics(&topics, &AdminOptions::new()))
        .context("cannot create the topics")?
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
    let row: fn(&KafkaRecord<Row>) -> &Row = |r| &r.value;
    match args.to_topic {
        true => sums(records, row).sink(KafkaSink::new(&args.brokers, &out_topic)),
        false => window_sums(records, row, &out),
    };
    let p = match args.checkpoint_ms {
        Some(ms) => p.checkpoint(
            Checkpointing::to(args.dir.join("checkpoints"))
                .fresh()
                .every(Duration::from_millis(ms)),
        ),
        None => p,
    };
    let mut cluster = args.cluster.clone().quiet(true);
    let lag = match args.lag_every_ms {
        Some(ms) => {
            let addr = std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .to_string();
            cluster = cluster.with_metrics(addr.clone());
            Some(sample_lag(addr, Duration::from_millis(ms.max(1))))
        }
        None => None,
    };
    let start = Instant::now();
    let summary = p.run(cluster)?;
    let seconds = start.elapsed().as_secs_f64();
    let lag = lag.map(|(stop, samples)| {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        samples.join().unwrap_or_default()
    });
    let read: u64 = summary.sources.iter().map(|(_, n)| n).sum();
    let written: u64 = summary.sinks.iter().map(|(_, n)| n).sum();
    match args.to_topic {
        true => check_topic_sums(&args.brokers, &out_topic, args.partitions, read)?,
        false => check_sums(&out, read)?,
    }
    println!(
        "{}",
        serde_json::json!({
            "bench": "kafka",
            "records": args.records,
            "read": read,
            "partitions": args.partitions,
            "keys": args.keys,
            "workers": workers,
            "sink": if args.to_topic { "topic" } else { "file" },
            "checkpoint_ms": args.checkpoint_ms,
            "results": written,
            "produce_seconds": produce_seconds,
            "seconds": seconds,
            "records_per_sec": read as f64 / seconds,
            "peak_rss_bytes": peak_rss_bytes(),
            "lag": lag,
        })
    );
    Ok(())
}

/// Checks that the window sums in topic `topic` (`partitions` partitions,
/// read from the beginning) add up to `read`, waiting up to 2 minutes.
fn check_topic_sums(brokers: &str, topic: &str, partitions: i32, read: u64) -> anyhow::Result<()> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-check"))
        .set("enable.auto.commit", "false")
        .create()?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    for p in 0..partitions {
        assignment.add_partition_offset(topic, p, rdkafka::Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let started = Instant::now();
    let mut sum = 0;
    while sum < read && started.elapsed() < Duration::from_secs(120) {
        if let Some(message) = consumer.poll(Duration::from_millis(100)) {
            let value: serde_json::Value =
                serde_json::from_slice(message?.payload().unwrap_or_default())?;
            sum += value["value"].as_u64().unwrap_or(0);
        }
    }
    anyhow::ensure!(
        sum == read,
        "the window sums in the topic add up to {sum}, not {read}"
    );
    Ok(())
}

/// A thread that reads the consumer lag from the metrics endpoint at
/// `addr` every `every` until told to stop; it returns the samples, as (ms
/// since it started, records), from the first the endpoint answered with.
#[allow(clippy::type_complexity)]
fn sample_lag(
    addr: String,
    every: Duration,
) -> (
    std::sync::Arc<std::sync::atomic::AtomicBool>,
    std::thread::JoinHandle<Vec<(u64, u64)>>,
) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = std::sync::Arc::clone(&stop);
    let thread = std::thread::spawn(move || {
        let started = Instant::now();
        let mut samples = Vec::new();
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            if let Some(lag) = scrape_lag(&addr) {
                samples.push((started.elapsed().as_millis() as u64, lag));
            }
            std::thread::sleep(every);
        }
        samples
    });
    (stop, thread)
}

/// The sum of `weir_kafka_consumer_lag_records` on the endpoint at `addr`,
/// if it answers and has the gauge.
fn scrape_lag(addr: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let mut http = std::net::TcpStream::connect(addr).ok()?;
    write!(
        http,
        "GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    http.read_to_string(&mut reply).ok()?;
    let values: Vec<u64> = reply
        .lines()
        .filter(|l| l.starts_with("weir_kafka_consumer_lag_records{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}
