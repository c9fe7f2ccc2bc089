//! A RabbitMQ (AMQP 0.9.1) exchange as a sink (feature `amqp`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use lapin::{Confirmation, PublisherConfirm};
use serde::Serialize;
use weir_engine::{BoxError, failpoint};

use super::WriteRefs;
use super::staged::{Frame, StagedMessages, messages};
use super::{ByRef, CheckpointId, Publisher, PublisherContext, Sink, SinkContext, SinkWriter};
use crate::error::SinkError;
use crate::sources::AmqpClient;

/// Makes a record's routing key.
type KeyOf<T> = Arc<dyn Fn(&T) -> String + Send + Sync>;

/// Encodes a record's body into the buffer.
type Encode<T> = Arc<dyn Fn(&T, &mut Vec<u8>) -> Result<(), String> + Send + Sync>;

/// How many published messages a writer lets wait for the broker's
/// confirms before it waits for them.
const IN_FLIGHT: usize = 2_000;

/// Publishes records to a RabbitMQ exchange, each as a persistent message
/// with a JSON body (or as [`encode_with`](AmqpSink::encode_with) says) and
/// a routing key, fixed or made from the record
/// ([`routing_key_with`](AmqpSink::routing_key_with)), from every worker.
/// The publishing channel uses publisher confirms and publishes with the
/// `mandatory` flag: a message the broker refuses (a nack), cannot route to
/// any queue, or does not confirm within the timeout, and a channel the
/// broker closes, stop the job with an error naming the exchange. Every
/// message is confirmed before the job ends.
///
/// With checkpoints ([`Pipeline::checkpoint`](crate::Pipeline::checkpoint))
/// each worker stages its records in the checkpoint, and once the
/// checkpoint is committed process 0 publishes them (confirmed as above),
/// each message with a message id made of the job's lineage, the
/// checkpoint and the message (`LINEAGE.CHECKPOINT.HASH.N`, HASH a hash of
/// routing key and body, N how many equal messages came before it in the
/// checkpoint): the same for the same result whenever it is published. The
/// checkpoint notes when its messages are confirmed, so a restore
/// publishes only what a crash came before; a crash between the confirms
/// and that note publishes the checkpoint's messages again, with the same
/// ids (at least once: RabbitMQ has no transaction that could tell, so a
/// consumer that must see each result once drops repeated ids).
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use weir::prelude::*;
/// use weir::sinks::AmqpSink;
///
/// let p = Pipeline::new("to-rabbitmq");
/// p.source(Generator::new(1_000, |i| i))
///     .event_time(|i: &u64| *i, Watermark::ascending())
///     .key_by(|i| i % 10)
///     .window(Tumbling::of(Duration::from_millis(100)))
///     .count()
///     // The default exchange routes to the queue named by the key.
///     .sink(AmqpSink::new("amqp://guest:guest@127.0.0.1:5672/%2f", "").routing_key("counts"));
/// p.run(Cluster::threads(2)).unwrap();
/// ```
pub struct AmqpSink<T> {
    client: AmqpClient,
    exchange: String,
    key: KeyOf<T>,
    encode: Encode<T>,
}

impl<T: Serialize> AmqpSink<T> {
    /// Publishes to exchange `exchange` (`""`: the default exchange, which
    /// routes a message to the queue its routing key names) of the broker
    /// at `url`, bodies as JSON, with an empty routing key.
    pub fn new(url: impl Into<String>, exchange: impl Into<String>) -> Self {
        AmqpSink {
            client: AmqpClient::new(url.into()),
            exchange: exchange.into(),
            key: Arc::new(|_| String::new()),
            encode: Arc::new(|record, buf| {
                serde_json::to_writer(buf, record).map_err(|e| format!("cannot encode: {e}"))
            }),
        }
    }
}

