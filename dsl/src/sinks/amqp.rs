//! A RabbitMQ (AMQP 0.9.1) exchange as a sink (feature `amqp`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Connection};
use lapin::{Confirmation, PublisherConfirm};
use serde::Serialize;
use weir_engine::BoxError;

use super::{ByRef, Sink, SinkContext, SinkWriter, WriteRefs};
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
/// It does not take part in checkpoints yet: a checkpointed pipeline with
/// an AMQP sink is a plan error (after a restore it would publish again
/// what it published since the last checkpoint).
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

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError> {
        let fail = |reason: String| SinkError {
            sink: ctx.name().to_string(),
            path: format!("exchange {}", shown_exchange(&self.exchange)).into(),
            error: std::io::Error::other(reason),
        };
        let connection = Arc::new(self.client.connect().map_err(fail)?);
        let conn = Arc::clone(&connection);
        let channel = self
            .client
            .wait(async move {
                let channel = conn.create_channel().await?;
                channel
                    .confirm_select(ConfirmSelectOptions::default())
                    .await?;
                Ok(channel)
            })
            .map_err(|e| fail(format!("cannot open a channel with confirms: {e}")))?;
        Ok(Box::new(ByRef(AmqpWriter {
            connection,
            channel,
            exchange: self.exchange.clone(),
            timeout: self.client.timeout(),
            key: Arc::clone(&self.key),
            encode: Arc::clone(&self.encode),
            body: Vec::new(),
            in_flight: Vec::new(),
            closed: false,
        })))
    }
}

/// The exchange as messages show it (the default one has no name).
fn shown_exchange(exchange: &str) -> String {
    match exchange {
        "" => "(default)".to_string(),
        name => format!("`{name}`"),
    }
}

/// One worker's publishing channel.
struct AmqpWriter<T> {
    connection: Arc<Connection>,
    channel: Channel,
    exchange: String,
    timeout: Duration,
    key: KeyOf<T>,
    encode: Encode<T>,
    body: Vec<u8>,
    /// Published messages not confirmed yet, with their routing keys.
    in_flight: Vec<(String, PublisherConfirm)>,
    closed: bool,
}

impl<T> AmqpWriter<T> {
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
                Confirmation::Ack(Some(returned)) => {
                    return Err(self.error(format!(
                    "routing key `{key}`: the broker could not route the message to any queue ({})",
                    returned.reply_text
                )))
                }
                Confirmation::Nack(_) => {
                    return Err(self.error(format!(
                        "routing key `{key}`: the broker refused the message (nack)"
                    )))
                }
            }
        }
        Ok(())
    }

    fn publish(&mut self, record: &T) -> Result<(), BoxError> {
        self.body.clear();
        (self.encode)(record, &mut self.body).map_err(|e| self.error(e))?;
        let key = (self.key)(record);
        let options = BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        };
        let properties = BasicProperties::default().with_delivery_mode(2);
        let confirm = futures_executor::block_on(self.channel.basic_publish(
            self.exchange.as_str().into(),
            key.as_str().into(),
            options,
            &self.body,
            properties,
        ))
        .map_err(|e| self.error(format!("routing key `{key}`: {e}")))?;
        self.in_flight.push((key, confirm));
        if self.in_flight.len() >= IN_FLIGHT {
            self.confirm()?;
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
            self.publish(record)?;
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
