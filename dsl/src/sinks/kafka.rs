//! A Kafka topic as a sink (feature `kafka`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::message::DeliveryResult;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;
use serde::Serialize;
use weir_engine::BoxError;

use super::{ByRef, Sink, SinkContext, SinkWriter, WriteRefs};
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
/// It does not take part in checkpoints yet: a checkpointed pipeline with a
/// Kafka sink is a plan error (after a restore it would write again what it
/// wrote since the last checkpoint).
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

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError> {
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
        let failed = self.producer.context().failed.lock();
        match failed.unwrap_or_else(|p| p.into_inner()).as_ref() {
            Some(reason) => Err(self.error(reason)),
            None => Ok(()),
        }
    }

    fn send(&mut self, record: &T) -> Result<(), BoxError> {
        self.value.clear();
        (self.encode)(record, &mut self.value).map_err(|e| self.error(e))?;
        let key = self.key.as_ref().map(|k| k(record));
        loop {
            let mut message = BaseRecord::to(&self.topic).payload(&self.value);
            if let Some(key) = &key {
                message = message.key(key);
            }
            match self.producer.send(message) {
                Ok(()) => return Ok(()),
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => {
                    // The producer's queue is full: let it deliver.
                    self.producer.poll(Duration::from_millis(1));
                    self.check()?;
                }
                Err((e, _)) => return Err(self.error(e)),
            }
        }
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
