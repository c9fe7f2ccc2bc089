//! A Kafka topic as a source (feature `kafka`).
//!
//! Every partition of the topic is a source partition of weir, read by
//! exactly one worker of the cluster (partition `p` by worker `p % peers`,
//! whatever the number of partitions and workers), with its own watermark.
//! Partitions are assigned explicitly, not through a consumer group, so a
//! job starts reading at once and its positions are its own: they are the
//! offsets saved in weir's checkpoints, and a restored job seeks every
//! partition back to them. With a group ([`Kafka::group`]), the offsets of
//! each completed checkpoint are also committed to the group (the next
//! offset to read, as Kafka expects), so that the usual tools show the lag,
//! and so are the positions a completed job ended at.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weir_engine::BoxError;

use super::decode::{self, Decode};
use super::{BadRecords, Origin, PartitionReader, ReadStatus, Source, SourceContext};
use crate::Data;
use crate::error::SourceError;

/// One Kafka record: where it was in the topic, its key, its timestamp and
/// its decoded value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaRecord<V> {
    /// The partition of the topic.
    pub partition: i32,
    /// The offset within the partition.
    pub offset: i64,
    /// The record's timestamp in milliseconds since the epoch, if it has
    /// one.
    pub timestamp: Option<i64>,
    /// The record's key, if it has one.
    pub key: Option<Vec<u8>>,
    /// The record's value, decoded as the source says.
    pub value: V,
}

impl<V> KafkaRecord<V> {
    /// The record's timestamp as an event time (milliseconds; 0 if it has
    /// none or it is before the epoch): `event_time(KafkaRecord::time, ..)`.
    pub fn time(&self) -> u64 {
        self.timestamp.map_or(0, |t| t.max(0) as u64)
    }
}

/// Where a Kafka source starts reading a partition when it is not restored
/// from a checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KafkaStart {
    /// At the first record the partition holds.
    Earliest,
    /// After the last record it holds when the job starts.
    Latest,
    /// At the offset the consumer group committed (the earliest if none).
    Committed,
    /// At the first record with a timestamp at or after this one
    /// (milliseconds since the epoch; the end if there is none).
    Timestamp(i64),
}

/// How to reach Kafka: the brokers, the user's librdkafka settings and how
/// long to wait for the brokers. Shared by the source and the sink. Its
/// `Debug` names the settings without their values (a password among them
/// stays out of logs).
#[derive(Clone)]
pub(crate) struct KafkaClient {
    brokers: String,
    settings: Vec<(String, String)>,
    timeout: Duration,
}

