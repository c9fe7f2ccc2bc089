//! The TOML schema of a spec, as serde reads it. Kinds are enums, so an
//! unknown `type` is rejected with the list of accepted ones; unknown fields
//! are rejected (`deny_unknown_fields`), and fields of another kind when the
//! spec is checked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

/// A whole spec file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SpecFile {
    pub(super) name: String,
    pub(super) source: SourceSection,
    pub(super) window: WindowSection,
    pub(super) aggregate: toml::Table,
    pub(super) sink: SinkSection,
    /// Where the source's bad records go, with `on_error = "dead_letter"`.
    pub(super) dead_letter: Option<SinkSection>,
    pub(super) checkpoint: Option<CheckpointSection>,
}

/// `[checkpoint]`: where and how often the job takes checkpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CheckpointSection {
    pub(super) dir: PathBuf,
    pub(super) interval_ms: u64,
    pub(super) keep: Option<usize>,
}

/// `[source]`. Fields that do not apply to the kind are rejected when the
/// spec is checked, naming the field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SourceSection {
    #[serde(rename = "type")]
    pub(super) kind: SourceKind,
    pub(super) path: Option<PathBuf>,
    pub(super) format: Option<Format>,
    pub(super) events: Option<u64>,
    pub(super) event_time: EventTimeSection,
    pub(super) schema: Option<BTreeMap<String, FieldType>>,
    /// Kafka: `host:port[,host:port...]`.
    pub(super) brokers: Option<String>,
    /// Kafka: the topic.
    pub(super) topic: Option<String>,
    /// Kafka: `earliest`, `latest`, `committed` or a timestamp in ms.
    pub(super) start: Option<StartAt>,
    /// Kafka: read up to the end as of the start, then finish.
    pub(super) bounded: Option<bool>,
    /// Kafka: the consumer group offsets are committed to.
    pub(super) group: Option<String>,
    /// Kafka: TLS and SASL.
    pub(super) security: Option<KafkaSecuritySection>,
    /// Kafka with `format = "csv"`: the columns of each record, in order.
    pub(super) fields: Option<Vec<String>>,
    /// AMQP: the broker URL.
    pub(super) url: Option<String>,
    /// AMQP: the environment variable holding the broker URL.
    pub(super) url_env: Option<String>,
    /// AMQP: the queue.
    pub(super) queue: Option<String>,
    /// AMQP: how many consumers read the queue.
    pub(super) consumers: Option<usize>,
    /// AMQP: each consumer's prefetch count.
    pub(super) prefetch: Option<u64>,
    /// AMQP: the CA certificates an `amqps://` broker is checked against.
    pub(super) ca_file: Option<PathBuf>,
    /// What to do with a record that does not read (default `fail`).
    #[serde(default)]
    pub(super) on_error: OnErrorName,
}

/// `on_error` of a source.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum OnErrorName {
    /// Stop the job.
    #[default]
    Fail,
    /// Leave the record out.
    Skip,
    /// Send it to the `[dead_letter]` output.
    DeadLetter,
}

impl From<OnErrorName> for crate::sources::OnError {
    fn from(name: OnErrorName) -> Self {
        match name {
            OnErrorName::Fail => crate::sources::OnError::Fail,
            OnErrorName::Skip => crate::sources::OnError::Skip,
            OnErrorName::DeadLetter => crate::sources::OnError::DeadLetter,
        }
    }
}

/// Where a Kafka source starts: a name or a timestamp in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub(super) enum StartAt {
    /// `earliest`, `latest` or `committed`.
    Named(String),
    /// A timestamp in milliseconds since the epoch.
    Timestamp(i64),
}

/// The kinds of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SourceKind {
    /// CSV files with a header row.
    Csv,
    /// JSON lines files, one object per line.
    Jsonl,
    /// Standard input, as JSON lines or CSV with a header line.
    Stdin,
    /// Nexmark bids from the generator.
    Nexmark,
    /// A Kafka topic (feature `kafka`).
    Kafka,
    /// A RabbitMQ queue (feature `amqp`).
    Amqp,
}

/// `[source.event_time]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventTimeSection {
    pub(super) field: String,
    /// How the field holds the time (default: integer milliseconds).
    #[serde(default)]
    pub(super) format: TimeFormat,
    pub(super) max_out_of_orderness_ms: u64,
    pub(super) idle_timeout_ms: Option<u64>,
}

/// How an event-time field holds the time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum TimeFormat {
    /// Integer milliseconds since the epoch.
    #[default]
    Ms,
    /// Seconds since the epoch, integer or fractional.
    S,
    /// An RFC 3339 timestamp, `2024-05-01T12:00:00.250Z` or with an offset.
    Rfc3339,
}

