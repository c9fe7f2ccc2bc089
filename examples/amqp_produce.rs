//! Test data for the RabbitMQ examples: JSON click events
//! (`{"user":"u17","page":3,"ts":1700000000123}`) published to a queue at a
//! given rate (through the default exchange, declaring the queue if it is
//! missing), with event times a little out of order, each with a message id
//! so that a checkpointed job counts it exactly once. It uses the AMQP
//! client (lapin) directly, not weir, and waits for the broker's confirms.
//!
//! ```sh
//! cargo run --release --example amqp_produce -- \
//!     --url amqp://guest:guest@127.0.0.1:5672/%2f --queue clicks --events 100000 --rate 20000
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use weir_examples::amqp::QueuePublisher;

/// Publishes JSON click events to a RabbitMQ queue.
#[derive(Parser)]
struct Args {
    /// The broker, `amqp://user:password@host:port/vhost`.
    #[arg(
        long,
        env = "AMQP_URL",
        hide_env_values = true,
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f"
    )]
    url: String,
    /// The queue (declared durable if it is missing).
    #[arg(long, default_value = "clicks")]
    queue: String,
    /// Events to publish.
    #[arg(long, default_value_t = 100_000)]
    events: u64,
    /// Events per second (0: as fast as the broker confirms them).
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Distinct users.
    #[arg(long, default_value_t = 100)]
    users: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut publisher = QueuePublisher::to_queue(&args.url, &args.queue)?;
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
        let event = format!(
            r#"{{"user":"u{}","page":{},"ts":{}}}"#,
            x % args.users.max(1),
            (x >> 20) % 20,
            (now_ms + start.elapsed().as_millis() as u64).saturating_sub((x >> 32) % 500)
        );
        publisher.publish(event.as_bytes(), format!("{now_ms}-{i}"))?;
    }
    publisher.confirm()?;
    eprintln!(
        "published {} events to `{}` in {:.2} s",
        args.events,
        args.queue,
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
