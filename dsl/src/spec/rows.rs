//! Rows from CSV lines, JSON lines and Nexmark bids.

use std::path::Path;
use std::sync::Arc;

use super::Spec;
use super::schema::{FieldType, TimeFormat};
use super::value::{KeyedRow, Row, Value, Values};
use crate::SourceError;
use crate::sources::{Bid, CsvDecode, read_header};

/// The header of a CSV file, as field names.
pub(super) fn csv_header(source_name: &str, file: &Path) -> Result<Vec<String>, SourceError> {
    let header = read_header(source_name, file, b',')?;
    Ok(header
        .iter()
        .map(|h| String::from_utf8_lossy(h).into_owned())
        .collect())
}

/// The fields a row is made of, in row order, each with the type the
/// schema gives it: worked out once per spec, not per row.
pub(super) struct Fields {
    /// The event-time field, the key fields, then the aggregated fields.
    names: Vec<String>,
    types: Vec<Option<FieldType>>,
    /// Whether each aggregated field must be a number.
    numeric: Vec<bool>,
    keys: usize,
    /// How the event-time field holds the time.
    time_format: TimeFormat,
}

impl Fields {
    pub(super) fn of(spec: &Spec) -> Fields {
        let names: Vec<String> = std::iter::once(&spec.time_field)
            .chain(&spec.keys)
            .chain(&spec.value_fields)
            .cloned()
            .collect();
        let types = names.iter().map(|n| spec.type_of(n)).collect();
        Fields {
            names,
            types,
            numeric: spec.numeric.clone(),
            keys: spec.keys.len(),
            time_format: spec.time_format,
        }
    }

    /// Makes a row of the cells of every field, in [`Fields`] order:
    /// `cell(i)` is field `i`'s value; the first cell that is an error is
    /// the row's error. Cells are placed as they are made (no iterator
    /// chain: this runs once per input row).
    #[inline]
    fn row_of(
        &self,
        mut cell: impl FnMut(usize) -> Result<Value, String>,
    ) -> Result<Option<KeyedRow>, String> {
        let ts = match (self.time_format, cell(0)?) {
            (TimeFormat::Ms, Value::Int(t)) if t >= 0 => t as u64,
            (TimeFormat::S, Value::Int(t)) if t >= 0 => (t as u64).saturating_mul(1000),
            (TimeFormat::S, Value::Float(t)) if t >= 0.0 && t.is_finite() => {
                (t * 1000.0).round() as u64
            }
            (TimeFormat::Rfc3339, Value::Str(text)) => crate::timestamp::rfc3339_millis(&text)
                .map_err(|e| {
                    format!(
                        "field `{}`: expected the event time as {}, got `{text}`: {e}",
                        self.names[0],
                        self.time_format.expected()
                    )
                })?,
            (format, other) => {
                let got = match other {
                    Value::Null => "nothing".to_string(),
                    v => format!("`{}`", v.text()),
                };
                return Err(format!(
                    "field `{}`: expected the event time as {}, got {got}",
                    self.names[0],
                    format.expected()
                ));
            }
        };
        let mut key = Values::new();
        for i in 1..=self.keys {
            key.push(cell(i)?);
        }
        let mut values = Values::new();
        for (i, numeric) in (1 + self.keys..self.names.len()).zip(&self.numeric) {
            let v = cell(i)?;
            if *numeric && !matches!(v, Value::Int(_) | Value::Float(_) | Value::Null) {
                return Err(format!(
                    "field `{}`: expected a number to sum or average, got `{}`",
                    self.names[i],
                    v.text()
                ));
            }
            values.push(v);
        }
        Ok(Some((key, Row { ts, values })))
    }
}

/// An integer in plain ASCII digits with an optional sign, as
/// `str::parse::<i64>` reads it; `None` for anything else (the caller then
/// takes the general path).
#[inline]
fn ascii_int(raw: &[u8]) -> Option<i64> {
    let (negative, digits) = match raw.split_first()? {
        (b'-', rest) => (true, rest),
        (b'+', rest) => (false, rest),
        _ => (false, raw),
    };
    if digits.is_empty() || digits.len() > 18 {
        return None; // 18 digits cannot overflow; longer ones take the slow path
    }
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i64::from(d - b'0');
    }
    Some(if negative { -n } else { n })
}

