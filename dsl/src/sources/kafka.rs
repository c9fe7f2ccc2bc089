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
//! offset to read, as Kafka expects), so that the usual tools show the lag.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weir_engine::BoxError;

use super::{PartitionReader, ReadStatus, Source, SourceContext};
use crate::error::SourceError;
use crate::Data;

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

/// Decodes a record's value; the error says why it does not decode.
type Decode<V> = Arc<dyn Fn(&[u8]) -> Result<V, String> + Send + Sync>;

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
    brokers: String,
    topic: String,
    start: KafkaStart,
    bounded: bool,
    group: Option<String>,
    settings: Vec<(String, String)>,
    timeout: Duration,
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
            brokers: brokers.into(),
            topic: topic.into(),
            start: KafkaStart::Earliest,
            bounded: false,
            group: None,
            settings: Vec::new(),
            timeout: Duration::from_secs(10),
            format: "bytes",
            decode: Arc::new(|bytes| Ok(bytes.to_vec())),
            committer: Default::default(),
        }
    }
}

impl<V> Kafka<V> {
    fn with_decode<U>(self, format: &'static str, decode: Decode<U>) -> Kafka<U> {
        Kafka {
            brokers: self.brokers,
            topic: self.topic,
            start: self.start,
            bounded: self.bounded,
            group: self.group,
            settings: self.settings,
            timeout: self.timeout,
            format,
            decode,
            committer: Default::default(),
        }
    }

    /// Values as UTF-8 text.
    pub fn text(self) -> Kafka<String> {
        self.with_decode(
            "text",
            Arc::new(|bytes| {
                String::from_utf8(bytes.to_vec()).map_err(|e| format!("not UTF-8 text: {e}"))
            }),
        )
    }

