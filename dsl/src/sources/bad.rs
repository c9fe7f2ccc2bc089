//! Records a source cannot read: the error policy of a source (stop the
//! job, skip them, or send them to a dead-letter stream) and the dead
//! letters themselves.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use weir_operators::source::Rejects;

use crate::BoxError;
use crate::error::SourceError;

/// What a source does with a record it cannot read (a line that does not
/// parse, a message that does not decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OnError {
    /// Stop the job with an error naming the source, where the record is
    /// and why it does not read (the default).
    #[default]
    Fail,
    /// Leave the record out and go on; the run summary counts them.
    Skip,
    /// Send the record, with where it was and why it does not read, to the
    /// source's dead-letter stream ([`Stream::dead_letters`](crate::Stream::dead_letters))
    /// and go on; the run summary counts them.
    DeadLetter,
}

impl OnError {
    /// The policy's name in specs: `fail`, `skip` or `dead_letter`.
    pub fn name(self) -> &'static str {
        match self {
            OnError::Fail => "fail",
            OnError::Skip => "skip",
            OnError::DeadLetter => "dead_letter",
        }
    }
}

/// Where a record a source could not read was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Origin {
    /// A line of a file (or of standard input, `<stdin>`).
    File {
        /// The file.
        path: PathBuf,
        /// The 1-based line number.
        line: u64,
        /// The byte offset of the line's start.
        offset: u64,
    },
    /// A record of a Kafka topic.
    Topic {
        /// The topic.
        topic: String,
        /// The topic's partition.
        partition: i32,
        /// The record's offset.
        offset: i64,
    },
    /// A message of a queue (RabbitMQ).
    Queue {
        /// The queue.
        queue: String,
        /// The consumer (source partition) it was delivered to.
        consumer: usize,
        /// Its delivery tag on that consumer's channel.
        delivery: u64,
        /// Its message id, if it has one.
        message_id: Option<String>,
    },
    /// Anywhere else, as a custom source describes it.
    Other(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { path, line, offset } => {
                write!(f, "{}:{line} (byte {offset})", path.display())
            }
            Origin::Topic {
                topic,
                partition,
                offset,
            } => write!(f, "topic `{topic}` partition {partition} offset {offset}"),
            Origin::Queue {
                queue,
                consumer,
                delivery,
                message_id,
            } => {
                write!(f, "queue `{queue}` consumer {consumer} message {delivery}")?;
                match message_id {
                    Some(id) => write!(f, " (id `{id}`)"),
                    None => Ok(()),
                }
            }
            Origin::Other(at) => f.write_str(at),
        }
    }
}

/// A record a source could not read, set aside by the dead-letter policy:
/// the source, where the record was, the record as read and why it does not
/// read.
///
/// As JSON (a [`JsonLinesFile`](crate::sinks::JsonLinesFile) of dead
/// letters, a Kafka or AMQP sink's JSON) it is one flat object: `source`,
/// `partition` (the source's), where it was (`file`, `line`, `offset`; or
/// `topic`, `topic_partition`, `offset`; or `queue`, `consumer`,
/// `delivery`, `message_id`; or `at`), the record as `raw` (text) or `raw_base64` (bytes
/// that are not UTF-8), and `reason`.
///
/// # Examples
///
/// ```
/// use weir::sources::{DeadLetter, Origin};
///
/// let letter = DeadLetter::new("csv(in.csv)", Origin::File { path: "in.csv".into(), line: 3, offset: 40 },
///     b"x,oops", "field `n`: invalid digit");
/// let json = serde_json::to_string(&letter).unwrap();
/// assert_eq!(json, r#"{"source":"csv(in.csv)","partition":0,"file":"in.csv","line":3,"offset":40,"raw":"x,oops","reason":"field `n`: invalid digit"}"#);
/// let back: DeadLetter = serde_json::from_str(&json).unwrap();
/// assert_eq!(back, letter);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// The source, as `explain` names it.
    pub source: String,
    /// The source partition that read it.
    pub partition: usize,
    /// Where it was.
    pub origin: Origin,
    /// The record as read (a line without its line break, a message body).
    pub raw: Vec<u8>,
    /// Why it does not read.
    pub reason: String,
}

