//! A Kafka topic as a sink (feature `kafka`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Serialize;
use weir_engine::{BoxError, failpoint};

use super::WriteRefs;
use super::staged::{Frame, StagedMessages, messages};
use super::{ByRef, CheckpointId, Publisher, PublisherContext, Sink, SinkContext, SinkWriter};
use crate::error::SinkError;
use crate::sources::KafkaClient;

/// Makes a record's key.
type KeyOf<T> = Arc<dyn Fn(&T) -> Vec<u8> + Send + Sync>;

/// Encodes a record's value into the buffer.
type Encode<T> = Arc<dyn Fn(&T, &mut Vec<u8>) -> Result<(), String> + Send + Sync>;

/// Writes records to a Kafka topic, each as a JSON value (or as
/// [`encode_with`](KafkaSink::encode_with) says), keyed as
/// [`key`](KafkaSink::key) says (records with equal keys go to the same
/// partition), from every worker. The producer is idempotent and waits for
/// every record to be acknowledged by the brokers when the job ends; a
/// record the brokers refuse, or that is not acknowledged within the
/// timeout, stops the job with an error naming the topic.
///
/// With checkpoints ([`Pipeline::checkpoint`](crate::Pipeline::checkpoint))
/// its output is exactly once: each worker stages its records in the
/// checkpoint, and once the checkpoint is committed, process 0 produces the
/// checkpoint's records in one Kafka transaction (`transactional.id`
/// `weir-JOB-STAGE`, JOB the pipeline's name and STAGE the sink's stage
/// number), which also commits a marker of the checkpoint to consumer
/// group `weir-JOB-STAGE` (as the offset of the topic's partition 0; not a
/// position). A restore starts a new producer under the same id, which
/// aborts a transaction a crash left open, and produces the restored
/// checkpoint's records again unless the group's marker says that
/// transaction committed. Consumers that read with
/// `isolation.level=read_committed` see each result once, one checkpoint
/// interval after it was computed.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use weir::prelude::*;
/// use weir::sinks::KafkaSink;
///
/// let p = Pipeline::new("to-kafka");
/// p.source(Generator::new(1_000, |i| i))
///     .event_time(|i: &u64| *i, Watermark::ascending())
///     .key_by(|i| i % 10)
///     .window(Tumbling::of(Duration::from_millis(100)))
///     .count()
///     .sink(KafkaSink::new("127.0.0.1:9092", "counts").key(|w: &WindowResult<u64, u64>| {
///         w.key.to_string().into_bytes()
///     }));
/// p.run(Cluster::threads(2)).unwrap();
/// ```
pub struct KafkaSink<T> {
    client: KafkaClient,
    topic: String,
    key: Option<KeyOf<T>>,
    encode: Encode<T>,
}

impl<T: Serialize> KafkaSink<T> {
    /// Writes to topic `topic` on the brokers `brokers` (`host:port`, comma
    /// separated), values as JSON, without keys.
    pub fn new(brokers: impl Into<String>, topic: impl Into<String>) -> Self {
        KafkaSink {
            client: KafkaClient::new(brokers.into(), Duration::from_secs(30)),
            topic: topic.into(),
            key: None,
            encode: Arc::new(|record, buf| {
                serde_json::to_writer(buf, record).map_err(|e| format!("cannot encode: {e}"))
            }),
        }
    }
}

impl<T> KafkaSink<T> {
    /// Keys each record with `key(record)`.
    pub fn key(mut self, key: impl Fn(&T) -> Vec<u8> + Send + Sync + 'static) -> Self {
        self.key = Some(Arc::new(key));
        self
    }

    /// Encodes each record's value with `encode` (appending to the buffer
    /// it is given) instead of as JSON.
    pub fn encode_with(
        mut self,
        encode: impl Fn(&T, &mut Vec<u8>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.encode = Arc::new(encode);
        self
    }

    /// Sets a librdkafka producer property (e.g. `compression.type`,
    /// `security.protocol`).
    pub fn set(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.client.set(key.into(), value.into());
        self
    }

    /// How long a record may wait for the brokers' acknowledgement
    /// (default 30 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.client.set_timeout(timeout);
        self
    }
}

/// The first delivery failure of a producer, if any.
#[derive(Default)]
struct Deliveries {
    failed: Mutex<Option<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
            failed.get_or_insert_with(|| format!("a record was not delivered: {e}"));
        }
    }
}

impl<T: crate::Data> Sink<T> for KafkaSink<T> {
    fn describe(&self) -> String {
        format!("kafka({})", self.topic)
    }

    fn stages(&self) -> bool {
        true
    }

