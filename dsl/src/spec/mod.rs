//! The text pipeline spec: `weir run spec.toml` builds a windowed
//! aggregation over dynamic rows, for users who do not write Rust.
//!
//! ```toml
//! name = "clicks-per-user"
//!
//! [source]
//! type = "csv"                 # csv | jsonl | stdin | nexmark (bids; `events = N`)
//! path = "events.csv"          # a file, a directory or a glob
//! event_time = { field = "ts", max_out_of_orderness_ms = 2000 }
//! # event_time format: "ms" (default), "s" (epoch seconds) or "rfc3339"
//! # schema = { amount = "float" }   # int | float | string; else inferred
//!
//! [window]
//! key = ["user"]
//! type = "session"             # tumbling | sliding | session
//! gap_ms = 30000               # tumbling: size_ms; sliding: size_ms + slide_ms
//! # allowed_lateness_ms = 0
//!
//! [aggregate]
//! count = "count(*)"
//! total = "sum(amount)"
//!
//! [sink]
//! type = "jsonl"               # jsonl | csv | stdout
//! path = "out.jsonl"
//! ```
//!
//! Each result is one record: the key fields by name, `window_start`,
//! `window_end` (ms) and one field per aggregate, in the order of the spec.
//! Integers stay integers.

mod aggregate;
#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "kafka")]
mod kafka;
mod render;
mod rows;
mod schema;
mod value;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub use value::{KeyedRow, Row, Value, Values};

use self::aggregate::{AggSpec, Func, SpecAggregator};
use self::rows::{BID_FIELDS, BidRows, CsvRowDecoder, Fields, LineSplitter, csv_header, json_row};
use self::schema::{FieldType, Format, SinkKind, SourceKind, SpecFile, TimeFormat, WindowKind};
use crate::sources::{
    CsvDecode, CsvRows, LineError, LineSource, Mapped, Nexmark, OnError, ParsedStdin, list_files,
};
use crate::{
    Pipeline, Session, Sliding, StdoutLines, TextFile, Tumbling, Watermark, WindowResult,
    WindowSpec,
};

/// A mistake in a spec: names the field and says what is expected.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    /// The file cannot be read.
    #[error("cannot read spec {}: {error}", path.display())]
    Read {
        /// The spec file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        error: std::io::Error,
    },
    /// Not valid TOML, or a field of the wrong type, or an unknown field.
    #[error("spec {}: {message}", path.display())]
    Syntax {
        /// The spec file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field with an impossible value.
    #[error("spec field `{field}`: expected {expected}")]
    Field {
        /// The field, as `section.name`.
        field: String,
        /// What is expected.
        expected: String,
    },
}

fn field_err(field: impl Into<String>, expected: impl Into<String>) -> SpecError {
    SpecError::Field {
        field: field.into(),
        expected: expected.into(),
    }
}

/// Where the rows of a checked spec come from.
#[derive(Debug, Clone)]
enum Input {
    Csv(PathBuf),
    Jsonl(PathBuf),
    Stdin(Format),
    Nexmark(u64),
    #[cfg(feature = "kafka")]
    Kafka(KafkaInput),
    #[cfg(feature = "amqp")]
    Amqp(amqp::AmqpInput),
}

/// A Kafka topic as a spec's input.
#[cfg(feature = "kafka")]
#[derive(Debug, Clone)]
struct KafkaInput {
    brokers: String,
    topic: String,
    /// `None`: JSON values; `Some(fields)`: CSV lines of these columns.
    csv_fields: Option<Vec<String>>,
    start: crate::sources::KafkaStart,
    bounded: bool,
    group: Option<String>,
    /// TLS and SASL settings.
    settings: kafka::KafkaSettings,
}

/// Where the results of a checked spec go.
#[derive(Debug, Clone)]
enum Output {
    Jsonl(PathBuf),
    Csv(PathBuf),
    Stdout,
    /// A Kafka topic: brokers, topic, and the positions among the window's
    /// keys of the fields that key each record.
    #[cfg(feature = "kafka")]
    Kafka {
        brokers: String,
        topic: String,
        key: Vec<usize>,
        /// TLS and SASL settings.
        settings: kafka::KafkaSettings,
    },
    /// A RabbitMQ exchange.
    #[cfg(feature = "amqp")]
    Amqp(amqp::AmqpOutput),
}

/// A parsed, checked spec.
#[derive(Debug, Clone)]
pub struct Spec {
    name: String,
    input: Input,
    time_field: String,
    time_format: TimeFormat,
    bound: u64,
    idle_timeout: Option<u64>,
    keys: Vec<String>,
    /// Fields the aggregates read, in `Row::values` order.
    value_fields: Vec<String>,
    /// Whether each value field must be a number (sum and avg read it).
    numeric: Vec<bool>,
    types: Vec<(String, FieldType)>,
    window: WindowSpec,
    lateness: u64,
    aggs: Vec<AggSpec>,
    output: Output,
    /// The output fields: key fields, window bounds, aggregate names.
    header: Vec<String>,
    /// The output fields as JSON object keys, each with what goes before
    /// it: `{"name":` for the first, `,"name":` for the others.
    json_keys: Vec<String>,
    /// Checkpoints, if the spec takes them.
    checkpoint: Option<crate::Checkpointing>,
    /// What the source does with a record that does not read.
    on_error: OnError,
    /// Where its dead letters go, with [`OnError::DeadLetter`].
    dead_letter: Option<Output>,
}