/// A CSV cell of field `i` as a value of the field's type: integers in
/// plain digits directly from the bytes, everything else through
/// [`typed`].
#[inline]
fn csv_cell(fields: &Fields, i: usize, raw: &[u8]) -> Result<Value, String> {
    let ty = fields.types[i];
    if matches!(ty, None | Some(FieldType::Int))
        && let Some(n) = ascii_int(raw.trim_ascii())
    {
        return Ok(Value::Int(n));
    }
    let raw = std::str::from_utf8(raw)
        .map_err(|_| format!("field `{}`: invalid UTF-8", fields.names[i]))?;
    typed(ty, &fields.names[i], raw)
}

/// A text cell as a value of the field's type (integer, else float, else
/// text when the schema does not say).
fn typed(ty: Option<FieldType>, field: &str, raw: &str) -> Result<Value, String> {
    let raw = raw.trim();
    match ty {
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

/// Decodes the CSV rows of one file: the columns of the fields, found once
/// in the file's header.
pub(super) struct CsvRowDecoder {
    fields: Arc<Fields>,
    columns: Vec<usize>,
    width: usize,
}

impl CsvRowDecoder {
    /// The decoder for a file with header `header` (named `file`).
    pub(super) fn new(
        fields: &Arc<Fields>,
        source_name: &str,
        file: &Path,
        header: &csv::ByteRecord,
    ) -> Result<CsvRowDecoder, SourceError> {
        let names: Vec<&[u8]> = header.iter().collect();
        let mut columns = Vec::with_capacity(fields.names.len());
        for name in &fields.names {
            let column = names
                .iter()
                .position(|h| h.trim_ascii() == name.as_bytes())
                .ok_or_else(|| SourceError::BadRecord {
                    source_name: source_name.to_string(),
                    path: file.to_path_buf(),
                    line: 1,
                    offset: 0,
                    reason: format!(
                        "no column `{name}` in the header ({})",
                        String::from_utf8_lossy(header.as_slice())
                    ),
                })?;
            columns.push(column);
        }
        Ok(CsvRowDecoder {
            fields: Arc::clone(fields),
            columns,
            width: names.len(),
        })
    }
}

impl CsvDecode<KeyedRow> for CsvRowDecoder {
    fn decode(&self, row: &csv::ByteRecord) -> Result<Option<KeyedRow>, String> {
        if row.len() != self.width {
            if row.len() == 1 && row[0].trim_ascii().is_empty() {
                return Ok(None); // a blank line
            }
            return Err(format!(
                "{} field(s) where the header has {}",
                row.len(),
                self.width
            ));
        }
        let f = &self.fields;
        f.row_of(|i| csv_cell(f, i, &row[self.columns[i]]))
    }
}

/// Splits lines of CSV text (standard input) into records with one
/// `csv_core` reader, kept from line to line.
pub(super) struct LineSplitter {
    reader: csv_core::Reader,
    record: csv::ByteRecord,
    fields: Vec<u8>,
    ends: Vec<usize>,
}

impl LineSplitter {
    pub(super) fn new() -> Self {
        LineSplitter {
            reader: csv_core::Reader::new(),
            record: csv::ByteRecord::new(),
            fields: vec![0; 256],
            ends: vec![0; 16],
        }
    }

    /// The record of one line (without its line end).
    pub(super) fn split(&mut self, line: &[u8]) -> &csv::ByteRecord {
        use csv_core::ReadRecordResult;
        self.reader.reset();
        let (mut input, mut out, mut n) = (line, 0, 0);
        loop {
            let (result, read, written, ends) =
                self.reader
                    .read_record(input, &mut self.fields[out..], &mut self.ends[n..]);
            input = &input[read..];
            // Field ends count from the start of the record, across calls.
            out += written;
            n += ends;
            match result {
                // The line is consumed: an empty input next is its end.
                ReadRecordResult::InputEmpty => input = &[],
                ReadRecordResult::OutputFull => self.fields.resize(self.fields.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record | ReadRecordResult::End => break,
            }
        }
        self.record.clear();
        let mut start = 0;
        for &end in &self.ends[..n] {
            self.record.push_field(&self.fields[start..end]);
            start = end;
        }
        &self.record
    }
}

/// Decodes a JSON object line: only the fields a row needs are read, by a
/// serde visitor, without building the whole object.
pub(super) fn json_row(fields: &Fields, line: &[u8]) -> Result<Option<KeyedRow>, String> {
    if line.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let mut de = serde_json::Deserializer::from_slice(line);
    let mut raw = serde::de::DeserializeSeed::deserialize(PickFields(fields), &mut de)
        .map_err(|e| e.to_string())?;
    de.end().map_err(|e| e.to_string())?;
    fields.row_of(|i| json_cell(fields, i, raw[i].take()))
}

/// A JSON scalar as read, before the schema's type is applied.
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

/// The value of field `i` from its JSON scalar, typed as the schema says.
fn json_cell(fields: &Fields, i: usize, cell: Option<Scalar>) -> Result<Value, String> {
    let name = &fields.names[i];
    let ty = fields.types[i];
    let v = match cell.ok_or_else(|| format!("missing field `{name}`"))? {
        Scalar::Str(s) => return typed(ty, name, &s),
        Scalar::Null => Value::Null,
        Scalar::Bool(b) => Value::Bool(b),
        Scalar::Int(i) => Value::Int(i),
        Scalar::Float(f) => Value::Float(f),
    };
    match (ty, &v) {
        (Some(FieldType::Int), Value::Float(_))
        | (Some(FieldType::Int | FieldType::Float), Value::Bool(_)) => {
            Err(format!("field `{name}`: expected a number, got {v:?}"))
        }
        (Some(FieldType::Float), Value::Int(i)) => Ok(Value::Float(*i as f64)),
        (Some(FieldType::String), _) => Ok(Value::Str(v.text())),
        _ => Ok(v),
    }
}

/// Reads a JSON object, keeping the scalar of each field in [`Fields`].
struct PickFields<'a>(&'a Fields);

impl<'de> serde::de::DeserializeSeed<'de> for PickFields<'_> {
    type Value = Vec<Option<Scalar>>;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> serde::de::Visitor<'de> for PickFields<'_> {
    type Value = Vec<Option<Scalar>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let names = &self.0.names;
        let mut cells: Vec<Option<Scalar>> = (0..names.len()).map(|_| None).collect();
        while let Some(key) = map.next_key::<FieldName<'de>>()? {
            let mut slots = names.iter().enumerate().filter(|(_, n)| **n == *key.0);
            let Some((first, _)) = slots.next() else {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            };
            let value: ScalarOf = map.next_value()?;
            for (i, _) in slots {
                cells[i] = Some(value.0.clone_scalar());
            }
            cells[first] = Some(value.0);
        }
        Ok(cells)
    }
}