impl std::fmt::Debug for KafkaClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let settings: Vec<&str> = self.settings.iter().map(|(key, _)| key.as_str()).collect();
        f.debug_struct("KafkaClient")
            .field("brokers", &self.brokers)
            .field("settings", &settings)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl KafkaClient {
    pub(crate) fn new(brokers: String, timeout: Duration) -> Self {
        KafkaClient {
            brokers,
            settings: Vec::new(),
            timeout,
        }
    }

    pub(crate) fn brokers(&self) -> &str {
        &self.brokers
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }

    pub(crate) fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// Adds a librdkafka setting; the user's settings come last, so they
    /// override weir's.
    pub(crate) fn set(&mut self, key: String, value: String) {
        self.settings.push((key, value));
    }

    /// A client configuration: the brokers, `fixed` (weir's settings for
    /// this client), then the user's settings.
    pub(crate) fn config(&self, fixed: &[(&str, String)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("log_level", "3");
        for (key, value) in fixed {
            config.set(*key, value);
        }
        for (key, value) in &self.settings {
            config.set(key, value);
        }
        config
    }
}

/// What a Kafka source reads, whatever its values are: shared by the
/// source and its partition readers.
#[derive(Debug, Clone)]
struct Topic {
    client: KafkaClient,
    topic: String,
    start: KafkaStart,
    bounded: bool,
    group: Option<String>,
}

/// A Kafka topic as a source of [`KafkaRecord`]s.
///
/// Values are raw bytes ([`Kafka::new`]), UTF-8 text ([`text`](Kafka::text)),
/// JSON ([`json`](Kafka::json)) or a CSV line ([`csv`](Kafka::csv)). A value
/// that does not decode stops the job with an error naming the topic, the
/// partition, the offset and the reason.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use weir::prelude::*;
/// use weir::sources::{Kafka, KafkaRecord, KafkaStart};
///
/// #[derive(Clone, serde::Serialize, serde::Deserialize)]
/// struct Click { user: String, ts: u64 }
///
/// let p = Pipeline::new("clicks");
/// p.source(Kafka::new("127.0.0.1:9092", "clicks").json::<Click>().start(KafkaStart::Earliest))
///     .event_time(|r: &KafkaRecord<Click>| r.value.ts, Watermark::bounded(Duration::from_secs(1)))
///     .key_by(|r| r.value.user.clone())
///     .window(Tumbling::of(Duration::from_secs(10)))
///     .count()
///     .sink(JsonLinesFile::to("counts.jsonl"));
/// p.run(Cluster::threads(2)).unwrap();
/// ```
pub struct Kafka<V> {
    topic: Topic,
    format: &'static str,
    decode: Decode<V>,
    /// The consumer committing offsets to the group, made at the first
    /// commit.
    committer: std::sync::Mutex<Option<BaseConsumer>>,
}

impl Kafka<Vec<u8>> {
    /// Reads topic `topic` from the brokers `brokers` (`host:port`, comma
    /// separated), values as raw bytes, from the earliest record, without
    /// end.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        Kafka {
            topic: Topic {
                client: KafkaClient::new(brokers.into(), Duration::from_secs(10)),
                topic: topic.into(),
                start: KafkaStart::Earliest,
                bounded: false,
                group: None,
            },
            format: "bytes",
            decode: decode::bytes(),
            committer: Default::default(),
        }
    }
}

impl<V> Kafka<V> {
    /// Values decoded by `decode`, shown as `format` (`json`, `csv`, ...).
    pub(crate) fn with_decode<U>(self, format: &'static str, decode: Decode<U>) -> Kafka<U> {
        Kafka {
            topic: self.topic,
            format,
            decode,
            committer: Default::default(),
        }
    }

    /// Values as UTF-8 text.
    pub fn text(self) -> Kafka<String> {
        self.with_decode("text", decode::text())
    }

    /// Values as JSON documents of type `U`.
    pub fn json<U: DeserializeOwned + 'static>(self) -> Kafka<U> {
        self.with_decode("json", decode::json())
    }

    /// Values as one CSV line each, without a header, read into `U` field
    /// by field in order.
    pub fn csv<U: DeserializeOwned + 'static>(self) -> Kafka<U> {
        self.with_decode("csv", decode::csv())
    }

    /// Values decoded by `decode` (its error says why a value does not).
    pub fn decode_with<U>(
        self,
        decode: impl Fn(&[u8]) -> Result<U, String> + Send + Sync + 'static,
    ) -> Kafka<U> {
        self.with_decode("custom", Arc::new(decode))
    }

    /// Where partitions start when the job is not restored from a
    /// checkpoint (default [`KafkaStart::Earliest`]).
    pub fn start(mut self, start: KafkaStart) -> Self {
        self.topic.start = start;
        self
    }

    /// Reads each partition up to its end as of the job's start, then
    /// finishes as a file does (Flink's bounded `KafkaSource`): for tests,
    /// backfills and reprocessing.
    pub fn bounded(mut self) -> Self {
        self.topic.bounded = true;
        self
    }

    /// The consumer group whose committed offsets [`KafkaStart::Committed`]
    /// starts from, and to which the offsets of each completed checkpoint,
    /// and those a completed job ended at, are committed.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.topic.group = Some(group.into());
        self
    }

    /// Sets a librdkafka client property (e.g. `security.protocol`,
    /// `sasl.mechanisms`): see librdkafka's `CONFIGURATION.md`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.topic.client.set(key.into(), value.into());
        self
    }

    /// How long to wait for the brokers when the job starts (default
    /// 10 s): an unreachable broker or a missing topic is an error after
    /// it, not a hang.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.topic.client.set_timeout(timeout);
        self
    }
}