impl DeadLetter {
    /// A dead letter of `source` (its partition set by the source
    /// operator).
    pub fn new(
        source: impl Into<String>,
        origin: Origin,
        raw: &[u8],
        reason: impl Into<String>,
    ) -> Self {
        DeadLetter {
            source: source.into(),
            partition: 0,
            origin,
            raw: raw.to_vec(),
            reason: reason.into(),
        }
    }
}

/// A dead letter as it travels between workers.
#[derive(Deserialize)]
struct Wire {
    source: String,
    partition: usize,
    origin: Origin,
    raw: Vec<u8>,
    reason: String,
}

/// A [`Wire`] to serialize, borrowing the letter's fields (the same layout).
#[derive(Serialize)]
struct WireRef<'a> {
    source: &'a String,
    partition: usize,
    origin: &'a Origin,
    raw: &'a Vec<u8>,
    reason: &'a String,
}

/// A dead letter as JSON: one flat object.
#[derive(Serialize, Deserialize, Default)]
struct Flat {
    source: String,
    partition: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    file: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    topic: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    topic_partition: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    queue: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    consumer: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    delivery: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    message_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    raw_base64: Option<String>,
    reason: String,
}

impl Flat {
    fn of(d: &DeadLetter) -> Flat {
        let mut flat = Flat {
            source: d.source.clone(),
            partition: d.partition,
            reason: d.reason.clone(),
            ..Flat::default()
        };
        match &d.origin {
            Origin::File { path, line, offset } => {
                flat.file = Some(path.clone());
                flat.line = Some(*line);
                flat.offset = Some(*offset as i64);
            }
            Origin::Topic {
                topic,
                partition,
                offset,
            } => {
                flat.topic = Some(topic.clone());
                flat.topic_partition = Some(*partition);
                flat.offset = Some(*offset);
            }
            Origin::Queue {
                queue,
                consumer,
                delivery,
                message_id,
            } => {
                flat.queue = Some(queue.clone());
                flat.consumer = Some(*consumer);
                flat.delivery = Some(*delivery);
                flat.message_id = message_id.clone();
            }
            Origin::Other(at) => flat.at = Some(at.clone()),
        }
        match std::str::from_utf8(&d.raw) {
            Ok(text) => flat.raw = Some(text.to_string()),
            Err(_) => {
                flat.raw_base64 = Some(base64::engine::general_purpose::STANDARD.encode(&d.raw))
            }
        }
        flat
    }

    fn into_letter(self) -> Result<DeadLetter, String> {
        let origin = match (self.file, self.topic, self.queue, self.at) {
            (Some(path), None, None, None) => Origin::File {
                path,
                line: self.line.ok_or("a dead letter of a file needs `line`")?,
                offset: self
                    .offset
                    .ok_or("a dead letter of a file needs `offset`")?
                    as u64,
            },
            (None, Some(topic), None, None) => Origin::Topic {
                topic,
                partition: self
                    .topic_partition
                    .ok_or("a dead letter of a topic needs `topic_partition`")?,
                offset: self
                    .offset
                    .ok_or("a dead letter of a topic needs `offset`")?,
            },
            (None, None, Some(queue), None) => Origin::Queue {
                queue,
                consumer: self
                    .consumer
                    .ok_or("a dead letter of a queue needs `consumer`")?,
                delivery: self
                    .delivery
                    .ok_or("a dead letter of a queue needs `delivery`")?,
                message_id: self.message_id,
            },
            (None, None, None, Some(at)) => Origin::Other(at),
            _ => {
                return Err(
                    "a dead letter needs exactly one of `file`, `topic`, `queue` and `at`".into(),
                );
            }
        };
        let raw = match (self.raw, self.raw_base64) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(encoded)) => base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|e| format!("`raw_base64`: {e}"))?,
            _ => return Err("a dead letter needs one of `raw` and `raw_base64`".into()),
        };
        Ok(DeadLetter {
            source: self.source,
            partition: self.partition,
            origin,
            raw,
            reason: self.reason,
        })
    }
}

impl Serialize for DeadLetter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            Flat::of(self).serialize(serializer)
        } else {
            WireRef {
                source: &self.source,
                partition: self.partition,
                origin: &self.origin,
                raw: &self.raw,
                reason: &self.reason,
            }
            .serialize(serializer)
        }
    }
}

