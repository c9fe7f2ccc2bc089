//! A RabbitMQ (AMQP 0.9.1) queue as a source (feature `amqp`).
//!
//! A queue cannot be replayed: what a consumer has received and not
//! acknowledged is delivered again after a crash, what it has acknowledged
//! is gone. So the source acknowledges a message only once the job is done
//! with it: once a checkpoint holding it is complete (with checkpoints), or
//! once every result stamped at its time has reached the sinks (without),
//! and the rest when the job completes. Each checkpoint also keeps the ids
//! of the messages it holds that are not acknowledged yet; after a restore,
//! a redelivery of one of them is acknowledged and dropped, so that with
//! message ids the job counts every message exactly once. Without ids it is
//! at least once: a message received before the checkpoint and acknowledged
//! after it is counted again after a crash in between.

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_core::Stream;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::tcp::OwnedTLSConfig;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weir_engine::BoxError;

use super::decode::{self, Decode};
use super::{BadRecords, Origin, PartitionReader, ReadStatus, Source, SourceContext};
use crate::Data;
use crate::error::SourceError;

/// One message of a queue: its id, routing key and timestamp as the
/// publisher set them, whether the broker delivered it before, and its
/// decoded body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AmqpRecord<V> {
    /// The `message_id` property, if the publisher set one.
    pub message_id: Option<String>,
    /// The routing key it was published with.
    pub routing_key: String,
    /// The `timestamp` property (seconds since the epoch, as AMQP has it),
    /// if the publisher set one.
    pub timestamp: Option<u64>,
    /// Whether the broker delivered it before (to this job or another
    /// consumer) without an acknowledgement.
    pub redelivered: bool,
    /// The body, decoded as the source says.
    pub value: V,
}

impl<V> AmqpRecord<V> {
    /// The message's timestamp as an event time in milliseconds (0 if it
    /// has none): `event_time(AmqpRecord::time, ..)`. AMQP timestamps have
    /// whole seconds; a field of the body is usually the better event time.
    pub fn time(&self) -> u64 {
        self.timestamp.map_or(0, |t| t.saturating_mul(1000))
    }
}

/// How to reach a broker: the URL (`amqp://` or `amqps://`, credentials
/// and virtual host in it), a CA file for `amqps://`, and how long to wait.
/// Shared by the source and the sink.
#[derive(Clone)]
pub(crate) struct AmqpClient {
    url: String,
    ca_file: Option<PathBuf>,
    timeout: Duration,
}

impl AmqpClient {
    pub(crate) fn new(url: String) -> Self {
        AmqpClient {
            url,
            ca_file: None,
            timeout: Duration::from_secs(10),
        }
    }

    pub(crate) fn set_ca_file(&mut self, path: PathBuf) {
        self.ca_file = Some(path);
    }

    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    /// The URL without its password, for messages.
    pub(crate) fn shown(&self) -> String {
        redact(&self.url)
    }

    /// A connection, within the timeout.
    pub(crate) fn connect(&self) -> Result<Connection, String> {
        let cert_chain = match &self.ca_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| format!("cannot read the CA file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let tls = OwnedTLSConfig {
            identity: None,
            cert_chain,
        };
        let runtime = lapin::runtime::default_runtime()
            .map_err(|e| format!("cannot start the AMQP client: {e}"))?;
        let url = self.url.clone();
        within(self.timeout, async move {
            Connection::connect_with_config(&url, ConnectionProperties::default(), tls, runtime)
                .await
        })
        .map_err(|e| format!("cannot connect to {}: {e}", self.shown()))
    }

    /// Waits for `future` (an AMQP operation) at most the timeout.
    pub(crate) fn wait<T: Send + 'static>(
        &self,
        future: impl Future<Output = lapin::Result<T>> + Send + 'static,
    ) -> Result<T, String> {
        within(self.timeout, future)
    }
}