impl Topic {
    /// Commits each partition's position (the next offset to read) to the
    /// consumer group through `consumer`.
    fn commit(&self, consumer: &BaseConsumer, positions: &[(usize, u64)]) -> Result<(), BoxError> {
        let mut tpl = TopicPartitionList::new();
        for &(partition, position) in positions {
            tpl.add_partition_offset(
                &self.topic,
                partition as i32,
                Offset::Offset(position as i64),
            )?;
        }
        consumer.commit(&tpl, CommitMode::Sync)?;
        Ok(())
    }

    /// Commits where the partitions of a completed job ended, which the
    /// job's last regular checkpoint may not hold (it may end before the
    /// next one); a failure is a warning, as after a checkpoint.
    fn commit_end(&self, reached: &[(usize, Arc<AtomicI64>)]) {
        let positions: Vec<(usize, u64)> = reached
            .iter()
            .map(|(p, next)| (*p, next.load(Ordering::Relaxed).max(0) as u64))
            .collect();
        let committed = self
            .consumer()
            .map_err(BoxError::from)
            .and_then(|consumer| self.commit(&consumer, &positions));
        if let Err(e) = committed {
            eprintln!(
                "weir: warning: topic `{}`: could not commit the job's end positions to group `{}`: {e}",
                self.topic,
                self.group.as_deref().unwrap_or_default()
            );
        }
    }

    /// A consumer with this source's settings.
    fn consumer(&self) -> Result<BaseConsumer, String> {
        let group = self
            .group
            .clone()
            .unwrap_or_else(|| format!("weir-{}", self.topic));
        let timeout = self.client.timeout().as_millis().max(10).to_string();
        self.client
            .config(&[
                ("enable.auto.commit", "false".into()),
                ("enable.auto.offset.store", "false".into()),
                ("enable.partition.eof", "false".into()),
                ("group.id", group),
                ("socket.timeout.ms", timeout),
            ])
            .create()
            .map_err(|e| format!("cannot make a Kafka client: {e}"))
    }

    /// The number of partitions of the topic.
    fn partitions(&self, consumer: &BaseConsumer) -> Result<i32, String> {
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), self.client.timeout())
            .map_err(|e| {
                format!(
                    "cannot reach the brokers {} within {:?}: {e}",
                    self.client.brokers(),
                    self.client.timeout()
                )
            })?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .ok_or_else(|| {
                format!(
                    "topic `{}` not found on {}",
                    self.topic,
                    self.client.brokers()
                )
            })?;
        Ok(topic.partitions().len() as i32)
    }

    /// Where partition `p` starts, and where it ends if bounded.
    fn range(&self, consumer: &BaseConsumer, p: i32) -> Result<(i64, Option<i64>), String> {
        let (low, high) = consumer
            .fetch_watermarks(&self.topic, p, self.client.timeout())
            .map_err(|e| format!("partition {p}: cannot read its offsets: {e}"))?;
        let start = match self.start {
            KafkaStart::Earliest => low,
            KafkaStart::Latest => high,
            KafkaStart::Committed => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&self.topic, p);
                let committed = consumer
                    .committed_offsets(tpl, self.client.timeout())
                    .map_err(|e| format!("partition {p}: cannot read the committed offset: {e}"))?;
                match committed.find_partition(&self.topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o.clamp(low, high),
                    _ => low,
                }
            }
            KafkaStart::Timestamp(ts) => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition_offset(&self.topic, p, Offset::Offset(ts))
                    .map_err(|e| e.to_string())?;
                let found = consumer
                    .offsets_for_times(tpl, self.client.timeout())
                    .map_err(|e| format!("partition {p}: cannot look up timestamp {ts}: {e}"))?;
                match found.find_partition(&self.topic, p).map(|e| e.offset()) {
                    Some(Offset::Offset(o)) => o.clamp(low, high),
                    _ => high,
                }
            }
        };
        Ok((start, self.bounded.then_some(high)))
    }
}

impl<V: Data> Source for Kafka<V> {
    type Item = KafkaRecord<V>;

    fn describe(&self) -> String {
        format!("kafka({}, {})", self.topic.topic, self.format)
    }

    fn bounded(&self) -> bool {
        self.topic.bounded
    }

    fn resumable(&self) -> bool {
        true
    }