impl Scalar {
    fn clone_scalar(&self) -> Scalar {
        match self {
            Scalar::Null => Scalar::Null,
            Scalar::Bool(b) => Scalar::Bool(*b),
            Scalar::Int(i) => Scalar::Int(*i),
            Scalar::Float(f) => Scalar::Float(*f),
            Scalar::Str(s) => Scalar::Str(s.clone()),
        }
    }
}

/// An object key, borrowed from the line when it has no escapes.
struct FieldName<'de>(std::borrow::Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for FieldName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = FieldName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(FieldName(std::borrow::Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(FieldName(std::borrow::Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A JSON scalar; objects and arrays are errors.
struct ScalarOf(Scalar);

impl<'de> serde::Deserialize<'de> for ScalarOf {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ScalarOf;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number, a string, a boolean or null")
            }
            fn visit_unit<E>(self) -> Result<ScalarOf, E> {
                Ok(ScalarOf(Scalar::Null))
            }
            fn visit_none<E>(self) -> Result<ScalarOf, E> {
                Ok(ScalarOf(Scalar::Null))
            }
            fn visit_bool<E>(self, v: bool) -> Result<ScalarOf, E> {
                Ok(ScalarOf(Scalar::Bool(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<ScalarOf, E> {
                Ok(ScalarOf(Scalar::Int(v)))
            }
            fn visit_u64<E>(self, v: u64) -> Result<ScalarOf, E> {
                Ok(ScalarOf(
                    i64::try_from(v).map_or(Scalar::Float(v as f64), Scalar::Int),
                ))
            }
            fn visit_f64<E>(self, v: f64) -> Result<ScalarOf, E> {
                Ok(ScalarOf(Scalar::Float(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<ScalarOf, E> {
                Ok(ScalarOf(Scalar::Str(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<ScalarOf, E> {
                Ok(ScalarOf(Scalar::Str(v)))
            }
        }
        d.deserialize_any(V)
    }
}

/// Reads one field of a bid.
type BidField = fn(&Bid) -> Value;

/// The fields of a Nexmark bid, as the spec names them, with their types
/// and how each is read.
pub(super) const BID_FIELDS: [(&str, FieldType, BidField); 7] = [
    ("auction", FieldType::Int, |b| Value::Int(b.auction as i64)),
    ("bidder", FieldType::Int, |b| Value::Int(b.bidder as i64)),
    ("price", FieldType::Int, |b| Value::Int(b.price as i64)),
    ("channel", FieldType::String, |b| {
        Value::Str(b.channel.to_string())
    }),
    ("url", FieldType::String, |b| Value::Str(b.url.to_string())),
    ("date_time", FieldType::Int, |b| {
        Value::Int(b.date_time as i64)
    }),
    ("extra", FieldType::String, |b| {
        Value::Str(b.extra.to_string())
    }),
];

/// Makes rows of bids: the reader of each field a row needs, looked up once
/// per spec rather than by name per bid.
pub(super) struct BidRows {
    /// The event-time field, the key fields, then the aggregated fields.
    fields: Vec<BidField>,
    keys: usize,
}

impl BidRows {
    /// The spec was checked against [`BID_FIELDS`] when parsed: every field
    /// is a bid field and the event time an integer field.
    pub(super) fn new(fields: &Fields) -> BidRows {
        let reader = |name: &String| {
            BID_FIELDS
                .iter()
                .find(|(f, _, _)| f == name)
                .map_or((|_| Value::Null) as BidField, |(_, _, read)| *read)
        };
        BidRows {
            fields: fields.names.iter().map(reader).collect(),
            keys: fields.keys,
        }
    }

    /// A bid as a row.
    pub(super) fn row(&self, bid: &Bid) -> KeyedRow {
        let mut cells = self.fields.iter().map(|read| read(bid));
        let ts = match cells.next() {
            Some(Value::Int(t)) => t as u64,
            _ => 0, // ruled out by the spec's checks
        };
        let key = cells.by_ref().take(self.keys).collect();
        let values = cells.collect();
        (key, Row { ts, values })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bid row reads the fields the spec names, the event time included.
    #[test]
    fn bid_rows_read_the_fields_the_spec_names() {
        let spec = Spec::parse(
            r#"
            name = "t"
            [source]
            type = "nexmark"
            events = 10
            event_time = { field = "bidder", max_out_of_orderness_ms = 0 }
            [window]
            key = ["channel", "auction"]
            type = "tumbling"
            size_ms = 10
            [aggregate]
            total = "sum(price)"
            top = "max(url)"
            [sink]
            type = "stdout"
            "#,
        )
        .unwrap();
        let bid = Bid {
            auction: 7,
            bidder: 1234,
            price: 99,
            channel: "web".into(),
            url: "u".into(),
            date_time: 5,
            extra: "".into(),
        };
        let (key, row) = BidRows::new(&Fields::of(&spec)).row(&bid);
        assert_eq!(row.ts, 1234);
        assert_eq!(key.to_vec(), vec![Value::Str("web".into()), Value::Int(7)]);
        assert_eq!(
            row.values.to_vec(),
            vec![Value::Int(99), Value::Str("u".into())]
        );
    }

    proptest::proptest! {
        /// A CSV cell of an untyped field is the value the general path
        /// (`typed`) makes of it, whatever the digits, signs and spaces.
        #[test]
        fn csv_cells_read_integers_as_the_general_path_does(
            raw in "[ ]?[+-]?[0-9]{0,21}(\\.[0-9])?[ ]?|[+-]?[0-9a-z ]{0,4}"
        ) {
            let spec = Spec::parse(
                r#"
                name = "t"
                [source]
                type = "csv"
                path = "x.csv"
                event_time = { field = "ts", max_out_of_orderness_ms = 0 }
                [window]
                key = "k"
                type = "tumbling"
                size_ms = 10
                [aggregate]
                n = "count(*)"
                [sink]
                type = "stdout"
                "#,
            )
            .unwrap();
            let fields = Fields::of(&spec);
            proptest::prop_assert_eq!(
                csv_cell(&fields, 1, raw.as_bytes()),
                typed(None, "k", &raw)
            );
        }
    }

    /// `LineSplitter` splits as the csv crate does, with quotes, escaped
    /// quotes, empty fields, and lines longer than its first buffers.
    #[test]
    fn line_splitter_agrees_with_the_csv_crate() {
        let long = "x".repeat(1000);
        let many = (0..40).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let lines = [
            "a,b,c".to_string(),
            r#""quoted, with comma",2,"say ""hi""""#.to_string(),
            ",,".to_string(),
            format!("{long},{long},\"{long}\""),
            many,
        ];
        let mut splitter = LineSplitter::new();
        for line in &lines {
            let mut reader = csv::ReaderBuilder::new()
                .has_headers(false)
                .from_reader(line.as_bytes());
            let mut expected = csv::ByteRecord::new();
            reader.read_byte_record(&mut expected).unwrap();
            let got = splitter.split(line.as_bytes());
            assert_eq!(
                got.iter().collect::<Vec<_>>(),
                expected.iter().collect::<Vec<_>>(),
                "{line}"
            );
        }
    }
}