/// Runs `future` to its end on a thread of its own, waiting at most
/// `timeout` for it: an unreachable broker is an error, not a hang.
pub(crate) fn within<T: Send + 'static>(
    timeout: Duration,
    future: impl Future<Output = lapin::Result<T>> + Send + 'static,
) -> Result<T, String> {
    let (done, result) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("weir-amqp".into())
        .spawn(move || {
            let _ = done.send(futures_executor::block_on(future));
        })
        .map_err(|e| format!("cannot start a thread: {e}"))?;
    match result.recv_timeout(timeout) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// `url` with the password of its credentials, if any, replaced by `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((credentials, host)) => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}{path}")
        }
        None => url.to_string(),
    }
}

/// What an AMQP source reads, whatever its bodies are: shared by the
/// source and its partition readers.
#[derive(Clone)]
struct Queue {
    client: AmqpClient,
    queue: String,
    declare: bool,
    consumers: usize,
    prefetch: u16,
    bounded: bool,
}

/// A RabbitMQ (AMQP 0.9.1) queue as a source of [`AmqpRecord`]s.
///
/// Each of its [`consumers`](Amqp::consumers) (default 1) is a partition of
/// the source with its own watermark, on worker `c % peers`, reading the
/// queue with manual acknowledgements and a prefetch limit
/// ([`prefetch`](Amqp::prefetch), the broker's backpressure). Messages are
/// acknowledged once the job is done with them (see the module docs): with
/// checkpoints a consumer holds the messages read since the last complete
/// checkpoint unacknowledged, and a checkpoint (taken at a watermark) may
/// need it to read further than its prefetch allows: it then doubles its
/// prefetch (channel-wide, up to no limit), so that the job never stalls,
/// at the cost of holding more messages in memory.
/// Bodies are raw bytes ([`Amqp::new`]), UTF-8 text ([`text`](Amqp::text)),
/// JSON ([`json`](Amqp::json)) or a CSV line ([`csv`](Amqp::csv)); a body
/// that does not decode stops the job with an error naming the queue, the
/// consumer, the message and the reason (and the message is not
/// acknowledged).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use weir::prelude::*;
/// use weir::sources::{Amqp, AmqpRecord};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Click { user: String, ts: u64 }
///
/// let p = Pipeline::new("clicks");
/// p.source(Amqp::new("amqp://guest:guest@127.0.0.1:5672/%2f", "clicks").json::<Click>())
///     .event_time(|r: &AmqpRecord<Click>| r.value.ts, Watermark::bounded(Duration::from_secs(1)))
///     .key_by(|r| r.value.user.clone())
///     .window(Tumbling::of(Duration::from_secs(10)))
///     .count()
///     .sink(JsonLinesFile::to("counts.jsonl"));
/// p.run(Cluster::threads(2)).unwrap();
/// ```
pub struct Amqp<V> {
    queue: Queue,
    format: &'static str,
    decode: Decode<V>,
}

impl Amqp<Vec<u8>> {
    /// Reads queue `queue` of the broker at `url`
    /// (`amqp://user:password@host:port/vhost`, the default virtual host
    /// being `%2f`; `amqps://` for TLS), bodies as raw bytes, with one
    /// consumer, without end. The queue must exist (see
    /// [`declare`](Amqp::declare)).
    pub fn new(url: impl Into<String>, queue: impl Into<String>) -> Self {
        Amqp {
            queue: Queue {
                client: AmqpClient::new(url.into()),
                queue: queue.into(),
                declare: false,
                consumers: 1,
                prefetch: 10_000,
                bounded: false,
            },
            format: "bytes",
            decode: decode::bytes(),
        }
    }
}

impl<V> Amqp<V> {
    /// Values decoded by `decode`, shown as `format` (`json`, `csv`, ...).
    pub(crate) fn with_decode<U>(self, format: &'static str, decode: Decode<U>) -> Amqp<U> {
        Amqp {
            queue: self.queue,
            format,
            decode,
        }
    }

    /// Bodies as UTF-8 text.
    pub fn text(self) -> Amqp<String> {
        self.with_decode("text", decode::text())
    }

