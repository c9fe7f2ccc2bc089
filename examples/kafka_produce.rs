//! Test data for the Kafka examples: JSON click events
//! (`{"user":"u17","page":3,"ts":1700000000123}`) produced to a topic at a
//! given rate, with event times a little out of order, keyed by user.
//! It uses the Kafka client directly, not weir.
//!
//! ```sh
//! cargo run --release --example kafka_produce -- --brokers 127.0.0.1:9092 \
//!     --topic clicks --events 100000 --rate 20000
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use clap::Parser;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

/// Produces JSON click events to a Kafka topic.
#[derive(Parser)]
struct Args {
    /// Brokers, `host:port[,host:port...]`.
    #[arg(long, default_value = "127.0.0.1:9092")]
    brokers: String,
    /// The topic (it must exist).
    #[arg(long, default_value = "clicks")]
    topic: String,
    /// Events to produce.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events per second (0: as fast as the broker takes them).
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Distinct users.
    #[arg(long, default_value_t = 100)]
    users: u64,
    /// Each event its own batch (tansu 0.6 reports a partition's end as
    /// its last batch's first offset plus one; bounded reads need this).
    #[arg(long)]
    one_per_batch: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.brokers)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    if args.one_per_batch {
        config.set("batch.num.messages", "1");
    }
    let producer: BaseProducer = config.create().context("cannot make a Kafka producer")?;
    let start = Instant::now();
    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as u64;
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in 0..args.events {
        if args.rate > 0 {
            let due = Duration::from_secs_f64(i as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                std::thread::sleep(wait);
            }
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let user = format!("u{}", x % args.users.max(1));
        let event = format!(
            r#"{{"user":"{user}","page":{},"ts":{}}}"#,
            (x >> 20) % 20,
            (now_ms + start.elapsed().as_millis() as u64).saturating_sub((x >> 32) % 500)
        );
        loop {
            match producer.send(BaseRecord::to(&args.topic).key(&user).payload(&event)) {
                Ok(()) => break,
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    producer.poll(Duration::from_millis(5));
                }
                Err((e, _)) => bail!("producing to topic `{}`: {e}", args.topic),
            }
        }
        producer.poll(Duration::ZERO);
    }
    producer
        .flush(Duration::from_secs(30))
        .with_context(|| format!("flushing to topic `{}`", args.topic))?;
    eprintln!(
        "produced {} events to `{}` in {:.2} s",
        args.events,
        args.topic,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