impl<'de> Deserialize<'de> for DeadLetter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            Flat::deserialize(deserializer)?
                .into_letter()
                .map_err(serde::de::Error::custom)
        } else {
            let w = Wire::deserialize(deserializer)?;
            Ok(DeadLetter {
                source: w.source,
                partition: w.partition,
                origin: w.origin,
                raw: w.raw,
                reason: w.reason,
            })
        }
    }
}

/// What a source's readers do with a record they cannot read, as the
/// source's [`OnError`] policy says: given to them by
/// [`SourceContext::bad_records`](crate::sources::SourceContext::bad_records).
#[derive(Clone)]
pub struct BadRecords {
    policy: OnError,
    source: String,
    rejects: Rejects<DeadLetter>,
    counter: Option<Arc<AtomicU64>>,
}

impl BadRecords {
    pub(crate) fn new(
        policy: OnError,
        source: &str,
        rejects: Rejects<DeadLetter>,
        counter: Option<Arc<AtomicU64>>,
    ) -> Self {
        BadRecords {
            policy,
            source: source.to_string(),
            rejects,
            counter,
        }
    }

    /// The default policy (stop the job), for unit tests.
    #[cfg(test)]
    pub(crate) fn for_test() -> Self {
        BadRecords::new(OnError::Fail, "test", Rejects::new(), None)
    }

    /// The source's policy.
    pub fn policy(&self) -> OnError {
        self.policy
    }

    /// Handles a record at `origin` that does not read, for `reason`:
    /// counted and left out, or counted and sent to the dead letters, as
    /// the policy says.
    ///
    /// # Errors
    ///
    /// With [`OnError::Fail`], the error that stops the job: it names the
    /// source, the origin and the reason (for a file, a
    /// [`SourceError::BadRecord`]).
    pub fn reject(&self, origin: Origin, raw: &[u8], reason: String) -> Result<(), BoxError> {
        match self.policy {
            OnError::Fail => Err(match origin {
                Origin::File { path, line, offset } => Box::new(SourceError::BadRecord {
                    source_name: self.source.clone(),
                    path,
                    line,
                    offset,
                    reason,
                }),
                origin => format!("source `{}`: {origin}: {reason}", self.source).into(),
            }),
            OnError::Skip => {
                self.count();
                Ok(())
            }
            OnError::DeadLetter => {
                self.count();
                self.rejects
                    .push(DeadLetter::new(&*self.source, origin, raw, reason));
                Ok(())
            }
        }
    }

    fn count(&self) {
        if let Some(c) = &self.counter {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Dead letters travel between workers as they are, and read back from
    /// their JSON, bytes that are not text too.
    #[test]
    fn dead_letters_round_trip_through_bincode_and_json() {
        let letters = [
            DeadLetter::new(
                "kafka(t, json)",
                Origin::Topic {
                    topic: "t".into(),
                    partition: 2,
                    offset: 99,
                },
                &[0xff, 0x00, b'a'],
                "bad JSON",
            ),
            DeadLetter::new(
                "amqp(q, json)",
                Origin::Queue {
                    queue: "q".into(),
                    consumer: 1,
                    delivery: 7,
                    message_id: Some("m-7".into()),
                },
                b"{",
                "bad JSON",
            ),
            DeadLetter::new("mine", Origin::Other("row 3".into()), b"", "empty"),
        ];
        for letter in letters {
            let wire = bincode::serialize(&letter).unwrap();
            assert_eq!(bincode::deserialize::<DeadLetter>(&wire).unwrap(), letter);
            let json = serde_json::to_string(&letter).unwrap();
            assert_eq!(
                serde_json::from_str::<DeadLetter>(&json).unwrap(),
                letter,
                "{json}"
            );
        }
        let json = serde_json::to_value(DeadLetter::new(
            "s",
            Origin::Other("x".into()),
            &[0xff],
            "r",
        ))
        .unwrap();
        assert_eq!(json["raw_base64"], "/w==");
        assert!(json.get("raw").is_none());
        let mixed = r#"{"source":"s","partition":0,"file":"f","line":1,"offset":0,"topic":"t","raw":"","reason":"r"}"#;
        let err = serde_json::from_str::<DeadLetter>(mixed).unwrap_err();
        assert!(err.to_string().contains("exactly one of"), "{err}");
    }
}