    /// Bodies as JSON documents of type `U`.
    pub fn json<U: DeserializeOwned + 'static>(self) -> Amqp<U> {
        self.with_decode("json", decode::json())
    }

    /// Bodies as one CSV line each, without a header, read into `U` field
    /// by field in order.
    pub fn csv<U: DeserializeOwned + 'static>(self) -> Amqp<U> {
        self.with_decode("csv", decode::csv())
    }

    /// Bodies decoded by `decode` (its error says why a body does not).
    pub fn decode_with<U>(
        self,
        decode: impl Fn(&[u8]) -> Result<U, String> + Send + Sync + 'static,
    ) -> Amqp<U> {
        self.with_decode("custom", Arc::new(decode))
    }

    /// Declares the queue (durable) if it does not exist, instead of
    /// requiring it.
    pub fn declare(mut self) -> Self {
        self.queue.declare = true;
        self
    }

    /// Reads the queue with `n` consumers (at least 1), partitions of the
    /// source spread over the workers. The number is part of the job's
    /// plan: keep it across restores.
    pub fn consumers(mut self, n: usize) -> Self {
        self.queue.consumers = n.max(1);
        self
    }

    /// How many messages the broker sends each consumer ahead of its
    /// acknowledgements (default 10 000, at least 1), at first: a consumer
    /// whose checkpoints need more raises it (see [`Amqp`]).
    pub fn prefetch(mut self, n: u16) -> Self {
        self.queue.prefetch = n.max(1);
        self
    }

    /// Reads the messages the queue holds when the job starts, then
    /// finishes as a file does: for tests, backfills and reprocessing.
    /// With one consumer it reads exactly the count the broker reported;
    /// with several, each finishes once the broker reports the queue
    /// empty.
    pub fn bounded(mut self) -> Self {
        self.queue.bounded = true;
        self
    }

    /// The CA certificate(s) (PEM) an `amqps://` broker's certificate is
    /// checked against, instead of the system's.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.queue.client.set_ca_file(path.into());
        self
    }

    /// How long to wait for the broker when the job starts (default
    /// 10 s): an unreachable broker or a missing queue is an error after
    /// it, not a hang.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.queue.client.set_timeout(timeout);
        self
    }
}

impl Queue {
    /// Declares or checks the queue on `channel`: its message count.
    fn check(&self, channel: &Channel) -> Result<u32, String> {
        let options = QueueDeclareOptions {
            passive: !self.declare,
            durable: true,
            ..Default::default()
        };
        let (ch, name) = (channel.clone(), self.queue.clone());
        let queue = self
            .client
            .wait(async move {
                ch.queue_declare(name.as_str().into(), options, FieldTable::default())
                    .await
            })
            .map_err(|e| match self.declare {
                true => format!("cannot declare queue `{}`: {e}", self.queue),
                false => format!(
                    "queue `{}` not found on {} (or not readable): {e}",
                    self.queue,
                    self.client.shown()
                ),
            })?;
        Ok(queue.message_count())
    }
}

impl<V: Data> Source for Amqp<V> {
    type Item = AmqpRecord<V>;

    fn describe(&self) -> String {
        format!("amqp({}, {})", self.queue.queue, self.format)
    }

    fn bounded(&self) -> bool {
        self.queue.bounded
    }

    fn resumable(&self) -> bool {
        true
    }

    fn acknowledges(&self) -> bool {
        true
    }

    fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<Vec<Box<dyn PartitionReader<AmqpRecord<V>>>>, SourceError> {
        let broker_error = |reason: String| SourceError::Broker {
            source_name: ctx.name().to_string(),
            reason,
        };
        // Messages the restored checkpoint holds unacknowledged, from
        // every consumer: a redelivery may come to any.
        let mut restored = HashSet::new();
        for (partition, state) in ctx.restored_states() {
            let ids: Vec<String> = serde_json::from_slice(state).map_err(|e| {
                broker_error(format!(
                    "consumer {partition}: the checkpoint's message ids do not parse: {e}"
                ))
            })?;
            restored.extend(ids);
        }
        let mut readers: Vec<Box<dyn PartitionReader<AmqpRecord<V>>>> = Vec::new();
        for c in (ctx.worker()..self.queue.consumers).step_by(ctx.peers()) {
            let reader = self
                .consume(ctx, c, restored.clone())
                .map_err(broker_error)?;
            readers.push(Box::new(reader));
        }
        Ok(readers)
    }
}