/// A Kafka input's source of rows.
#[cfg(feature = "kafka")]
type KafkaRows =
    Mapped<crate::sources::Kafka<KeyedRow>, fn(crate::sources::KafkaRecord<KeyedRow>) -> KeyedRow>;

/// The rows of a Kafka input: each record's value decoded as JSON, or as a
/// CSV line of the input's fields.
#[cfg(feature = "kafka")]
fn kafka_rows(k: &KafkaInput, fields: &Arc<Fields>) -> Result<KafkaRows, SpecError> {
    let mut source = crate::sources::Kafka::new(&k.brokers, &k.topic).start(k.start);
    if k.bounded {
        source = source.bounded();
    }
    if let Some(group) = &k.group {
        source = source.group(group);
    }
    for (key, value) in k.settings.iter() {
        source = source.set(key, value);
    }
    let decode = record_decoder(
        k.csv_fields.as_deref(),
        fields,
        &format!("kafka({})", k.topic),
    )?;
    let source = source.with_decode(queue_format_name(k.csv_fields.as_deref()), Arc::new(decode));
    Ok(Mapped::new(source, |r| r.value))
}

/// Where the `fields` of a sink's `key` are among the window's `keys`.
#[cfg(any(feature = "kafka", feature = "amqp"))]
fn key_positions(fields: &schema::Keys, keys: &[String]) -> Result<Vec<usize>, SpecError> {
    fields
        .fields()
        .iter()
        .map(|field| {
            keys.iter().position(|k| k == field).ok_or_else(|| {
                field_err(
                    "sink.key",
                    format!(
                        "fields among the window's keys ({}), got `{field}`",
                        keys.join(", ")
                    ),
                )
            })
        })
        .collect()
}

/// A result's key fields at positions `at`, as text joined by `|`: a
/// Kafka record key, an AMQP routing key.
#[cfg(any(feature = "kafka", feature = "amqp"))]
fn joined_key(key: &Values, at: &[usize]) -> String {
    let mut joined = String::new();
    for (i, &at) in at.iter().enumerate() {
        if i > 0 {
            joined.push('|');
        }
        if let Some(v) = key.get(at) {
            joined.push_str(&v.text());
        }
    }
    joined
}

/// Decodes one queue record (a Kafka value, an AMQP body) into a row: as
/// JSON, or with `csv_fields` as a CSV line of these columns; `name` names
/// the source in messages.
#[cfg(any(feature = "kafka", feature = "amqp"))]
fn record_decoder(
    csv_fields: Option<&[String]>,
    fields: &Arc<Fields>,
    name: &str,
) -> Result<impl Fn(&[u8]) -> Result<KeyedRow, String> + Send + Sync + 'static + use<>, SpecError> {
    let fields = Arc::clone(fields);
    let csv = match csv_fields {
        None => None,
        Some(columns) => {
            let header = csv::ByteRecord::from(columns.to_vec());
            let decoder =
                CsvRowDecoder::new(&fields, name, Path::new(name), &header).map_err(|e| {
                    field_err("source.fields", format!("every field the spec reads: {e}"))
                })?;
            Some((decoder, std::sync::Mutex::new(LineSplitter::new())))
        }
    };
    Ok(move |bytes: &[u8]| {
        let row = match &csv {
            None => json_row(&fields, bytes)?,
            Some((decoder, splitter)) => {
                let mut splitter = splitter.lock().unwrap_or_else(|p| p.into_inner());
                decoder.decode(splitter.split(bytes))?
            }
        };
        row.ok_or_else(|| "an empty record".to_string())
    })
}

/// The name of a queue source's format (`csv` with columns, else
/// `json`), as its description shows it.
#[cfg(any(feature = "kafka", feature = "amqp"))]
fn queue_format_name(csv_fields: Option<&[String]>) -> &'static str {
    match csv_fields {
        Some(_) => "csv",
        None => "json",
    }
}

/// The columns of a queue source's CSV records, or `None` for JSON, from
/// its `format` and `fields`.
#[cfg(any(feature = "kafka", feature = "amqp"))]
fn queue_format(src: &schema::SourceSection, kind: &str) -> Result<Option<Vec<String>>, SpecError> {
    match (src.format.unwrap_or(Format::Json), src.fields.clone()) {
        (Format::Json, None) => Ok(None),
        (Format::Json, Some(_)) => Err(field_err(
            "source.fields",
            "no `fields` with `format = \"json\"` (JSON records name their fields)",
        )),
        (Format::Csv, Some(fields)) if !fields.is_empty() => Ok(Some(fields)),
        (Format::Csv, _) => Err(field_err(
            "source.fields",
            "the columns of each CSV record, in order (`fields = [\"ts\", \"user\"]`)",
        )),
        (Format::Jsonl, _) => Err(field_err(
            "source.format",
            format!("`json` or `csv` for {kind}"),
        )),
    }
}

/// An AMQP `[source]`, checked.
#[cfg(feature = "amqp")]
fn amqp_input(src: &schema::SourceSection) -> Result<Input, SpecError> {
    amqp::amqp_input(src).map(Input::Amqp)
}

/// An AMQP `[sink]`, checked.
#[cfg(feature = "amqp")]
fn amqp_output(
    section: &str,
    sink: &schema::SinkSection,
    keys: &[String],
) -> Result<Output, SpecError> {
    amqp::amqp_output(section, sink, keys).map(Output::Amqp)
}