impl TimeFormat {
    /// What the field must hold, for messages.
    pub(super) fn expected(self) -> &'static str {
        match self {
            TimeFormat::Ms => "integer milliseconds since the epoch",
            TimeFormat::S => "seconds since the epoch (`format = \"s\"`)",
            TimeFormat::Rfc3339 => {
                "an RFC 3339 timestamp such as `2024-05-01T12:00:00Z` (`format = \"rfc3339\"`)"
            }
        }
    }
}

/// The type a `schema` entry gives a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum FieldType {
    /// A 64-bit integer.
    Int,
    /// A floating-point number.
    Float,
    /// Text, even if it looks like a number.
    String,
}

/// The format of standard input (`jsonl`, `csv`) or of a Kafka record's
/// value (`json`, `csv`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Format {
    /// One JSON object per line.
    #[default]
    Jsonl,
    /// One JSON object per record.
    Json,
    /// CSV: with a header line on standard input, with `fields` in Kafka.
    Csv,
}

/// `key = "user"` or `key = ["user", "page"]`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Keys {
    One(String),
    Many(Vec<String>),
}

impl Keys {
    pub(super) fn into_vec(self) -> Vec<String> {
        match self {
            Keys::One(k) => vec![k],
            Keys::Many(ks) => ks,
        }
    }

    /// The field names, in order.
    #[cfg_attr(not(any(feature = "kafka", feature = "amqp")), allow(dead_code))]
    pub(super) fn fields(&self) -> &[String] {
        match self {
            Keys::One(k) => std::slice::from_ref(k),
            Keys::Many(ks) => ks,
        }
    }
}

/// `[window]`. Fields of another kind are rejected when the spec is
/// checked, naming the field.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowSection {
    pub(super) key: Keys,
    #[serde(rename = "type")]
    pub(super) kind: WindowKind,
    pub(super) size_ms: Option<u64>,
    pub(super) slide_ms: Option<u64>,
    pub(super) gap_ms: Option<u64>,
    #[serde(default)]
    pub(super) allowed_lateness_ms: u64,
}

/// The kinds of window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum WindowKind {
    /// Fixed, non-overlapping windows (`size_ms`).
    Tumbling,
    /// Overlapping windows (`size_ms`, `slide_ms`).
    Sliding,
    /// Sessions closed by a gap (`gap_ms`).
    Session,
}

/// `[sink]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SinkSection {
    #[serde(rename = "type")]
    pub(super) kind: SinkKind,
    pub(super) path: Option<PathBuf>,
    /// Kafka: `host:port[,host:port...]`.
    pub(super) brokers: Option<String>,
    /// Kafka: the topic.
    pub(super) topic: Option<String>,
    /// Kafka: the key fields of each record (among the window's keys);
    /// AMQP: the fields that make each result's routing key.
    pub(super) key: Option<Keys>,
    /// Kafka: TLS and SASL.
    pub(super) security: Option<KafkaSecuritySection>,
    /// AMQP: the broker URL.
    pub(super) url: Option<String>,
    /// AMQP: the environment variable holding the broker URL.
    pub(super) url_env: Option<String>,
    /// AMQP: the exchange.
    pub(super) exchange: Option<String>,
    /// AMQP: a fixed routing key.
    pub(super) routing_key: Option<String>,
    /// AMQP: the CA certificates an `amqps://` broker is checked against.
    pub(super) ca_file: Option<PathBuf>,
}

/// `security` of a Kafka source or sink: how to reach the brokers over TLS
/// and authenticate with SASL. The password comes from the environment or
/// a file, never from the spec.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(not(feature = "kafka"), allow(dead_code))]
pub(super) struct KafkaSecuritySection {
    pub(super) protocol: KafkaProtocol,
    /// The CA certificates (PEM) the brokers' certificates are checked
    /// against (TLS protocols).
    pub(super) ca_file: Option<PathBuf>,
    /// The SASL mechanism (SASL protocols).
    pub(super) mechanism: Option<SaslMechanism>,
    pub(super) username: Option<String>,
    /// The environment variable holding the password.
    pub(super) password_env: Option<String>,
    /// The file holding the password (a trailing newline is not part of it).
    pub(super) password_file: Option<PathBuf>,
}

/// librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum KafkaProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

/// librdkafka's `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub(super) enum SaslMechanism {
    #[serde(rename = "PLAIN")]
    Plain,
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

/// The kinds of sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum SinkKind {
    /// JSON lines, to a file.
    Jsonl,
    /// CSV with a header row, to a file.
    Csv,
    /// JSON lines on standard output.
    Stdout,
    /// JSON records to a Kafka topic (feature `kafka`).
    Kafka,
    /// JSON messages to a RabbitMQ exchange (feature `amqp`).
    Amqp,
}