impl<V: Data> Amqp<V> {
    /// Consumer `c`: a connection and channel of its own, consuming the
    /// queue, its acknowledgements settled at the job's end.
    fn consume(
        &self,
        ctx: &SourceContext,
        c: usize,
        restored: HashSet<String>,
    ) -> Result<AmqpPartition<V>, String> {
        let q = &self.queue;
        let connection = Arc::new(q.client.connect()?);
        let conn = Arc::clone(&connection);
        let channel = q
            .client
            .wait(async move { conn.create_channel().await })
            .map_err(|e| format!("cannot open a channel: {e}"))?;
        let count = q.check(&channel)?;
        let (ch, prefetch) = (channel.clone(), q.prefetch);
        q.client
            .wait(async move {
                ch.basic_qos(prefetch, BasicQosOptions { global: true })
                    .await
            })
            .map_err(|e| format!("cannot set the prefetch to {prefetch}: {e}"))?;
        let (ch, name) = (channel.clone(), q.queue.clone());
        let tag = format!("weir-{}-{c}", std::process::id());
        let consumer = q
            .client
            .wait(async move {
                ch.basic_consume(
                    name.as_str().into(),
                    tag.as_str().into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
            })
            .map_err(|e| format!("cannot consume queue `{}`: {e}", q.queue))?;
        let remaining = match (q.bounded, q.consumers) {
            (true, 1) => {
                ctx.expect_work(u64::from(count));
                Some(u64::from(count))
            }
            _ => None,
        };
        let acks = Arc::new(Mutex::new(Acks {
            channel: channel.clone(),
            pending: VecDeque::new(),
        }));
        let (ending, timeout) = (Arc::clone(&acks), q.client.timeout());
        ctx.at_end(move |completed| {
            let acks = ending.lock().unwrap_or_else(|p| p.into_inner());
            // Unacknowledged messages of a job that did not complete go
            // back to the queue when the channel closes.
            let last = acks.pending.back().map(|p| p.tag);
            if let (true, Some(tag)) = (completed, last)
                && let Err(e) = acks.ack(tag, true)
            {
                eprintln!("weir: warning: queue acknowledgements at the job's end: {e}");
            }
            let channel = acks.channel.clone();
            let _ = within(timeout, async move {
                channel.close(200, "done".into()).await?;
                connection.close(200, "done".into()).await
            });
        });
        Ok(AmqpPartition {
            queue: q.clone(),
            decode: Arc::clone(&self.decode),
            consumer,
            acks,
            partition: c,
            returned: 0,
            prefetch: q.prefetch,
            remaining,
            drained_check: None,
            cancelled: false,
            restored,
            name: ctx.name().to_string(),
            work: ctx.work_done(),
            bad: ctx.bad_records(),
            unacked: ctx.gauge(
                "weir_amqp_unacked_messages",
                "Messages a RabbitMQ consumer was delivered and has not acknowledged yet",
                vec![("queue", q.queue.clone()), ("consumer", c.to_string())],
            ),
        })
    }
}

/// A consumer's channel and the messages it returned and has not
/// acknowledged yet, shared with its settling at the job's end.
struct Acks {
    channel: Channel,
    /// (position, delivery tag, message id), oldest first.
    pending: VecDeque<Pending>,
}

/// A message returned and not acknowledged yet.
struct Pending {
    /// How many messages the consumer had returned before it.
    position: u64,
    tag: u64,
    id: Option<String>,
}

impl Acks {
    /// Acknowledges delivery `tag` (and, if `multiple`, every earlier one
    /// of the channel).
    ///
    /// Only hands the frame to the connection's I/O: it does not wait for
    /// the broker.
    fn ack(&self, tag: u64, multiple: bool) -> Result<(), String> {
        futures_executor::block_on(self.channel.basic_ack(tag, BasicAckOptions { multiple }))
            .map_err(|e| e.to_string())
    }
}

/// One consumer of a queue.
struct AmqpPartition<V> {
    /// While metrics are served: its unacknowledged deliveries.
    unacked: Option<Arc<std::sync::atomic::AtomicU64>>,
    queue: Queue,
    decode: Decode<V>,
    consumer: Consumer,
    acks: Arc<Mutex<Acks>>,
    partition: usize,
    /// How many messages it has returned: its position.
    returned: u64,
    /// Its prefetch now (0: no limit).
    prefetch: u16,
    /// Bounded with one consumer: how many messages are left to read.
    remaining: Option<u64>,
    /// Bounded with several consumers: when the queue was last found not
    /// empty.
    drained_check: Option<Instant>,
    /// Bounded with several consumers: the queue was found empty and the
    /// consumer stopped; it ends once the broker says it has stopped.
    cancelled: bool,
    /// Ids of messages the restored checkpoint holds unacknowledged: their
    /// redeliveries are dropped.
    restored: HashSet<String>,
    name: String,
    work: Arc<AtomicU64>,
    bad: BadRecords,
}

impl<V> AmqpPartition<V> {
    fn error(&self, reason: impl std::fmt::Display) -> BoxError {
        format!(
            "source `{}`: queue `{}` consumer {} message {}: {reason}",
            self.name, self.queue.queue, self.partition, self.returned
        )
        .into()
    }