/// The `amqp` feature, missing from this build, for `field`.
#[cfg(not(feature = "amqp"))]
fn needs_amqp(field: &str) -> SpecError {
    field_err(
        field,
        "a kind this `weir` was built with: `amqp` needs the `amqp` feature (cargo install weir --features amqp)",
    )
}

#[cfg(not(feature = "amqp"))]
fn amqp_input(_: &schema::SourceSection) -> Result<Input, SpecError> {
    Err(needs_amqp("source.type"))
}

#[cfg(not(feature = "amqp"))]
fn amqp_output(section: &str, _: &schema::SinkSection, _: &[String]) -> Result<Output, SpecError> {
    Err(needs_amqp(&format!("{section}.type")))
}

/// The `kafka` feature, missing from this build, for `field`.
#[cfg(not(feature = "kafka"))]
fn needs_kafka(field: &str) -> SpecError {
    field_err(
        field,
        "a kind this `weir` was built with: `kafka` needs the `kafka` feature (cargo install weir --features kafka)",
    )
}

/// A Kafka `[source]`, checked.
#[cfg(feature = "kafka")]
fn kafka_input(src: &schema::SourceSection) -> Result<Input, SpecError> {
    use crate::sources::KafkaStart;
    use schema::StartAt;
    let brokers = src.brokers.clone().ok_or_else(|| {
        field_err(
            "source.brokers",
            "the Kafka brokers, `host:port[,host:port...]`",
        )
    })?;
    let topic = src
        .topic
        .clone()
        .ok_or_else(|| field_err("source.topic", "the Kafka topic to read"))?;
    let csv_fields = queue_format(src, "Kafka")?;
    let start = match &src.start {
        None => KafkaStart::Earliest,
        Some(StartAt::Named(n)) if n == "earliest" => KafkaStart::Earliest,
        Some(StartAt::Named(n)) if n == "latest" => KafkaStart::Latest,
        Some(StartAt::Named(n)) if n == "committed" => KafkaStart::Committed,
        Some(StartAt::Timestamp(ts)) if *ts >= 0 => KafkaStart::Timestamp(*ts),
        Some(_) => {
            return Err(field_err(
                "source.start",
                "`earliest`, `latest`, `committed` or a timestamp in milliseconds",
            ));
        }
    };
    if start == KafkaStart::Committed && src.group.is_none() {
        return Err(field_err(
            "source.group",
            "the consumer group whose offsets `start = \"committed\"` reads",
        ));
    }
    Ok(Input::Kafka(KafkaInput {
        brokers,
        topic,
        csv_fields,
        start,
        bounded: src.bounded.unwrap_or(false),
        group: src.group.clone(),
        settings: kafka::security("source.security", src.security.as_ref())?,
    }))
}

#[cfg(not(feature = "kafka"))]
fn kafka_input(_: &schema::SourceSection) -> Result<Input, SpecError> {
    Err(needs_kafka("source.type"))
}

/// A Kafka `[sink]`, checked; `keys` are the window's key fields.
#[cfg(feature = "kafka")]
fn kafka_output(
    section: &str,
    sink: &schema::SinkSection,
    keys: &[String],
) -> Result<Output, SpecError> {
    if sink.path.is_some() {
        return Err(field_err(
            format!("{section}.path"),
            "no `path` for a sink of type `kafka`, which takes `brokers`, `topic`, `key` and `security`",
        ));
    }
    let brokers = sink.brokers.clone().ok_or_else(|| {
        field_err(
            format!("{section}.brokers"),
            "the Kafka brokers, `host:port[,host:port...]`",
        )
    })?;
    let topic = sink
        .topic
        .clone()
        .ok_or_else(|| field_err(format!("{section}.topic"), "the Kafka topic to write"))?;
    let key = match &sink.key {
        Some(fields) => key_positions(fields, keys)?,
        None => Vec::new(),
    };
    Ok(Output::Kafka {
        brokers,
        topic,
        key,
        settings: kafka::security(&format!("{section}.security"), sink.security.as_ref())?,
    })
}

#[cfg(not(feature = "kafka"))]
fn kafka_output(section: &str, _: &schema::SinkSection, _: &[String]) -> Result<Output, SpecError> {
    Err(needs_kafka(&format!("{section}.type")))
}

/// Window results as Kafka records: a key made of the `key` fields (joined
/// by `|`) and the result as a JSON object.
#[cfg(feature = "kafka")]
fn kafka_sink(
    results: crate::Stream<WindowResult<Values, Values>>,
    spec: Arc<Spec>,
    (brokers, topic, settings): (&str, &str, &kafka::KafkaSettings),
    key: &[usize],
) -> Pipeline {
    let key = key.to_vec();
    let keyed = !key.is_empty();
    let records = results.map(move |r: WindowResult<Values, Values>| {
        let record_key = joined_key(&r.key, &key);
        let mut value = String::with_capacity(96);
        render::render(&spec, r, true, &mut value);
        (record_key, value)
    });
    let mut sink = crate::sinks::KafkaSink::new(brokers, topic).encode_with(
        |(_, value): &(String, String), buf| {
            buf.extend_from_slice(value.as_bytes());
            Ok(())
        },
    );
    if keyed {
        sink = sink.key(|(key, _): &(String, String)| key.clone().into_bytes());
    }
    records.sink(kafka_settings(sink, settings))
}

/// `sink` with the librdkafka `settings` of its spec.
#[cfg(feature = "kafka")]
fn kafka_settings<T>(
    mut sink: crate::sinks::KafkaSink<T>,
    settings: &kafka::KafkaSettings,
) -> crate::sinks::KafkaSink<T> {
    for (key, value) in settings.iter() {
        sink = sink.set(key, value);
    }
    sink
}