impl<T> AmqpSink<T> {
    /// Publishes every record with routing key `key`.
    pub fn routing_key(mut self, key: impl Into<String>) -> Self {
        let key = key.into();
        self.key = Arc::new(move |_| key.clone());
        self
    }

    /// Publishes each record with routing key `key(record)`.
    pub fn routing_key_with(mut self, key: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        self.key = Arc::new(key);
        self
    }

    /// Encodes each record's body with `encode` (appending to the buffer it
    /// is given) instead of as JSON.
    pub fn encode_with(
        mut self,
        encode: impl Fn(&T, &mut Vec<u8>) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.encode = Arc::new(encode);
        self
    }

    /// The CA certificate(s) (PEM) an `amqps://` broker's certificate is
    /// checked against, instead of the system's.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.client.set_ca_file(path.into());
        self
    }

    /// How long to wait for the broker: to connect, and for each confirm
    /// (default 10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.client.set_timeout(timeout);
        self
    }
}

impl<T: crate::Data> Sink<T> for AmqpSink<T> {
    fn describe(&self) -> String {
        format!("amqp({})", shown_exchange(&self.exchange))
    }

    fn stages(&self) -> bool {
        true
    }

    fn publisher(&self, _ctx: &PublisherContext) -> Option<Box<dyn Publisher>> {
        Some(Box::new(AmqpPublisher {
            client: self.client.clone(),
            exchange: self.exchange.clone(),
            out: None,
        }))
    }

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError> {
        let fail = |reason: String| SinkError {
            sink: ctx.name().to_string(),
            path: format!("exchange {}", shown_exchange(&self.exchange)).into(),
            error: std::io::Error::other(reason),
        };
        if ctx.staging().is_some() {
            let (key, encode) = (Arc::clone(&self.key), Arc::clone(&self.encode));
            let frame: Frame<T> = Arc::new(move |record, k, v| {
                encode(record, v)?;
                k.extend_from_slice(key(record).as_bytes());
                Ok(true)
            });
            let what = format!("exchange {}", shown_exchange(&self.exchange));
            return StagedMessages::open(ctx, frame, what);
        }
        Ok(Box::new(ByRef(AmqpWriter {
            out: Confirmed::open(&self.client, &self.exchange).map_err(fail)?,
            key: Arc::clone(&self.key),
            encode: Arc::clone(&self.encode),
            body: Vec::new(),
        })))
    }
}

/// Publishes an AMQP sink's checkpointed output (see [`AmqpSink`]).
struct AmqpPublisher {
    client: AmqpClient,
    exchange: String,
    /// The channel, once opened.
    out: Option<Confirmed>,
}

impl Publisher for AmqpPublisher {
    fn publish(&mut self, at: CheckpointId, parts: &[Vec<u8>]) -> Result<(), BoxError> {
        if self.out.is_none() {
            self.out = Some(Confirmed::open(&self.client, &self.exchange)?);
        }
        let Some(out) = self.out.as_mut() else {
            return Err("the publishing channel could not be opened".into());
        };
        // Each id is made of the message itself (and how many equal ones
        // came before it), not of where a worker staged it: the same
        // whenever the checkpoint's output is published, on any cluster.
        let mut seen: std::collections::HashMap<u64, u32> = std::collections::HashMap::new();
        for bytes in parts {
            for message in messages(bytes) {
                let (key, body) = message.map_err(|e| out.error(e))?;
                let key_bytes = key.unwrap_or_default();
                let digest = super::fnv1a(&[key_bytes, &[0xff], body]);
                let n = seen.entry(digest).or_insert(0);
                let id = format!("{:016x}.{}.{digest:016x}.{n}", at.lineage, at.id);
                *n += 1;
                out.publish(&String::from_utf8_lossy(key_bytes), body, Some(id))?;
            }
        }
        failpoint::hit("queue-publishing");
        out.confirm()
    }
}