    fn acks(&self) -> std::sync::MutexGuard<'_, Acks> {
        self.acks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Doubles the prefetch (up to no limit at all) if the consumer holds
    /// as many messages unacknowledged as it allows: they wait for a
    /// checkpoint that needs the consumer to read further, which it could
    /// not otherwise do.
    fn grow_prefetch(&mut self) -> Result<(), BoxError> {
        let held = self.acks().pending.len();
        if self.prefetch == 0 || held < usize::from(self.prefetch) {
            return Ok(());
        }
        let grown = match self.prefetch {
            u16::MAX => 0,
            n => n.saturating_mul(2),
        };
        let channel = self.acks().channel.clone();
        let options = BasicQosOptions { global: true };
        self.queue
            .client
            .wait(async move { channel.basic_qos(grown, options).await })
            .map_err(|e| self.error(format!("cannot raise the prefetch to {grown}: {e}")))?;
        self.prefetch = grown;
        Ok(())
    }

    /// Bounded with several consumers: whether the broker reports the
    /// queue empty (asked at most every 100 ms).
    fn drained(&mut self) -> Result<bool, BoxError> {
        if self
            .drained_check
            .is_some_and(|at| at.elapsed() < Duration::from_millis(100))
        {
            return Ok(false);
        }
        self.drained_check = Some(Instant::now());
        let channel = self.acks().channel.clone();
        let count = self.queue.check(&channel).map_err(|e| self.error(e))?;
        Ok(count == 0)
    }
}

impl<V: Data> PartitionReader<AmqpRecord<V>> for AmqpPartition<V> {
    fn read(&mut self, out: &mut Vec<AmqpRecord<V>>, max: usize) -> Result<ReadStatus, BoxError> {
        // Records returned, and messages taken (records and those that do
        // not decode).
        let (mut read, mut taken) = (0, 0);
        let mut cx = Context::from_waker(Waker::noop());
        // Locked once per read, not per message (the lock is shared only
        // with the job's end).
        let acks = Arc::clone(&self.acks);
        let mut acks = acks.lock().unwrap_or_else(|p| p.into_inner());
        while read < max.max(1) {
            if self.remaining == Some(0) {
                return Ok(ReadStatus::Done);
            }
            let delivery = match Pin::new(&mut self.consumer).poll_next(&mut cx) {
                Poll::Pending => break,
                Poll::Ready(None) if self.cancelled => return Ok(ReadStatus::Done),
                Poll::Ready(None) => {
                    return Err(self.error("the broker cancelled the consumer (queue deleted?)"));
                }
                Poll::Ready(Some(Err(e))) => {
                    return Err(self.error(format!("the broker says: {e}")));
                }
                Poll::Ready(Some(Ok(delivery))) => delivery,
            };
            if let Some(remaining) = self.remaining.as_mut() {
                *remaining -= 1;
                self.work.fetch_add(1, Ordering::Relaxed);
            }
            let id = delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.to_string());
            if let Some(id) = id.as_ref().filter(|_| delivery.redelivered)
                && self.restored.remove(id)
            {
                // Counted in the checkpoint restored from: acknowledged
                // now, not counted again.
                acks.ack(delivery.delivery_tag, false)
                    .map_err(|e| self.error(e))?;
                continue;
            }
            // A message that does not decode is acknowledged as a record
            // is, once the job is done with it (skipped, or its dead
            // letter written).
            let value = match (self.decode)(&delivery.data) {
                Ok(value) => Some(value),
                Err(reason) => {
                    let origin = Origin::Queue {
                        queue: self.queue.queue.clone(),
                        consumer: self.partition,
                        delivery: delivery.delivery_tag,
                        message_id: id.clone(),
                    };
                    self.bad.reject(origin, &delivery.data, reason)?;
                    None
                }
            };
            acks.pending.push_back(Pending {
                position: self.returned,
                tag: delivery.delivery_tag,
                id: id.clone(),
            });
            self.returned += 1;
            taken += 1;
            if let Some(value) = value {
                out.push(AmqpRecord {
                    message_id: id,
                    routing_key: delivery.routing_key.to_string(),
                    timestamp: *delivery.properties.timestamp(),
                    redelivered: delivery.redelivered,
                    value,
                });
                read += 1;
            }
        }
        if let Some(gauge) = &self.unacked {
            gauge.store(
                acks.pending.len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        drop(acks);
        if taken > 0 {
            self.drained_check = None;
            return Ok(ReadStatus::More);
        }
        self.grow_prefetch()?;
        if self.queue.bounded && self.remaining.is_none() && !self.cancelled && self.drained()? {
            // Nothing waits in the queue: stop the consumer, and end once
            // what the broker sent it before is read.
            let (channel, tag) = (self.acks().channel.clone(), self.consumer.tag());
            self.queue
                .client
                .wait(async move {
                    channel
                        .basic_cancel(tag, BasicCancelOptions::default())
                        .await
                })
                .map_err(|e| self.error(format!("cannot stop the consumer: {e}")))?;
            self.cancelled = true;
            return Ok(ReadStatus::More);
        }
        Ok(ReadStatus::Idle)
    }

    fn position(&self) -> Option<u64> {
        Some(self.returned)
    }

    /// A queue has no positions to go back to: the count of messages
    /// returned goes on from the checkpoint's.
    fn seek(&mut self, position: u64) -> Result<(), BoxError> {
        self.returned = position;
        Ok(())
    }

    /// The ids of the messages returned and not acknowledged, and of the
    /// restored ones whose redelivery has not come yet.
    fn state(&self) -> Vec<u8> {
        let acks = self.acks();
        let ids: Vec<&str> = acks
            .pending
            .iter()
            .filter_map(|p| p.id.as_deref())
            .chain(self.restored.iter().map(String::as_str))
            .collect();
        if ids.is_empty() {
            return Vec::new();
        }
        serde_json::to_vec(&ids).unwrap_or_default()
    }

    /// Acknowledges every message returned before `position`.
    fn release(&mut self, position: u64) -> Result<(), BoxError> {
        let mut acks = self.acks();
        let mut last = None;
        while acks.pending.front().is_some_and(|p| p.position < position) {
            last = acks.pending.pop_front().map(|p| p.tag);
        }
        let acked = match last {
            Some(tag) => acks.ack(tag, true),
            None => Ok(()),
        };
        if let Some(gauge) = &self.unacked {
            gauge.store(
                acks.pending.len() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        }
        drop(acks);
        acked.map_err(|e| self.error(format!("cannot acknowledge: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(
            redact("amqp://weir:s3cret@127.0.0.1:5672/%2f"),
            "amqp://weir:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(
            redact("amqps://user:p@ss@host/vh"),
            "amqps://user:***@host/vh"
        );
        assert_eq!(redact("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
        assert_eq!(redact("not a url"), "not a url");
    }
}