    /// Commits each partition's position (the next offset to read) to the
    /// consumer group, if the source has one.
    fn checkpoint_committed(&self, positions: &[(usize, u64)]) -> Result<(), BoxError> {
        if self.topic.group.is_none() || positions.is_empty() {
            return Ok(());
        }
        let mut committer = self.committer.lock().unwrap_or_else(|p| p.into_inner());
        let consumer = match committer.take() {
            Some(consumer) => consumer,
            None => self.topic.consumer()?,
        };
        let consumer = committer.insert(consumer);
        self.topic.commit(consumer, positions)
    }

    fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<Vec<Box<dyn PartitionReader<KafkaRecord<V>>>>, SourceError> {
        let broker_error = |reason: String| SourceError::Broker {
            source_name: ctx.name().to_string(),
            reason,
        };
        let consumer = self.topic.consumer().map_err(broker_error)?;
        let partitions = self.topic.partitions(&consumer).map_err(broker_error)?;
        let mut readers: Vec<Box<dyn PartitionReader<KafkaRecord<V>>>> = Vec::new();
        let mut reached = Vec::new();
        for p in (ctx.worker() as i32..partitions).step_by(ctx.peers()) {
            let (next, end) = self.topic.range(&consumer, p).map_err(broker_error)?;
            if let Some(end) = end {
                ctx.expect_work(end.saturating_sub(next).max(0) as u64);
            }
            let shown = Arc::new(AtomicI64::new(next));
            reached.push((p as usize, Arc::clone(&shown)));
            readers.push(Box::new(KafkaPartition {
                consumer: None,
                topic: self.topic.clone(),
                decode: Arc::clone(&self.decode),
                partition: p,
                next,
                reached: shown,
                end,
                bad: ctx.bad_records(),
                name: ctx.name().to_string(),
                work: ctx.work_done(),
            }));
        }
        watch_lag(ctx, &self.topic, &reached);
        if self.topic.group.is_some() && !reached.is_empty() {
            let topic = self.topic.clone();
            ctx.at_end(move |completed| {
                if completed {
                    topic.commit_end(&reached);
                }
            });
        }
        Ok(readers)
    }
}

