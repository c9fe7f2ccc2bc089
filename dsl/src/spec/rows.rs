//! Rows from CSV lines, JSON lines and Nexmark bids.

use std::path::Path;
use std::sync::Arc;

use super::schema::FieldType;
use super::value::{Row, Value};
use super::Spec;
use crate::sources::{read_header, Bid};
use crate::SourceError;

/// The header of a CSV file, as field names.
pub(super) fn csv_header(source_name: &str, file: &Path) -> Result<Vec<String>, SourceError> {
    let header = read_header(source_name, file, b',')?;
    Ok(header
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect())
}

pub(super) fn split_csv(line: &[u8]) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line);
    let mut record = csv::StringRecord::new();
    reader.read_record(&mut record).map_err(|e| e.to_string())?;
    Ok(record.iter().map(String::from).collect())
}

/// The line parser for one CSV file: its header gives the columns.
type LineParser = Box<dyn Fn(&[u8], u64) -> Result<Option<Row>, String>>;

pub(super) fn csv_parser(spec: &Arc<Spec>, file: &Path) -> Result<LineParser, SourceError> {
    let header = csv_header(&format!("csv({})", file.display()), file)?;
    let spec = Arc::clone(spec);
    Ok(Box::new(move |line: &[u8], offset: u64| {
        if offset == 0 || line.iter().all(u8::is_ascii_whitespace) {
            return Ok(None); // the header row, or a blank line
        }
        csv_row(&spec, &header, line)
    }))
}

fn typed(spec: &Spec, field: &str, raw: &str) -> Result<Value, String> {
    let raw = raw.trim();
    match spec.type_of(field) {
        Some(FieldType::String) => Ok(Value::Str(raw.to_string())),
        _ if raw.is_empty() => Ok(Value::Null),
        Some(FieldType::Int) => raw
            .parse()
            .map(Value::Int)
            .map_err(|_| format!("field `{field}`: expected an integer, got `{raw}`")),
        Some(FieldType::Float) => raw
            .parse()
            .map(Value::Float)
            .map_err(|_| format!("field `{field}`: expected a number, got `{raw}`")),
        None => Ok(raw
            .parse()
            .map(Value::Int)
            .or_else(|_| raw.parse().map(Value::Float))
            .unwrap_or_else(|_| Value::Str(raw.to_string()))),
    }
}

pub(super) fn csv_row(spec: &Spec, header: &[String], line: &[u8]) -> Result<Option<Row>, String> {
    let cells = split_csv(line)?;
    if cells.len() != header.len() {
        return Err(format!(
            "{} field(s) where the header has {}",
            cells.len(),
            header.len()
        ));
    }
    let get = |field: &str| -> Result<Value, String> {
        let i = header
            .iter()
            .position(|h| h == field)
            .ok_or_else(|| format!("missing field `{field}`"))?;
        typed(spec, field, &cells[i])
    };
    build_row(spec, get)
}

pub(super) fn json_row(spec: &Spec, line: &[u8]) -> Result<Option<Row>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_slice(line).map_err(|e| e.to_string())?;
    let object = value
        .as_object()
        .ok_or_else(|| "expected a JSON object".to_string())?;
    let get = |field: &str| -> Result<Value, String> {
        let v = object
            .get(field)
            .ok_or_else(|| format!("missing field `{field}`"))?;
        let v = match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Value::Int)
                .or_else(|| n.as_f64().map(Value::Float))
                .unwrap_or(Value::Null),
            serde_json::Value::String(s) => return typed(spec, field, s),
            other => return Err(format!("field `{field}`: expected a scalar, got {other}")),
        };
        match (spec.type_of(field), &v) {
            (Some(FieldType::Int), Value::Float(_))
            | (Some(FieldType::Int | FieldType::Float), Value::Bool(_)) => {
                Err(format!("field `{field}`: expected a number, got {v:?}"))
            }
            (Some(FieldType::Float), Value::Int(i)) => Ok(Value::Float(*i as f64)),
            (Some(FieldType::String), _) => Ok(Value::Str(v.text())),
            _ => Ok(v),
        }
    };
    build_row(spec, get)
}

fn build_row(
    spec: &Spec,
    get: impl Fn(&str) -> Result<Value, String>,
) -> Result<Option<Row>, String> {
    let ts = match get(&spec.time_field)? {
        Value::Int(t) if t >= 0 => t as u64,
        other => {
            return Err(format!(
                "field `{}`: expected the event time as integer milliseconds, got {}",
                spec.time_field,
                if other == Value::Null {
                    "nothing".to_string()
                } else {
                    format!("`{}`", other.text())
                }
            ))
        }
    };
    let key = spec
        .keys
        .iter()
        .map(|k| get(k))
        .collect::<Result<Vec<_>, _>>()?;
    let mut values = Vec::with_capacity(spec.value_fields.len());
    for (field, numeric) in spec.value_fields.iter().zip(&spec.numeric) {
        let v = get(field)?;
        if *numeric && !matches!(v, Value::Int(_) | Value::Float(_) | Value::Null) {
            return Err(format!(
                "field `{field}`: expected a number to sum or average, got `{}`",
                v.text()
            ));
        }
        values.push(v);
    }
    Ok(Some(Row { ts, key, values }))
}

/// The fields of a Nexmark bid, as the spec names them, with their types.
pub(super) const BID_FIELDS: [(&str, FieldType); 7] = [
    ("auction", FieldType::Int),
    ("bidder", FieldType::Int),
    ("price", FieldType::Int),
    ("channel", FieldType::String),
    ("url", FieldType::String),
    ("date_time", FieldType::Int),
    ("extra", FieldType::String),
];

/// A field of a bid as a value (`Null` for a name that is not a bid field,
/// which the spec's checks rule out).
fn bid_value(bid: &Bid, field: &str) -> Value {
    match field {
        "auction" => Value::Int(bid.auction as i64),
        "bidder" => Value::Int(bid.bidder as i64),
        "price" => Value::Int(bid.price as i64),
        "channel" => Value::Str(bid.channel.clone()),
        "url" => Value::Str(bid.url.clone()),
        "date_time" => Value::Int(bid.date_time as i64),
        "extra" => Value::Str(bid.extra.clone()),
        _ => Value::Null,
    }
}

/// A bid as a row. The spec was checked against [`BID_FIELDS`] when parsed:
/// the time field is an integer field and summed fields are numbers.
pub(super) fn bid_row(spec: &Spec, bid: &Bid) -> Row {
    Row {
        ts: bid.date_time,
        key: spec.keys.iter().map(|k| bid_value(bid, k)).collect(),
        values: spec
            .value_fields
            .iter()
            .map(|f| bid_value(bid, f))
            .collect(),
    }
}