/// The output a sink table says, checked: `section` is its name (`sink`,
/// `dead_letter`), `keys` the window's key fields.
fn check_sink(
    section: &str,
    sink: &schema::SinkSection,
    keys: &[String],
) -> Result<Output, SpecError> {
    let sink_path = || {
        sink.path
            .clone()
            .ok_or_else(|| field_err(format!("{section}.path"), "the output file"))
    };
    let (to_kafka, to_amqp) = (sink.kind == SinkKind::Kafka, sink.kind == SinkKind::Amqp);
    for (field, given, applies) in [
        ("brokers", sink.brokers.is_some(), to_kafka),
        ("topic", sink.topic.is_some(), to_kafka),
        ("key", sink.key.is_some(), to_kafka || to_amqp),
        ("security", sink.security.is_some(), to_kafka),
        ("url", sink.url.is_some(), to_amqp),
        ("url_env", sink.url_env.is_some(), to_amqp),
        ("exchange", sink.exchange.is_some(), to_amqp),
        ("routing_key", sink.routing_key.is_some(), to_amqp),
        ("ca_file", sink.ca_file.is_some(), to_amqp),
    ] {
        if given && !applies {
            return Err(field_err(
                format!("{section}.{field}"),
                format!("no `{field}` for a sink of type `{:?}`", sink.kind).to_lowercase(),
            ));
        }
    }
    Ok(match sink.kind {
        SinkKind::Kafka => kafka_output(section, sink, keys)?,
        SinkKind::Amqp => amqp_output(section, sink, keys)?,
        SinkKind::Jsonl => Output::Jsonl(sink_path()?),
        SinkKind::Csv => Output::Csv(sink_path()?),
        SinkKind::Stdout if sink.path.is_some() => {
            return Err(field_err(
                format!("{section}.path"),
                "no `path` for a sink of type `stdout`",
            ));
        }
        SinkKind::Stdout => Output::Stdout,
    })
}

/// The `[dead_letter]` table, checked: a JSON-lines file, a Kafka topic or
/// an AMQP exchange, each dead letter one JSON object.
fn dead_letter_output(section: &schema::SinkSection) -> Result<Output, SpecError> {
    if matches!(section.kind, SinkKind::Csv | SinkKind::Stdout) {
        return Err(field_err(
            "dead_letter.type",
            "`jsonl` (a file, with `path`), `kafka` (`brokers`, `topic`) or `amqp` (`url`, `exchange`, `routing_key`): dead letters are JSON objects, and standard output carries the results",
        ));
    }
    if section.key.is_some() {
        return Err(field_err(
            "dead_letter.key",
            "no `key` for dead letters, which have no window key",
        ));
    }
    check_sink("dead_letter", section, &[])
}

/// Sends the dead letters of `rows`' source to `output`.
fn sink_dead_letters(rows: &crate::Stream<KeyedRow>, output: &Output) -> Result<(), SpecError> {
    let letters = rows.dead_letters();
    let _job = match output {
        Output::Jsonl(path) => letters.sink(crate::sinks::JsonLinesFile::to(path)),
        #[cfg(feature = "kafka")]
        Output::Kafka {
            brokers,
            topic,
            settings,
            ..
        } => letters.sink(kafka_settings(
            crate::sinks::KafkaSink::new(brokers, topic),
            settings,
        )),
        #[cfg(feature = "amqp")]
        Output::Amqp(out) => amqp::amqp_letters(letters, out),
        Output::Csv(_) | Output::Stdout => {
            return Err(field_err("dead_letter.type", "`jsonl`, `kafka` or `amqp`"));
        }
    };
    Ok(())
}