    /// Values as JSON documents of type `U`.
    pub fn json<U: DeserializeOwned + 'static>(self) -> Kafka<U> {
        self.with_decode(
            "json",
            Arc::new(|bytes| serde_json::from_slice(bytes).map_err(|e| format!("bad JSON: {e}"))),
        )
    }

    /// Values as one CSV line each, without a header, read into `U` field
    /// by field in order.
    pub fn csv<U: DeserializeOwned + 'static>(self) -> Kafka<U> {
        self.with_decode(
            "csv",
            Arc::new(|bytes| {
                let mut reader = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .from_reader(bytes);
                match reader.deserialize().next() {
                    Some(Ok(v)) => Ok(v),
                    Some(Err(e)) => Err(format!("bad CSV: {e}")),
                    None => Err("an empty CSV line".to_string()),
                }
            }),
        )
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
        self.start = start;
        self
    }

    /// Reads each partition up to its end as of the job's start, then
    /// finishes as a file does (Flink's bounded `KafkaSource`): for tests,
    /// backfills and reprocessing.
    pub fn bounded(mut self) -> Self {
        self.bounded = true;
        self
    }

    /// The consumer group whose committed offsets [`KafkaStart::Committed`]
    /// starts from, and to which the offsets of each completed checkpoint
    /// are committed.
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.group = Some(group.into());
        self
    }

    /// Sets a librdkafka client property (e.g. `security.protocol`,
    /// `sasl.mechanisms`): see librdkafka's `CONFIGURATION.md`.
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.settings.push((key.into(), value.into()));
        self
    }

    /// How long to wait for the brokers when the job starts (default
    /// 10 s): an unreachable broker or a missing topic is an error after
    /// it, not a hang.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// A consumer with this source's settings.
    fn consumer(&self) -> Result<BaseConsumer, String> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "false")
            .set(
                "group.id",
                self.group
                    .clone()
                    .unwrap_or_else(|| format!("weir-{}", self.topic)),
            )
            .set(
                "socket.timeout.ms",
                self.timeout.as_millis().max(10).to_string(),
            )
            .set("log_level", "3");
        for (key, value) in &self.settings {
            config.set(key, value);
        }
        config
            .create()
            .map_err(|e| format!("cannot make a Kafka client: {e}"))
    }

    /// The number of partitions of the topic.
    fn partitions(&self, consumer: &BaseConsumer) -> Result<i32, String> {
        let metadata = consumer
            .fetch_metadata(Some(&self.topic), self.timeout)
            .map_err(|e| {
                format!(
                    "cannot reach the brokers {} within {:?}: {e}",
                    self.brokers, self.timeout
                )
            })?;
        let topic = metadata
            .topics()
            .iter()
            .find(|t| t.name() == self.topic)
            .filter(|t| t.error().is_none() && !t.partitions().is_empty())
            .ok_or_else(|| format!("topic `{}` not found on {}", self.topic, self.brokers))?;
        Ok(topic.partitions().len() as i32)
    }

    /// Where partition `p` starts, and where it ends if bounded.
    fn range(&self, consumer: &BaseConsumer, p: i32) -> Result<(i64, Option<i64>), String> {
        let (low, high) = consumer
            .fetch_watermarks(&self.topic, p, self.timeout)
            .map_err(|e| format!("partition {p}: cannot read its offsets: {e}"))?;
        let start = match self.start {
            KafkaStart::Earliest => low,
            KafkaStart::Latest => high,
            KafkaStart::Committed => {
                let mut tpl = TopicPartitionList::new();
                tpl.add_partition(&self.topic, p);
                let committed = consumer
                    .committed_offsets(tpl, self.timeout)
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
                    .offsets_for_times(tpl, self.timeout)
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
        format!("kafka({}, {})", self.topic, self.format)
    }

    fn resumable(&self) -> bool {
        true
    }

    /// Commits each partition's position (the next offset to read) to the
    /// consumer group, if the source has one.
    fn checkpoint_committed(&self, positions: &[(usize, u64)]) -> Result<(), BoxError> {
        if self.group.is_none() || positions.is_empty() {
            return Ok(());
        }
        let mut committer = self.committer.lock().unwrap_or_else(|p| p.into_inner());
        if committer.is_none() {
            *committer = Some(self.consumer()?);
        }
        let Some(consumer) = committer.as_ref() else {
            return Ok(());
        };
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

    fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<Vec<Box<dyn PartitionReader<KafkaRecord<V>>>>, SourceError> {
        let broker_error = |reason: String| SourceError::Broker {
            source_name: ctx.name().to_string(),
            reason,
        };
        let consumer = self.consumer().map_err(broker_error)?;
        let partitions = self.partitions(&consumer).map_err(broker_error)?;
        let mut readers: Vec<Box<dyn PartitionReader<KafkaRecord<V>>>> = Vec::new();
        for p in (ctx.worker() as i32..partitions).step_by(ctx.peers()) {
            let (next, end) = self.range(&consumer, p).map_err(broker_error)?;
            if let Some(end) = end {
                ctx.expect_work(end.saturating_sub(next).max(0) as u64);
            }
            readers.push(Box::new(KafkaPartition {
                consumer: None,
                source: self.clone_settings(),
                partition: p,
                next,
                end,
                name: ctx.name().to_string(),
                work: ctx.work_done(),
            }));
        }
        Ok(readers)
    }
}

impl<V> Kafka<V> {
    fn clone_settings(&self) -> Kafka<V> {
        Kafka {
            brokers: self.brokers.clone(),
            topic: self.topic.clone(),
            start: self.start,
            bounded: self.bounded,
            group: self.group.clone(),
            settings: self.settings.clone(),
            timeout: self.timeout,
            format: self.format,
            decode: Arc::clone(&self.decode),
            committer: Default::default(),
        }
    }
}

/// One partition of a Kafka topic, read with a consumer of its own that is
/// assigned the partition at its next offset on the first read.
struct KafkaPartition<V> {
    consumer: Option<BaseConsumer>,
    source: Kafka<V>,
    partition: i32,
    /// The offset of the next record to return.
    next: i64,
    /// Bounded: the offset it ends at.
    end: Option<i64>,
    name: String,
    work: Arc<std::sync::atomic::AtomicU64>,
}

impl<V> KafkaPartition<V> {
    fn error(&self, reason: impl std::fmt::Display) -> BoxError {
        format!(
            "source `{}`: topic `{}` partition {} offset {}: {reason}",
            self.name, self.source.topic, self.partition, self.next
        )
        .into()
    }

    /// Makes the partition's consumer, on the first read.
    fn connect(&mut self) -> Result<(), BoxError> {
        if self.consumer.is_none() {
            let consumer = self.source.consumer().map_err(|e| self.error(e))?;
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition_offset(
                &self.source.topic,
                self.partition,
                Offset::Offset(self.next),
            )
            .map_err(|e| self.error(e))?;
            consumer.assign(&tpl).map_err(|e| self.error(e))?;
            self.consumer = Some(consumer);
        }
        Ok(())
    }
}

impl<V: Data> PartitionReader<KafkaRecord<V>> for KafkaPartition<V> {
    fn read(&mut self, out: &mut Vec<KafkaRecord<V>>, max: usize) -> Result<ReadStatus, BoxError> {
        if self.end.is_some_and(|end| self.next >= end) {
            return Ok(ReadStatus::Done);
        }
        self.connect()?;
        let Some(consumer) = self.consumer.as_ref() else {
            return Ok(ReadStatus::Idle);
        };
        let decode = Arc::clone(&self.source.decode);
        let mut read = 0;
        while read < max.max(1) {
            let polled = consumer.poll(Duration::ZERO);
            let message = match polled {
                None => break,
                Some(Err(e)) => return Err(self.error(format!("the broker says: {e}"))),
                Some(Ok(m)) => m,
            };
            let offset = message.offset();
            if offset < self.next {
                continue; // before the assigned offset (cannot happen)
            }
            let value = match message.payload() {
                Some(bytes) => decode(bytes),
                None => Err("a record without a value".to_string()),
            };
            let value = match value {
                Ok(v) => v,
                Err(reason) => {
                    self.next = offset;
                    return Err(self.error(reason));
                }
            };
            out.push(KafkaRecord {
                partition: self.partition,
                offset,
                timestamp: message.timestamp().to_millis(),
                key: message.key().map(<[u8]>::to_vec),
                value,
            });
            drop(message);
            self.next = offset + 1;
            read += 1;
            if self.end.is_some_and(|end| self.next >= end) {
                self.work
                    .fetch_add(read as u64, std::sync::atomic::Ordering::Relaxed);
                return Ok(ReadStatus::Done);
            }
        }
        if self.end.is_some() {
            self.work
                .fetch_add(read as u64, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(if read == 0 {
            ReadStatus::Idle
        } else {
            ReadStatus::More
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
        Ok(())
    }
}