    fn publisher(&self, ctx: &PublisherContext) -> Option<Box<dyn Publisher>> {
        let id = format!("weir-{}-{}", ctx.job(), ctx.stage());
        Some(Box::new(KafkaPublisher {
            client: self.client.clone(),
            topic: self.topic.clone(),
            id,
            open: None,
        }))
    }

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError> {
        if ctx.staging().is_some() {
            let (key, encode) = (self.key.clone(), Arc::clone(&self.encode));
            let frame: Frame<T> = Arc::new(move |record, k, v| {
                encode(record, v)?;
                if let Some(key) = &key {
                    k.extend_from_slice(&key(record));
                }
                Ok(key.is_some())
            });
            return StagedMessages::open(ctx, frame, format!("topic `{}`", self.topic));
        }
        let timeout = self.client.timeout().as_millis().max(1).to_string();
        let producer: BaseProducer<Deliveries> = self
            .client
            .config(&[
                ("enable.idempotence", "true".into()),
                ("linger.ms", "5".into()),
                ("message.timeout.ms", timeout),
            ])
            .create_with_context(Deliveries::default())
            .map_err(|e| SinkError {
                sink: ctx.name().to_string(),
                path: format!("topic `{}`", self.topic).into(),
                error: std::io::Error::other(format!("cannot make a Kafka producer: {e}")),
            })?;
        Ok(Box::new(ByRef(KafkaWriter {
            producer,
            topic: self.topic.clone(),
            timeout: self.client.timeout(),
            key: self.key.clone(),
            encode: Arc::clone(&self.encode),
            value: Vec::new(),
        })))
    }
}

/// One worker's producer.
struct KafkaWriter<T> {
    producer: BaseProducer<Deliveries>,
    topic: String,
    timeout: Duration,
    key: Option<KeyOf<T>>,
    encode: Encode<T>,
    value: Vec<u8>,
}

impl<T> KafkaWriter<T> {
    fn error(&self, reason: impl std::fmt::Display) -> BoxError {
        format!("topic `{}`: {reason}", self.topic).into()
    }

    /// The first delivery failure so far, as an error.
    fn check(&self) -> Result<(), BoxError> {
        delivered(&self.producer).map_err(|e| self.error(e))
    }

    fn send(&mut self, record: &T) -> Result<(), BoxError> {
        self.value.clear();
        (self.encode)(record, &mut self.value).map_err(|e| self.error(e))?;
        let key = self.key.as_ref().map(|k| k(record));
        produce(&self.producer, &self.topic, key.as_deref(), &self.value).map_err(|e| self.error(e))
    }
}

/// Produces one record, letting the producer deliver while its queue is
/// full; a delivery failure seen meanwhile is the error (the caller names
/// the topic).
fn produce(
    producer: &BaseProducer<Deliveries>,
    topic: &str,
    key: Option<&[u8]>,
    value: &[u8],
) -> Result<(), BoxError> {
    loop {
        let mut message = BaseRecord::to(topic).payload(value);
        if let Some(key) = key {
            message = message.key(key);
        }
        match producer.send(message) {
            Ok(()) => return Ok(()),
            Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                // The producer's queue is full: let it deliver.
                producer.poll(Duration::from_millis(1));
                delivered(producer)?;
            }
            Err((e, _)) => return Err(e.to_string().into()),
        }
    }
}

/// The producer's first delivery failure so far, as an error.
fn delivered(producer: &BaseProducer<Deliveries>) -> Result<(), BoxError> {
    let failed = producer.context().failed.lock();
    match failed.unwrap_or_else(|p| p.into_inner()).as_ref() {
        Some(reason) => Err(reason.clone().into()),
        None => Ok(()),
    }
}

/// Publishes a Kafka sink's checkpointed output (see [`KafkaSink`]): one
/// transaction per checkpoint, with the checkpoint's marker committed to
/// the sink's group in it.
struct KafkaPublisher {
    client: KafkaClient,
    topic: String,
    /// The transactional id, and the group the markers go to.
    id: String,
    /// The transactional producer and the group's consumer, once made.
    open: Option<(BaseProducer<Deliveries>, BaseConsumer)>,
}

/// `what` went wrong because of `e`.
fn because(what: &str) -> impl Fn(rdkafka::error::KafkaError) -> BoxError + '_ {
    move |e| format!("{what}: {e}").into()
}

impl KafkaPublisher {
    /// An error of the publisher, naming its topic and transactional id
    /// (once: the reasons under it do not).
    fn error(&self, what: &str, e: impl std::fmt::Display) -> BoxError {
        format!(
            "topic `{}`: {what} (transactional id `{}`): {e}",
            self.topic, self.id
        )
        .into()
    }