/// The exchange as messages show it (the default one has no name).
fn shown_exchange(exchange: &str) -> String {
    match exchange {
        "" => "(default)".to_string(),
        name => format!("`{name}`"),
    }
}

/// One worker's writer.
struct AmqpWriter<T> {
    out: Confirmed,
    key: KeyOf<T>,
    encode: Encode<T>,
    body: Vec<u8>,
}

/// A publishing channel with confirms.
struct Confirmed {
    connection: Arc<Connection>,
    channel: Channel,
    exchange: String,
    timeout: Duration,
    /// Published messages not confirmed yet, with their routing keys.
    in_flight: Vec<(String, PublisherConfirm)>,
    closed: bool,
}

impl Confirmed {
    /// Connects and opens a channel with publisher confirms.
    fn open(client: &AmqpClient, exchange: &str) -> Result<Self, String> {
        let connection = Arc::new(client.connect()?);
        let conn = Arc::clone(&connection);
        let channel = client
            .wait(async move {
                let channel = conn.create_channel().await?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
                Ok(channel)
            })
            .map_err(|e| format!("cannot open a channel with confirms: {e}"))?;
        Ok(Confirmed {
            connection,
            channel,
            exchange: exchange.to_string(),
            timeout: client.timeout(),
            in_flight: Vec::new(),
            closed: false,
        })
    }

    fn error(&self, reason: impl std::fmt::Display) -> BoxError {
        format!("exchange {}: {reason}", shown_exchange(&self.exchange)).into()
    }

    /// Waits for the confirms of every message in flight.
    fn confirm(&mut self) -> Result<(), BoxError> {
        for (key, confirm) in std::mem::take(&mut self.in_flight) {
            let confirmation = crate::sources::within_amqp(self.timeout, confirm)
                .map_err(|e| self.error(format!("routing key `{key}`: not confirmed: {e}")))?;
            match confirmation {
                Confirmation::Ack(None) | Confirmation::NotRequested => {}
                Confirmation::Ack(Some(returned)) => return Err(self.error(format!(
                    "routing key `{key}`: the broker could not route the message to any queue ({})",
                    returned.reply_text
                ))),
                Confirmation::Nack(_) => {
                    return Err(self.error(format!(
                        "routing key `{key}`: the broker refused the message (nack)"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Publishes one persistent message (with `id` as its message id),
    /// waiting for the confirms in flight once there are many.
    fn publish(&mut self, key: &str, body: &[u8], id: Option<String>) -> Result<(), BoxError> {
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if let Some(id) = id {
            properties = properties.with_message_id(id.into());
        }
        let confirm = futures_executor::block_on(self.channel.basic_publish(
            self.exchange.as_str().into(),
            key.into(),
            options,
            body,
            properties,
        ))
        .map_err(|e| self.error(format!("routing key `{key}`: {e}")))?;
        self.in_flight.push((key.to_string(), confirm));
        if self.in_flight.len() >= IN_FLIGHT {
            self.confirm()?;
        }
        Ok(())
    }

    /// Waits until every message is confirmed, and closes the channel.
    fn close(&mut self) -> Result<(), BoxError> {
        self.confirm()?;
        if !self.closed {
            self.closed = true;
            let (channel, connection) = (self.channel.clone(), Arc::clone(&self.connection));
            let _ = crate::sources::within_amqp(self.timeout, async move {
                channel.close(200, "done".into()).await?;
                connection.close(200, "done".into()).await
            });
        }
        Ok(())
    }
}

impl<T: 'static> WriteRefs<T> for AmqpWriter<T> {
    fn write_refs<'a>(&mut self, records: impl Iterator<Item = &'a T>) -> Result<(), BoxError>
    where
        T: 'a,
    {
        for record in records {
            self.body.clear();
            (self.encode)(record, &mut self.body).map_err(|e| self.out.error(e))?;
            let key = (self.key)(record);
            self.out.publish(&key, &self.body, None)?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.out.close()
    }
}