/// While the job's metrics are served: keeps each partition's consumer lag
/// (its high watermark minus the next offset to read,
/// `weir_kafka_consumer_lag_records`) up to date from a thread that asks the
/// broker for the partitions' high watermarks once a second, until the job
/// ends. `reached`: `(partition, next offset)` of this worker's partitions.
fn watch_lag(ctx: &SourceContext, topic: &Topic, reached: &[(usize, Arc<AtomicI64>)]) {
    let lags: Vec<(i32, Arc<AtomicI64>, Arc<AtomicU64>)> = reached
        .iter()
        .filter_map(|(p, next)| {
            let gauge = ctx.gauge(
                "weir_kafka_consumer_lag_records",
                "Records of a Kafka partition not read yet: its high watermark minus the next offset",
                vec![("topic", topic.topic.clone()), ("partition", p.to_string())],
            )?;
            Some((*p as i32, Arc::clone(next), gauge))
        })
        .collect();
    if lags.is_empty() {
        return;
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (watching, topic) = (Arc::clone(&stop), topic.clone());
    let spawned = std::thread::Builder::new()
        .name("weir-kafka-lag".into())
        .spawn(move || {
            let Ok(consumer) = topic.consumer() else {
                return;
            };
            while !watching.load(Ordering::Relaxed) {
                for (p, next, gauge) in &lags {
                    // A broker that does not answer leaves the last figure.
                    if let Ok((_, high)) =
                        consumer.fetch_watermarks(&topic.topic, *p, Duration::from_secs(2))
                    {
                        let lag = high.saturating_sub(next.load(Ordering::Relaxed)).max(0);
                        gauge.store(lag as u64, Ordering::Relaxed);
                    }
                }
                for _ in 0..10 {
                    if watching.load(Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        });
    if spawned.is_ok() {
        ctx.at_end(move |_| stop.store(true, Ordering::Relaxed));
    }
}

/// One partition of a Kafka topic, read with a consumer of its own that is
/// assigned the partition at its next offset on the first read.
struct KafkaPartition<V> {
    consumer: Option<BaseConsumer>,
    topic: Topic,
    decode: Decode<V>,
    partition: i32,
    /// The offset of the next record to return.
    next: i64,
    /// `next`, as the job's end commits it to the group.
    reached: Arc<AtomicI64>,
    /// Bounded: the offset it ends at.
    end: Option<i64>,
    bad: BadRecords,
    name: String,
    work: Arc<AtomicU64>,
}

impl<V> KafkaPartition<V> {
    fn error(&self, reason: impl std::fmt::Display) -> BoxError {
        format!(
            "source `{}`: topic `{}` partition {} offset {}: {reason}",
            self.name, self.topic.topic, self.partition, self.next
        )
        .into()
    }

    /// A consumer assigned the partition at its next offset.
    fn connect(&self) -> Result<BaseConsumer, BoxError> {
        let consumer = self.topic.consumer().map_err(|e| self.error(e))?;
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic.topic, self.partition, Offset::Offset(self.next))
            .map_err(|e| self.error(e))?;
        consumer.assign(&tpl).map_err(|e| self.error(e))?;
        Ok(consumer)
    }

    /// Appends at most `max` records polled from `consumer`: how many
    /// messages it took (records, and those that do not decode), and
    /// whether the partition's end was reached.
    fn poll(
        &mut self,
        consumer: &BaseConsumer,
        out: &mut Vec<KafkaRecord<V>>,
        max: usize,
    ) -> Result<(usize, bool), BoxError> {
        let (mut read, mut taken) = (0, 0);
        while read < max.max(1) {
            let message = match consumer.poll(Duration::ZERO) {
                None => break,
                Some(Err(e)) => return Err(self.error(format!("the broker says: {e}"))),
                Some(Ok(m)) => m,
            };
            let offset = message.offset();
            if offset < self.next {
                continue; // librdkafka skips records before the assigned offset
            }
            let value = match message.payload() {
                Some(bytes) => (self.decode)(bytes),
                None => Err("a record without a value".to_string()),
            };
            match value {
                Ok(value) => {
                    out.push(KafkaRecord {
                        partition: self.partition,
                        offset,
                        timestamp: message.timestamp().to_millis(),
                        key: message.key().map(<[u8]>::to_vec),
                        value,
                    });
                    read += 1;
                }
                Err(reason) => {
                    self.next = offset;
                    let origin = Origin::Topic {
                        topic: self.topic.topic.clone(),
                        partition: self.partition,
                        offset,
                    };
                    let raw = message.payload().unwrap_or_default();
                    self.bad.reject(origin, raw, reason)?;
                }
            }
            self.next = offset + 1;
            taken += 1;
            if self.end.is_some_and(|end| self.next >= end) {
                return Ok((taken, true));
            }
        }
        Ok((taken, false))
    }
}

impl<V: Data> PartitionReader<KafkaRecord<V>> for KafkaPartition<V> {
    fn read(&mut self, out: &mut Vec<KafkaRecord<V>>, max: usize) -> Result<ReadStatus, BoxError> {
        if self.end.is_some_and(|end| self.next >= end) {
            return Ok(ReadStatus::Done);
        }
        // The consumer is made on the first read, after a restore's seek.
        let consumer = match self.consumer.take() {
            Some(consumer) => consumer,
            None => self.connect()?,
        };
        let polled = self.poll(&consumer, out, max);
        self.consumer = Some(consumer);
        // Once per read, not per record.
        self.reached.store(self.next, Ordering::Relaxed);
        let (read, ended) = polled?;
        if self.end.is_some() {
            self.work.fetch_add(read as u64, Ordering::Relaxed);
        }
        Ok(match (ended, read) {
            (true, _) => ReadStatus::Done,
            (false, 0) => ReadStatus::Idle,
            (false, _) => ReadStatus::More,
        })
    }

    fn position(&self) -> Option<u64> {
        Some(self.next.max(0) as u64)
    }

    fn seek(&mut self, position: u64) -> Result<(), BoxError> {
        if self.consumer.is_some() {
            return Err(self.error(format!("asked to seek to {position} after reading")));
        }
        self.next = position as i64;
        self.reached.store(self.next, Ordering::Relaxed);
        Ok(())
    }
}