    /// The producer and consumer, made at the first use: the producer's
    /// `init_transactions` fences off any earlier producer with the same
    /// id and aborts the transaction it left open.
    fn open(&mut self) -> Result<&(BaseProducer<Deliveries>, BaseConsumer), BoxError> {
        if self.open.is_none() {
            let timeout = self.client.timeout();
            let ms = timeout.as_millis().max(1);
            // librdkafka wants a transaction to outlive its records' timeout.
            let transaction_ms = ms.max(60_000).to_string();
            let ms = ms.to_string();
            let producer: BaseProducer<Deliveries> = self
                .client
                .config(&[
                    ("transactional.id", self.id.clone()),
                    ("linger.ms", "5".into()),
                    ("message.timeout.ms", ms.clone()),
                    ("transaction.timeout.ms", transaction_ms),
                ])
                .create_with_context(Deliveries::default())
                .map_err(because("cannot make a transactional producer"))?;
            producer
                .init_transactions(timeout)
                .map_err(because("cannot start transactions"))?;
            let consumer: BaseConsumer = self
                .client
                .config(&[
                    ("group.id", self.id.clone()),
                    ("enable.auto.commit", "false".into()),
                ])
                .create()
                .map_err(because("cannot make the marker group's consumer"))?;
            self.open = Some((producer, consumer));
        }
        self.open
            .as_ref()
            .ok_or_else(|| "the producer could not be made".into())
    }

    /// The marker of checkpoint `at`, as a partition list.
    fn marker(&self, at: CheckpointId) -> Result<TopicPartitionList, BoxError> {
        let mut marker = TopicPartitionList::new();
        let offset = i64::try_from(at.marker()).unwrap_or(i64::MAX);
        marker
            .add_partition_offset(&self.topic, 0, Offset::Offset(offset))
            .map_err(because("cannot make the checkpoint's marker"))?;
        Ok(marker)
    }

    /// Whether the group holds checkpoint `at`'s marker.
    fn holds(&mut self, at: CheckpointId) -> Result<bool, BoxError> {
        let marker = self.marker(at)?;
        let timeout = self.client.timeout();
        let (_, consumer) = self.open()?;
        let mut asked = TopicPartitionList::new();
        for element in marker.elements() {
            asked.add_partition(element.topic(), element.partition());
        }
        let committed = consumer
            .committed_offsets(asked, timeout)
            .map_err(because("cannot read the marker group's offsets"))?;
        let want = marker.elements().first().map(|e| e.offset());
        let got = committed.elements().first().map(|e| e.offset());
        Ok(want.is_some() && want == got)
    }

    /// Produces `parts`' messages and the marker in the open transaction,
    /// and commits it.
    fn transact(&mut self, at: CheckpointId, parts: &[Vec<u8>]) -> Result<(), BoxError> {
        let marker = self.marker(at)?;
        let timeout = self.client.timeout();
        let topic = self.topic.clone();
        let (producer, consumer) = self.open()?;
        producer.begin_transaction()?;
        for part in parts {
            for message in messages(part) {
                let (key, value) = message?;
                produce(producer, &topic, key, value)?;
            }
            producer.poll(Duration::ZERO);
        }
        failpoint::hit("queue-publishing");
        let group = consumer
            .group_metadata()
            .ok_or("the marker group's consumer has no group metadata")?;
        producer.send_offsets_to_transaction(&marker, &group, timeout)?;
        producer.commit_transaction(timeout)?;
        delivered(producer)
    }
}

impl Publisher for KafkaPublisher {
    fn publish(&mut self, at: CheckpointId, parts: &[Vec<u8>]) -> Result<(), BoxError> {
        let published = self.transact(at, parts);
        if let Err(e) = published {
            // Nothing of the transaction is committed; the job stops, and a
            // run restored from the checkpoint produces it again.
            if let Some((producer, _)) = &self.open {
                let _ = producer.abort_transaction(self.client.timeout());
            }
            self.open = None;
            return Err(self.error(&format!("cannot publish checkpoint {}", at.id), e));
        }
        Ok(())
    }

    fn published(&mut self, at: CheckpointId) -> Result<bool, BoxError> {
        self.holds(at).map_err(|e| {
            let what = format!("cannot tell whether checkpoint {} is published", at.id);
            self.error(&what, e)
        })
    }
}

impl<T: 'static> WriteRefs<T> for KafkaWriter<T> {
    fn write_refs<'a>(&mut self, records: impl Iterator<Item = &'a T>) -> Result<(), BoxError>
    where
        T: 'a,
    {
        for record in records {
            self.send(record)?;
        }
        self.producer.poll(Duration::ZERO);
        self.check()
    }

    /// Waits until every record is acknowledged.
    fn close(&mut self) -> Result<(), BoxError> {
        self.producer
            .flush(self.timeout)
            .map_err(|e| self.error(format!("not every record was acknowledged: {e}")))?;
        self.check()
    }
}
