//! Publishing test data to a RabbitMQ queue with lapin directly (not
//! through weir), as `amqp_produce` and `amqp-bench` do.

use anyhow::{Context, bail};
use futures_executor::block_on;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, PublisherConfirm};

/// Published messages not yet confirmed, at most, before the publisher waits.
const IN_FLIGHT: usize = 2_000;

/// Publishes persistent messages with ids to one queue (through the default
/// exchange), waiting for the broker's confirms in batches.
pub struct QueuePublisher {
    /// Kept open while publishing.
    _connection: Connection,
    channel: Channel,
    queue: String,
    confirms: Vec<PublisherConfirm>,
}

impl QueuePublisher {
    /// Connects to the broker at `url` and declares `queue` (durable) if it
    /// is missing.
    ///
    /// # Errors
    ///
    /// The broker cannot be reached or refuses the queue.
    pub fn to_queue(url: &str, queue: &str) -> anyhow::Result<Self> {
        let connection = block_on(Connection::connect(url, ConnectionProperties::default()))
            .context("cannot connect to the broker")?;
        let channel = block_on(connection.create_channel())?;
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        block_on(channel.queue_declare(queue.into(), durable, FieldTable::default()))
            .with_context(|| format!("declaring queue `{queue}`"))?;
        block_on(channel.confirm_select(ConfirmSelectOptions::default()))?;
        Ok(QueuePublisher {
            _connection: connection,
            channel,
            queue: queue.to_string(),
            confirms: Vec::with_capacity(IN_FLIGHT),
        })
    }

    /// Publishes `body` with message id `id`.
    ///
    /// # Errors
    ///
    /// The broker refused a message.
    pub fn publish(&mut self, body: &[u8], id: String) -> anyhow::Result<()> {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id(id.into());
        let confirm = block_on(self.channel.basic_publish(
            "".into(),
            self.queue.as_str().into(),
            BasicPublishOptions::default(),
            body,
            properties,
        ))?;
        self.confirms.push(confirm);
        if self.confirms.len() >= IN_FLIGHT {
            self.confirm()?;
        }
        Ok(())
    }

    /// Waits for the confirms of everything published so far.
    ///
    /// # Errors
    ///
    /// The broker refused a message.
    pub fn confirm(&mut self) -> anyhow::Result<()> {
        for confirm in self.confirms.drain(..) {
            if !block_on(confirm)?.is_ack() {
                bail!("the broker refused a message for queue `{}`", self.queue);
            }
        }
        Ok(())
    }

    /// The messages ready in the queue (neither delivered nor
    /// acknowledged).
    ///
    /// # Errors
    ///
    /// The broker cannot be asked.
    pub fn ready(&self) -> anyhow::Result<u32> {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let queue = block_on(self.channel.queue_declare(
            self.queue.as_str().into(),
            passive,
            FieldTable::default(),
        ))?;
        Ok(queue.message_count())
    }
}