impl Spec {
    /// Reads and checks the spec at `path`.
    ///
    /// # Errors
    ///
    /// [`SpecError`] naming the field at fault.
    pub fn from_path(path: &Path) -> Result<Spec, SpecError> {
        let text = std::fs::read_to_string(path).map_err(|error| SpecError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Spec::parse(&text).map_err(|e| match e {
            SpecError::Syntax { message, .. } => SpecError::Syntax {
                path: path.to_path_buf(),
                message,
            },
            other => other,
        })
    }

    /// Parses and checks spec text.
    ///
    /// # Errors
    ///
    /// [`SpecError`] naming the field at fault.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir::spec::Spec;
    ///
    /// let err = Spec::parse(r#"
    ///     name = "x"
    ///     [source]
    ///     type = "csv"
    ///     path = "in.csv"
    ///     event_time = { field = "ts", max_out_of_orderness_ms = 0 }
    ///     [window]
    ///     key = "user"
    ///     type = "tumbling"
    ///     [aggregate]
    ///     n = "count(*)"
    ///     [sink]
    ///     type = "stdout"
    /// "#).unwrap_err();
    /// assert_eq!(err.to_string(), "spec field `window.size_ms`: expected the window size in milliseconds, above 0");
    /// ```
    pub fn parse(text: &str) -> Result<Spec, SpecError> {
        let file: SpecFile = toml::from_str(text).map_err(|e| SpecError::Syntax {
            path: PathBuf::from("<text>"),
            message: e.to_string(),
        })?;
        let src = file.source;
        let src_on_error: OnError = src.on_error.into();
        let kind = src.kind;
        let not_for = |field: &str, given: bool, takes: &str| -> Result<(), SpecError> {
            if given {
                return Err(field_err(
                    format!("source.{field}"),
                    format!("no `{field}` for a source of type `{kind:?}`, which takes {takes}")
                        .to_lowercase(),
                ));
            }
            Ok(())
        };
        let path = |path: Option<PathBuf>| {
            path.ok_or_else(|| field_err("source.path", "the input file, directory or glob"))
        };
        let queue = matches!(kind, SourceKind::Kafka | SourceKind::Amqp);
        let settings = [
            ("brokers", src.brokers.is_some(), kind == SourceKind::Kafka),
            ("topic", src.topic.is_some(), kind == SourceKind::Kafka),
            ("start", src.start.is_some(), kind == SourceKind::Kafka),
            ("group", src.group.is_some(), kind == SourceKind::Kafka),
            (
                "security",
                src.security.is_some(),
                kind == SourceKind::Kafka,
            ),
            ("bounded", src.bounded.is_some(), queue),
            ("fields", src.fields.is_some(), queue),
            ("url", src.url.is_some(), kind == SourceKind::Amqp),
            ("url_env", src.url_env.is_some(), kind == SourceKind::Amqp),
            ("queue", src.queue.is_some(), kind == SourceKind::Amqp),
            (
                "consumers",
                src.consumers.is_some(),
                kind == SourceKind::Amqp,
            ),
            ("prefetch", src.prefetch.is_some(), kind == SourceKind::Amqp),
            ("ca_file", src.ca_file.is_some(), kind == SourceKind::Amqp),
        ];
        for (field, given, applies) in settings {
            if !applies {
                let takes = match kind {
                    SourceKind::Kafka => "Kafka settings",
                    SourceKind::Amqp => "AMQP settings",
                    _ => "no Kafka or AMQP settings",
                };
                not_for(field, given, takes)?;
            }
        }
        let input = match kind {
            SourceKind::Csv | SourceKind::Jsonl => {
                let takes = "`path`, `event_time` and `schema`";
                not_for("format", src.format.is_some(), takes)?;
                not_for("events", src.events.is_some(), takes)?;
                match kind {
                    SourceKind::Csv => Input::Csv(path(src.path)?),
                    _ => Input::Jsonl(path(src.path)?),
                }
            }
            SourceKind::Stdin => {
                let takes = "`format`, `event_time` and `schema`";
                not_for("path", src.path.is_some(), takes)?;
                not_for("events", src.events.is_some(), takes)?;
                let format = src.format.ok_or_else(|| {
                    field_err(
                        "source.format",
                        "the format of standard input: `jsonl` (one JSON object per line) or `csv` (a header line first)",
                    )
                })?;
                if format == Format::Json {
                    return Err(field_err(
                        "source.format",
                        "`jsonl` or `csv` for standard input",
                    ));
                }
                Input::Stdin(format)
            }
            SourceKind::Kafka => {
                let takes = "`brokers`, `topic`, `format`, `fields`, `start`, `bounded`, `group`, `security`, `event_time` and `schema`";
                not_for("path", src.path.is_some(), takes)?;
                not_for("events", src.events.is_some(), takes)?;
                kafka_input(&src)?
            }
            SourceKind::Amqp => {
                let takes = "`url` or `url_env`, `queue`, `format`, `fields`, `bounded`, `consumers`, `prefetch`, `ca_file`, `event_time` and `schema`";
                not_for("path", src.path.is_some(), takes)?;
                not_for("events", src.events.is_some(), takes)?;
                amqp_input(&src)?
            }
            SourceKind::Nexmark => {
                let takes = "`events` and `event_time`";
                not_for("path", src.path.is_some(), takes)?;
                not_for("format", src.format.is_some(), takes)?;
                not_for("schema", src.schema.is_some(), takes)?;
                Input::Nexmark(src.events.ok_or_else(|| {
                    field_err("source.events", "the number of Nexmark events to generate")
                })?)
            }
        };
        let event_time = src.event_time;
        let types: Vec<(String, FieldType)> = src.schema.unwrap_or_default().into_iter().collect();

        let win = file.window;
        let wkind = win.kind;
        let foreign = |field: &str, given: Option<u64>, takes: &str| -> Result<(), SpecError> {
            if given.is_some() {
                return Err(field_err(
                    format!("window.{field}"),
                    format!("no `{field}` for a {wkind:?} window, which takes {takes}")
                        .to_lowercase(),
                ));
            }
            Ok(())
        };
        let positive = |v: Option<u64>, field: &str, what: &str| {
            v.filter(|v| *v > 0).ok_or_else(|| {
                field_err(
                    format!("window.{field}"),
                    format!("{what} in milliseconds, above 0"),
                )
            })
        };
        let window = match wkind {
            WindowKind::Tumbling => {
                foreign("slide_ms", win.slide_ms, "`size_ms`")?;
                foreign("gap_ms", win.gap_ms, "`size_ms`")?;
                let size = positive(win.size_ms, "size_ms", "the window size")?;
                Tumbling::of(Duration::from_millis(size))
            }
            WindowKind::Sliding => {
                foreign("gap_ms", win.gap_ms, "`size_ms` and `slide_ms`")?;
                let size = positive(win.size_ms, "size_ms", "the window size")?;
                let slide = positive(win.slide_ms, "slide_ms", "the slide")?;
                if slide > size {
                    return Err(field_err(
                        "window.slide_ms",
                        format!("a slide no longer than size_ms ({size}), got {slide}"),
                    ));
                }
                Sliding::of(Duration::from_millis(size)).every(Duration::from_millis(slide))
            }
            WindowKind::Session => {
                foreign("size_ms", win.size_ms, "`gap_ms`")?;
                foreign("slide_ms", win.slide_ms, "`gap_ms`")?;
                let gap = positive(win.gap_ms, "gap_ms", "the session gap")?;
                Session::with_gap(Duration::from_millis(gap))
            }
        };
        let keys = win.key.into_vec();
        let lateness = win.allowed_lateness_ms;
        if keys.is_empty() {
            return Err(field_err("window.key", "one or more key fields"));
        }

        let mut value_fields: Vec<String> = Vec::new();
        let mut numeric: Vec<bool> = Vec::new();
        let mut aggs = Vec::new();
        if file.aggregate.is_empty() {
            return Err(field_err(
                "aggregate",
                "at least one `name = \"count(*)\"` entry",
            ));
        }
        for (name, expr) in &file.aggregate {
            let expected = "count(*), sum(field), min(field), max(field) or avg(field)";
            let expr = expr
                .as_str()
                .ok_or_else(|| field_err(format!("aggregate.{name}"), expected))?;
            let (func, arg) = expr
                .trim()
                .strip_suffix(')')
                .and_then(|e| e.split_once('('))
                .ok_or_else(|| {
                    field_err(
                        format!("aggregate.{name}"),
                        format!("{expected}, got `{expr}`"),
                    )
                })?;
            let arg = arg.trim();
            let func = match (func.trim().to_ascii_lowercase().as_str(), arg) {
                ("count", "*") => Func::Count,
                ("sum", _) => Func::Sum,
                ("min", _) => Func::Min,
                ("max", _) => Func::Max,
                ("avg", _) => Func::Avg,
                _ => {
                    return Err(field_err(
                        format!("aggregate.{name}"),
                        format!("{expected}, got `{expr}`"),
                    ));
                }
            };
            let column = if func == Func::Count {
                None
            } else {
                if arg.is_empty() || arg == "*" {
                    return Err(field_err(
                        format!("aggregate.{name}"),
                        format!("a field name in `{expr}`"),
                    ));
                }
                let i = match value_fields.iter().position(|f| f == arg) {
                    Some(i) => i,
                    None => {
                        value_fields.push(arg.to_string());
                        numeric.push(false);
                        value_fields.len() - 1
                    }
                };
                numeric[i] |= matches!(func, Func::Sum | Func::Avg);
                let text = types
                    .iter()
                    .any(|(f, t)| f == arg && *t == FieldType::String);
                if matches!(func, Func::Sum | Func::Avg) && text {
                    return Err(field_err(
                        format!("aggregate.{name}"),
                        format!("a number field to sum or average; the schema makes `{arg}` text"),
                    ));
                }
                Some(i)
            };
            for reserved in ["window_start", "window_end"] {
                if name == reserved || keys.iter().any(|k| k == name) {
                    return Err(field_err(
                        format!("aggregate.{name}"),
                        "an output name different from the key fields, window_start and window_end",
                    ));
                }
            }
            aggs.push(AggSpec {
                name: name.clone(),
                func,
                column,
            });
        }

        let output = check_sink("sink", &file.sink, &keys)?;
        let on_error = src_on_error;
        let dead_letter = match (on_error, &file.dead_letter) {
            (OnError::DeadLetter, Some(section)) => Some(dead_letter_output(section)?),
            (OnError::DeadLetter, None) => {
                return Err(field_err(
                    "dead_letter",
                    "a `[dead_letter]` table saying where the bad records go (`type = \"jsonl\"` and `path`, or a Kafka topic or an AMQP exchange), since `source.on_error` is `dead_letter`",
                ));
            }
            (_, Some(_)) => {
                return Err(field_err(
                    "source.on_error",
                    "`dead_letter`, to send bad records to the `[dead_letter]` table's output (or remove the table)",
                ));
            }
            (_, None) => None,
        };
        let mut header = keys.clone();
        header.push("window_start".into());
        header.push("window_end".into());
        header.extend(aggs.iter().map(|a| a.name.clone()));
        let json_keys = header
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut key = String::from(if i == 0 { "{" } else { "," });
                value::json_string(name, &mut key);
                key.push(':');
                key
            })
            .collect();
        let checkpoint = match file.checkpoint {
            None => None,
            Some(c) if c.interval_ms == 0 => {
                return Err(field_err(
                    "checkpoint.interval_ms",
                    "the time between checkpoints in milliseconds, above 0",
                ));
            }
            Some(c) if c.keep == Some(0) => {
                return Err(field_err(
                    "checkpoint.keep",
                    "how many complete checkpoints to keep, at least 1",
                ));
            }
            Some(c) => {
                let every = Duration::from_millis(c.interval_ms);
                let mut checkpointing = crate::Checkpointing::to(&c.dir).every(every);
                if let Some(keep) = c.keep {
                    checkpointing = checkpointing.keep(keep);
                }
                Some(checkpointing)
            }
        };
        let spec = Spec {
            json_keys,
            checkpoint,
            on_error,
            dead_letter,
            name: file.name,
            input,
            time_field: event_time.field,
            time_format: event_time.format,
            bound: event_time.max_out_of_orderness_ms,
            idle_timeout: event_time.idle_timeout_ms,
            keys,
            value_fields,
            numeric,
            types,
            window,
            lateness,
            aggs,
            output,
            header,
        };
        if matches!(spec.input, Input::Nexmark(_)) {
            spec.check_bid_fields()?;
            if spec.time_format != TimeFormat::Ms {
                return Err(field_err(
                    "source.event_time.format",
                    "`ms` (the default) for Nexmark bids, whose times are integer milliseconds",
                ));
            }
        }
        if spec.time_format == TimeFormat::Rfc3339
            && spec
                .type_of(&spec.time_field)
                .is_some_and(|t| t != FieldType::String)
        {
            return Err(field_err(
                format!("source.schema.{}", spec.time_field),
                "`string` (or no entry) for an event-time field in RFC 3339",
            ));
        }
        Ok(spec)
    }

    /// The type the schema gives `field`, if it does.
    fn type_of(&self, field: &str) -> Option<FieldType> {
        self.types.iter().find(|(f, _)| f == field).map(|(_, t)| *t)
    }

    /// Checks the fields a Nexmark spec reads against the fields of a bid
    /// and their types: the event time is an integer field, and summed or
    /// averaged fields are numbers.
    fn check_bid_fields(&self) -> Result<(), SpecError> {
        let names: Vec<String> = BID_FIELDS.iter().map(|(f, _, _)| f.to_string()).collect();
        self.check_fields(&names, "Nexmark bids")?;
        let type_of = |field: &str| {
            BID_FIELDS
                .iter()
                .find(|(f, _, _)| *f == field)
                .map(|(_, t, _)| *t)
        };
        let numbers = || {
            BID_FIELDS
                .iter()
                .filter(|(_, t, _)| *t == FieldType::Int)
                .map(|(f, _, _)| *f)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if type_of(&self.time_field) != Some(FieldType::Int) {
            return Err(field_err(
                "source.event_time.field",
                format!(
                    "an integer field of Nexmark bids ({}), got `{}`, which is text",
                    numbers(),
                    self.time_field
                ),
            ));
        }
        for agg in &self.aggs {
            let Some(column) = agg.column else { continue };
            let field = &self.value_fields[column];
            if matches!(agg.func, Func::Sum | Func::Avg) && type_of(field) != Some(FieldType::Int) {
                return Err(field_err(
                    format!("aggregate.{}", agg.name),
                    format!(
                        "a number field of Nexmark bids to sum or average ({}), got `{field}`, which is text",
                        numbers()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The pipeline this spec describes.
    ///
    /// # Errors
    ///
    /// [`SpecError`] if a CSV input lacks a field the spec names (checked
    /// against the header of the first input file).
    pub fn pipeline(&self) -> Result<Pipeline, SpecError> {
        let spec = Arc::new(self.clone());
        let p = Pipeline::new(self.name.clone());
        let fields = Arc::new(Fields::of(self));
        let rows = match &self.input {
            Input::Nexmark(events) => {
                let bids = BidRows::new(&fields);
                p.source(Mapped::new(Nexmark::bids(*events), move |bid| {
                    bids.row(&bid)
                }))
            }
            Input::Csv(path) => {
                self.check_csv_header(path)?;
                let name = format!("csv({})", path.display());
                p.source(CsvRows::new(
                    path,
                    move |file: &Path, header: &csv::ByteRecord| {
                        CsvRowDecoder::new(&fields, &name, file, header)
                    },
                ))
            }
            Input::Jsonl(path) => p.source(LineSource::new(path, "jsonl", move |_: &Path| {
                let fields = Arc::clone(&fields);
                Ok(move |line: &[u8], _| json_row(&fields, line))
            })),
            Input::Stdin(format) => {
                let s = Arc::clone(&spec);
                let csv = *format == Format::Csv;
                let splitter = std::sync::Mutex::new(LineSplitter::new());
                let decoder: std::sync::OnceLock<CsvRowDecoder> = std::sync::OnceLock::new();
                let parse = move |line: &str, number: u64| {
                    if line.trim().is_empty() {
                        return Ok(None);
                    }
                    if !csv {
                        return Ok(json_row(&fields, line.as_bytes())?);
                    }
                    let mut splitter = splitter.lock().unwrap_or_else(|p| p.into_inner());
                    let record = splitter.split(line.as_bytes());
                    if number == 1 {
                        let names: Vec<String> = record
                            .iter()
                            .map(|h| String::from_utf8_lossy(h).trim().to_string())
                            .collect();
                        let fatal = |e: SpecError| LineError::Fatal(e.to_string());
                        s.check_fields(&names, "the header on standard input")
                            .map_err(fatal)?;
                        let made =
                            CsvRowDecoder::new(&fields, "stdin(csv)", Path::new("<stdin>"), record)
                                .map_err(|e| LineError::Fatal(e.to_string()))?;
                        let _ = decoder.set(made);
                        return Ok(None);
                    }
                    let decoder = decoder
                        .get()
                        .ok_or_else(|| LineError::Fatal("no CSV header line".into()))?;
                    Ok(decoder.decode(record)?)
                };
                let format = if csv { "csv" } else { "jsonl" };
                p.source(ParsedStdin::new(format, Arc::new(parse)))
            }
            #[cfg(feature = "kafka")]
            Input::Kafka(k) => p.source(kafka_rows(k, &fields)?),
            #[cfg(feature = "amqp")]
            Input::Amqp(a) => p.source(amqp::amqp_rows(a, &fields)?),
        };
        let rows = rows.on_error(self.on_error);
        if let Some(output) = &self.dead_letter {
            sink_dead_letters(&rows, output)?;
        }
        let mut watermark = Watermark::bounded(Duration::from_millis(self.bound));
        if let Some(idle) = self.idle_timeout {
            watermark = watermark.idle_timeout(Duration::from_millis(idle));
        }
        let windowed = rows
            .event_time(|(_, r): &KeyedRow| r.ts, watermark)
            .keyed()
            .window(self.window)
            .allowed_lateness(Duration::from_millis(self.lateness));
        let results = windowed.aggregate(SpecAggregator(Arc::clone(&spec)));
        let lines = |json: bool| {
            let s = Arc::clone(&spec);
            move |r: WindowResult<Values, Values>, out: &mut String| {
                render::render(&s, r, json, out)
            }
        };
        // Sinks are named as the spec says them, not by the text sinks
        // that write the rendered lines.
        use crate::sinks::Described as Shown;
        let job = match &self.output {
            Output::Csv(path) => results.render_lines(lines(false)).sink(Shown {
                sink: TextFile::to(path).header(self.header.join(",")),
                name: format!("csv({})", path.display()),
            }),
            Output::Jsonl(path) => results.render_lines(lines(true)).sink(Shown {
                sink: TextFile::to(path),
                name: format!("jsonl({})", path.display()),
            }),
            Output::Stdout => results.render_lines(lines(true)).sink(Shown {
                sink: StdoutLines::new(),
                name: "stdout(jsonl)".to_string(),
            }),
            #[cfg(feature = "kafka")]
            Output::Kafka {
                brokers,
                topic,
                key,
                settings,
            } => kafka_sink(results, Arc::clone(&spec), (brokers, topic, settings), key),
            #[cfg(feature = "amqp")]
            Output::Amqp(out) => amqp::amqp_sink(results, Arc::clone(&spec), out),
        };
        Ok(match &self.checkpoint {
            Some(c) => job.checkpoint(c.clone()),
            None => job,
        })
    }

    /// Checks the header of the first input file against the fields the
    /// spec reads.
    fn check_csv_header(&self, path: &Path) -> Result<(), SpecError> {
        let files = list_files("spec", path).map_err(|_| {
            field_err(
                "source.path",
                format!(
                    "an existing file, directory or glob, got `{}`",
                    path.display()
                ),
            )
        })?;
        let first = &files[0];
        let header = csv_header("spec", first).map_err(|e| {
            field_err(
                "source.path",
                format!("a CSV file with a header row: {}: {e}", first.display()),
            )
        })?;
        if header.is_empty() {
            return Err(field_err(
                "source.path",
                format!("a CSV file with a header row; {} is empty", first.display()),
            ));
        }
        self.check_fields(&header, &first.display().to_string())?;
        self.check_sampled_numbers(first, &header)
    }

    /// Checks that the fields summed or averaged are number columns, as
    /// the first rows of `file` (CSV with `header`) show them, when the
    /// schema does not say their type: a column with text and no number in
    /// those rows is a spec mistake, found before the job runs. A column
    /// with numbers and some text is left to the run (a bad row).
    fn check_sampled_numbers(&self, file: &Path, header: &[String]) -> Result<(), SpecError> {
        const SAMPLED: usize = 100;
        let summed: Vec<(&AggSpec, &String, usize)> = self
            .aggs
            .iter()
            .filter(|a| matches!(a.func, Func::Sum | Func::Avg))
            .filter_map(|a| {
                let field = &self.value_fields[a.column?];
                let at = header.iter().position(|h| h == field)?;
                (self.type_of(field).is_none()).then_some((a, field, at))
            })
            .collect();
        if summed.is_empty() {
            return Ok(());
        }
        let Ok(mut reader) = csv::ReaderBuilder::new().from_path(file) else {
            return Ok(());
        };
        // Per summed field: whether a number was seen, and the first text.
        let mut seen: Vec<(bool, Option<(usize, String)>)> = vec![(false, None); summed.len()];
        for (row, record) in reader.records().take(SAMPLED).enumerate() {
            let Ok(record) = record else { break };
            for ((_, _, at), (number, text)) in summed.iter().zip(seen.iter_mut()) {
                let cell = record.get(*at).map(str::trim).unwrap_or_default();
                if cell.is_empty() {
                    continue;
                }
                match cell.parse::<f64>() {
                    Ok(_) => *number = true,
                    Err(_) => {
                        text.get_or_insert_with(|| (row + 2, cell.to_string()));
                    }
                }
            }
        }
        for ((agg, field, _), (number, text)) in summed.iter().zip(seen) {
            if let (false, Some((line, cell))) = (number, text) {
                return Err(field_err(
                    format!("aggregate.{}", agg.name),
                    format!(
                        "a number field to sum or average; `{field}` holds text in {} (line {line}: `{cell}`)",
                        file.display()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks that `header` (of `what`) has every field the spec reads.
    fn check_fields(&self, header: &[String], what: &str) -> Result<(), SpecError> {
        let needed = std::iter::once(("source.event_time.field", &self.time_field))
            .chain(self.keys.iter().map(|k| ("window.key", k)))
            .chain(self.value_fields.iter().map(|f| ("aggregate", f)));
        for (section, field) in needed {
            if !header.contains(field) {
                return Err(field_err(
                    section,
                    format!(
                        "a column of {what}; `{field}` is not among {}",
                        header.join(", ")
                    ),
                ));
            }
        }
        for (field, _) in &self.types {
            if !header.contains(field) {
                return Err(field_err(
                    format!("source.schema.{field}"),
                    format!(
                        "a column of {what}; `{field}` is not among {}",
                        header.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}
