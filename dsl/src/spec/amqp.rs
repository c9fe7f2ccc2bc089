//! RabbitMQ (AMQP) sources and sinks of specs (feature `amqp`).

use std::path::PathBuf;
use std::sync::Arc;

use super::schema::{SinkSection, SourceSection};
use super::{
    Fields, KeyedRow, Spec, SpecError, Values, field_err, joined_key, key_positions, queue_format,
    queue_format_name, record_decoder, render,
};
use crate::sources::{Amqp, AmqpRecord, Mapped};
use crate::{Pipeline, WindowResult};

/// A queue as a spec's input.
#[derive(Debug, Clone)]
pub(super) struct AmqpInput {
    url: String,
    queue: String,
    /// `None`: JSON bodies; `Some(fields)`: CSV lines of these columns.
    csv_fields: Option<Vec<String>>,
    bounded: bool,
    consumers: usize,
    prefetch: Option<u16>,
    ca_file: Option<PathBuf>,
}

/// An exchange as a spec's output.
#[derive(Debug, Clone)]
pub(super) struct AmqpOutput {
    url: String,
    exchange: String,
    routing_key: RoutingKey,
    ca_file: Option<PathBuf>,
}

/// How each result's routing key is made.
#[derive(Debug, Clone)]
enum RoutingKey {
    Fixed(String),
    /// The positions among the window's keys of the fields, joined by `|`.
    Fields(Vec<usize>),
}

/// The broker URL of `section` (`source` or `sink`): `url`, or the
/// environment variable `url_env` names (so that the password stays out
/// of the spec).
fn url(section: &str, url: Option<&String>, env: Option<&String>) -> Result<String, SpecError> {
    match (url, env) {
        (Some(_), Some(_)) => Err(field_err(
            format!("{section}.url_env"),
            "either `url` or `url_env`, not both",
        )),
        (Some(url), None) => Ok(url.clone()),
        (None, Some(var)) => std::env::var(var).map_err(|_| {
            field_err(
                format!("{section}.url_env"),
                format!("an environment variable holding the broker URL; `{var}` is not set"),
            )
        }),
        (None, None) => Err(field_err(
            format!("{section}.url"),
            "the broker URL, `amqp://user:password@host:port/vhost` (or `url_env`, the environment variable holding it)",
        )),
    }
}

/// An AMQP `[source]`, checked.
pub(super) fn amqp_input(src: &SourceSection) -> Result<AmqpInput, SpecError> {
    let url = url("source", src.url.as_ref(), src.url_env.as_ref())?;
    let queue = src
        .queue
        .clone()
        .ok_or_else(|| field_err("source.queue", "the queue to read"))?;
    let consumers = match src.consumers {
        None => 1,
        Some(0) => return Err(field_err("source.consumers", "at least 1 consumer")),
        Some(n) => n,
    };
    let prefetch = match src.prefetch {
        None => None,
        Some(n) if (1..=u64::from(u16::MAX)).contains(&n) => Some(n as u16),
        Some(_) => {
            return Err(field_err(
                "source.prefetch",
                "a prefetch count from 1 to 65535",
            ));
        }
    };
    Ok(AmqpInput {
        url,
        queue,
        csv_fields: queue_format(src, "AMQP")?,
        bounded: src.bounded.unwrap_or(false),
        consumers,
        prefetch,
        ca_file: src.ca_file.clone(),
    })
}

/// An AMQP input's source of rows.
pub(super) type AmqpRows = Mapped<Amqp<KeyedRow>, fn(AmqpRecord<KeyedRow>) -> KeyedRow>;

/// The rows of an AMQP input: each body decoded as JSON, or as a CSV line
/// of the input's fields.
pub(super) fn amqp_rows(a: &AmqpInput, fields: &Arc<Fields>) -> Result<AmqpRows, SpecError> {
    let mut source = Amqp::new(&a.url, &a.queue).consumers(a.consumers);
    if a.bounded {
        source = source.bounded();
    }
    if let Some(n) = a.prefetch {
        source = source.prefetch(n);
    }
    if let Some(ca) = &a.ca_file {
        source = source.ca_file(ca);
    }
    let decode = record_decoder(
        a.csv_fields.as_deref(),
        fields,
        &format!("amqp({})", a.queue),
    )?;
    let format = queue_format_name(a.csv_fields.as_deref());
    Ok(Mapped::new(
        source.with_decode(format, Arc::new(decode)),
        |r| r.value,
    ))
}

/// An AMQP `[sink]`, checked; `keys` are the window's key fields.
pub(super) fn amqp_output(
    section: &str,
    sink: &SinkSection,
    keys: &[String],
) -> Result<AmqpOutput, SpecError> {
    if sink.path.is_some() {
        return Err(field_err(
            format!("{section}.path"),
            "no `path` for a sink of type `amqp`, which takes `url`, `exchange` and `routing_key` or `key`",
        ));
    }
    let url = url(section, sink.url.as_ref(), sink.url_env.as_ref())?;
    let exchange = sink.exchange.clone().ok_or_else(|| {
        field_err(
            format!("{section}.exchange"),
            "the exchange to publish to (`\"\"`: the default exchange, which routes to the queue the routing key names)",
        )
    })?;
    let routing_key = match (&sink.routing_key, &sink.key) {
        (Some(_), Some(_)) => {
            return Err(field_err(
                format!("{section}.key"),
                "either a fixed `routing_key` or the `key` fields that make it, not both",
            ));
        }
        (Some(fixed), None) => RoutingKey::Fixed(fixed.clone()),
        (None, Some(fields)) => RoutingKey::Fields(key_positions(fields, keys)?),
        (None, None) => RoutingKey::Fixed(String::new()),
    };
    Ok(AmqpOutput {
        url,
        exchange,
        routing_key,
        ca_file: sink.ca_file.clone(),
    })
}

/// Window results published as JSON objects, each with its routing key.
pub(super) fn amqp_sink(
    results: crate::Stream<WindowResult<Values, Values>>,
    spec: Arc<Spec>,
    out: &AmqpOutput,
) -> Pipeline {
    let routing = out.routing_key.clone();
    let records = results.map(move |r: WindowResult<Values, Values>| {
        let key = match &routing {
            RoutingKey::Fixed(fixed) => fixed.clone(),
            RoutingKey::Fields(at) => joined_key(&r.key, at),
        };
        let mut body = String::with_capacity(96);
        render::render(&spec, r, true, &mut body);
        (key, body)
    });
    let mut sink = crate::sinks::AmqpSink::new(&out.url, &out.exchange)
        .routing_key_with(|(key, _): &(String, String)| key.clone())
        .encode_with(|(_, body): &(String, String), buf| {
            buf.extend_from_slice(body.as_bytes());
            Ok(())
        });
    if let Some(ca) = &out.ca_file {
        sink = sink.ca_file(ca);
    }
    records.sink(sink)
}

/// Dead letters published as JSON objects with the output's fixed routing
/// key.
pub(super) fn amqp_letters(
    letters: crate::Stream<crate::sources::DeadLetter>,
    out: &AmqpOutput,
) -> Pipeline {
    let key = match &out.routing_key {
        RoutingKey::Fixed(fixed) => fixed.clone(),
        RoutingKey::Fields(_) => String::new(),
    };
    let mut sink = crate::sinks::AmqpSink::new(&out.url, &out.exchange).routing_key(key);
    if let Some(ca) = &out.ca_file {
        sink = sink.ca_file(ca);
    }
    letters.sink(sink)
}
