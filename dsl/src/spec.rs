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

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::aggregate::Aggregator;
use crate::sources::{Bid, LineSource, Mapped, Nexmark, ParsedStdin};
use crate::{
    Pipeline, Session, Sliding, SourceError, StdoutLines, TextFile, Tumbling, Watermark,
    WindowResult, WindowSpec,
};

/// A mistake in a spec: names the field and says what is expected.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The file cannot be read.
    #[error("cannot read spec {}: {error}", path.display())]
    Read {
        /// The spec file.
        path: PathBuf,
        /// The I/O error.
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    name: String,
    source: SourceSection,
    window: WindowSection,
    aggregate: toml::Table,
    sink: SinkSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SourceSection {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
    format: Option<String>,
    events: Option<u64>,
    event_time: EventTimeSection,
    #[serde(default)]
    schema: toml::Table,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventTimeSection {
    field: String,
    max_out_of_orderness_ms: u64,
    idle_timeout_ms: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Keys {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowSection {
    key: Keys,
    #[serde(rename = "type")]
    kind: String,
    size_ms: Option<u64>,
    slide_ms: Option<u64>,
    gap_ms: Option<u64>,
    #[serde(default)]
    allowed_lateness_ms: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SinkSection {
    #[serde(rename = "type")]
    kind: String,
    path: Option<PathBuf>,
}

/// A dynamic value of a row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    /// Missing or empty.
    Null,
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text.
    Str(String),
    /// A boolean.
    Bool(bool),
}

impl Value {
    fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// A total order: null < booleans < numbers < text.
    fn total_cmp(&self, other: &Value) -> Ordering {
        fn rank(v: &Value) -> u8 {
            match v {
                Value::Null => 0,
                Value::Bool(_) => 1,
                Value::Int(_) | Value::Float(_) => 2,
                Value::Str(_) => 3,
            }
        }
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (a, b) if rank(a) == 2 && rank(b) == 2 => a
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b.as_f64().unwrap_or(0.0)),
            (a, b) => rank(a).cmp(&rank(b)),
        }
    }

    fn json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Int(i) => {
                let _ = write!(out, "{i}");
            }
            Value::Float(f) if f.is_finite() => {
                let _ = write!(out, "{}", serde_json::Number::from_f64(*f).expect("finite"));
            }
            Value::Float(_) => out.push_str("null"),
            Value::Str(s) => out.push_str(&serde_json::to_string(s).expect("strings serialize")),
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
        }
    }

    fn text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("{f:?}"),
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
        }
    }
}

impl Eq for Value {}

impl std::hash::Hash for Value {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => 0u8.hash(state),
            Value::Int(i) => (1u8, i).hash(state),
            Value::Float(f) => (2u8, f.to_bits()).hash(state),
            Value::Str(s) => (3u8, s).hash(state),
            Value::Bool(b) => (4u8, b).hash(state),
        }
    }
}

/// A row of the spec runner: its event time, key values and the values the
/// aggregates read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    ts: u64,
    key: Vec<Value>,
    values: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Func {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Type {
    Auto,
    Int,
    Float,
    Str,
}

/// One aggregate of the spec: its function and which row value it reads.
#[derive(Debug, Clone)]
struct AggSpec {
    name: String,
    func: Func,
    /// Index into `Row::values`; `None` for `count(*)`.
    column: Option<usize>,
}

/// A parsed, checked spec.
#[derive(Debug, Clone)]
pub struct Spec {
    name: String,
    nexmark_events: Option<u64>,
    source_kind: String,
    path: Option<PathBuf>,
    stdin_format: String,
    time_field: String,
    bound: u64,
    idle_timeout: Option<u64>,
    keys: Vec<String>,
    /// Fields the aggregates read, in `Row::values` order.
    value_fields: Vec<String>,
    /// Whether each value field must be a number (sum and avg read it).
    numeric: Vec<bool>,
    types: Vec<(String, Type)>,
    window: WindowSpec,
    lateness: u64,
    aggs: Vec<AggSpec>,
    sink_kind: String,
    sink_path: Option<PathBuf>,
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
        let (path, stdin_format) = match src.kind.as_str() {
            "csv" | "jsonl" => {
                let path = src
                    .path
                    .clone()
                    .ok_or_else(|| field_err("source.path", "the input file, directory or glob"))?;
                (Some(path), src.kind.clone())
            }
            "stdin" => {
                let format = src.format.clone().unwrap_or_else(|| "jsonl".into());
                if format != "jsonl" && format != "csv" {
                    return Err(field_err("source.format", "`jsonl` or `csv`"));
                }
                (None, format)
            }
            "nexmark" => (None, String::new()),
            other => {
                return Err(field_err(
                    "source.type",
                    format!("`csv`, `jsonl`, `stdin` or `nexmark`, got `{other}`"),
                ))
            }
        };
        let nexmark_events = match (src.kind.as_str(), src.events) {
            ("nexmark", Some(n)) => Some(n),
            ("nexmark", None) => {
                return Err(field_err(
                    "source.events",
                    "the number of Nexmark events to generate",
                ))
            }
            (_, Some(_)) => {
                return Err(field_err(
                    "source.events",
                    "no `events` except for `type = \"nexmark\"`",
                ))
            }
            _ => None,
        };
        let mut types = Vec::new();
        for (field, ty) in &src.schema {
            let ty = match ty.as_str() {
                Some("int") => Type::Int,
                Some("float") => Type::Float,
                Some("string") => Type::Str,
                _ => {
                    return Err(field_err(
                        format!("source.schema.{field}"),
                        "`int`, `float` or `string`",
                    ))
                }
            };
            types.push((field.clone(), ty));
        }

        let win = file.window;
        let keys = match win.key {
            Keys::One(k) => vec![k],
            Keys::Many(ks) => ks,
        };
        if keys.is_empty() {
            return Err(field_err("window.key", "one or more key fields"));
        }
        let positive = |v: Option<u64>, field: &str, what: &str| {
            v.filter(|v| *v > 0).ok_or_else(|| {
                field_err(
                    format!("window.{field}"),
                    format!("{what} in milliseconds, above 0"),
                )
            })
        };
        let window = match win.kind.as_str() {
            "tumbling" => Tumbling::of(Duration::from_millis(positive(
                win.size_ms,
                "size_ms",
                "the window size",
            )?)),
            "sliding" => {
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
            "session" => Session::with_gap(Duration::from_millis(positive(
                win.gap_ms,
                "gap_ms",
                "the session gap",
            )?)),
            other => {
                return Err(field_err(
                    "window.type",
                    format!("`tumbling`, `sliding` or `session`, got `{other}`"),
                ))
            }
        };

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
                    ))
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

        let sink = file.sink;
        let sink_path = match sink.kind.as_str() {
            "jsonl" | "csv" => Some(
                sink.path
                    .ok_or_else(|| field_err("sink.path", "the output file"))?,
            ),
            "stdout" => None,
            other => {
                return Err(field_err(
                    "sink.type",
                    format!("`jsonl`, `csv` or `stdout`, got `{other}`"),
                ))
            }
        };
        let spec = Spec {
            name: file.name,
            nexmark_events,
            source_kind: src.kind,
            path,
            stdin_format,
            time_field: src.event_time.field,
            bound: src.event_time.max_out_of_orderness_ms,
            idle_timeout: src.event_time.idle_timeout_ms,
            keys,
            value_fields,
            numeric,
            types,
            window,
            lateness: win.allowed_lateness_ms,
            aggs,
            sink_kind: sink.kind,
            sink_path,
        };
        if spec.nexmark_events.is_some() {
            let fields: Vec<String> = BID_FIELDS.iter().map(|f| f.to_string()).collect();
            spec.check_fields(&fields, "Nexmark bids")?;
        }
        Ok(spec)
    }

    fn type_of(&self, field: &str) -> Type {
        self.types
            .iter()
            .find(|(f, _)| f == field)
            .map_or(Type::Auto, |(_, t)| *t)
    }

    /// The output header: key fields, window bounds, aggregate names.
    fn header(&self) -> Vec<String> {
        let mut names = self.keys.clone();
        names.push("window_start".into());
        names.push("window_end".into());
        names.extend(self.aggs.iter().map(|a| a.name.clone()));
        names
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
        let rows = match (self.source_kind.as_str(), &self.path) {
            ("nexmark", _) => {
                let s = Arc::clone(&spec);
                let events = self.nexmark_events.unwrap_or(0);
                p.source(Mapped::new(Nexmark::bids(events), move |bid: Bid| {
                    bid_row(&s, &bid)
                }))
            }
            ("csv", Some(path)) => {
                self.check_csv_header(path)?;
                let s = Arc::clone(&spec);
                p.source(LineSource::new(path, "csv", move |file: &Path| {
                    csv_parser(&s, file)
                }))
            }
            ("jsonl", Some(path)) => {
                let s = Arc::clone(&spec);
                p.source(LineSource::new(path, "jsonl", move |_: &Path| {
                    let s = Arc::clone(&s);
                    Ok(move |line: &[u8], _| json_row(&s, line))
                }))
            }
            _ => {
                let s = Arc::clone(&spec);
                let csv = self.stdin_format == "csv";
                let header: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
                let parse = move |line: &str, number: u64| {
                    if line.trim().is_empty() {
                        return Ok(None);
                    }
                    if !csv {
                        return json_row(&s, line.as_bytes());
                    }
                    if number == 1 {
                        let names = split_csv(line.as_bytes())?;
                        s.check_fields(&names, "the header on standard input")
                            .map_err(|e| e.to_string())?;
                        let _ = header.set(names);
                        return Ok(None);
                    }
                    let names = header.get().ok_or("no CSV header line")?;
                    csv_row(&s, names, line.as_bytes())
                };
                let format = if csv { "csv" } else { "jsonl" };
                p.source(ParsedStdin::new(format, Arc::new(parse)))
            }
        };
        let mut watermark = Watermark::bounded(Duration::from_millis(self.bound));
        if let Some(idle) = self.idle_timeout {
            watermark = watermark.idle_timeout(Duration::from_millis(idle));
        }
        let windowed = rows
            .event_time(|r: &Row| r.ts, watermark)
            .key_by(|r: &Row| r.key.clone())
            .window(self.window)
            .allowed_lateness(Duration::from_millis(self.lateness));
        let agg = SpecAggregator(Arc::clone(&spec));
        let json = self.sink_kind != "csv";
        let s = Arc::clone(&spec);
        let lines = windowed
            .aggregate(agg)
            .map(move |r: WindowResult<Vec<Value>, Vec<Value>>| render(&s, r, json));
        let header = self.header().join(",");
        Ok(match (self.sink_kind.as_str(), &self.sink_path) {
            ("csv", Some(path)) => lines.sink(TextFile::to(path).header(header)),
            (_, Some(path)) => lines.sink(TextFile::to(path)),
            _ => lines.sink(StdoutLines::new()),
        })
    }

    fn check_csv_header(&self, path: &Path) -> Result<(), SpecError> {
        let first = first_file(path).ok_or_else(|| {
            field_err(
                "source.path",
                format!(
                    "an existing file, directory or glob, got `{}`",
                    path.display()
                ),
            )
        })?;
        let header = read_csv_header(&first).map_err(|e| {
            field_err(
                "source.path",
                format!("a CSV file with a header row: {}: {e}", first.display()),
            )
        })?;
        self.check_fields(&header, &first.display().to_string())
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
        Ok(())
    }
}

fn first_file(path: &Path) -> Option<PathBuf> {
    if path.is_file() {
        return Some(path.to_path_buf());
    }
    let mut files: Vec<PathBuf> = if path.is_dir() {
        std::fs::read_dir(path)
            .ok()?
            .filter_map(|e| Some(e.ok()?.path()))
            .collect()
    } else {
        glob::glob(&path.to_string_lossy())
            .ok()?
            .filter_map(Result::ok)
            .collect()
    };
    files.retain(|f| {
        f.is_file()
            && !f
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(['.', '_']))
    });
    files.sort();
    files.into_iter().next()
}

fn read_csv_header(path: &Path) -> Result<Vec<String>, String> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| e.to_string())?;
    Ok(reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(String::from)
        .collect())
}

fn split_csv(line: &[u8]) -> Result<Vec<String>, String> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(line);
    let mut record = csv::StringRecord::new();
    reader.read_record(&mut record).map_err(|e| e.to_string())?;
    Ok(record.iter().map(String::from).collect())
}

/// The line parser for one CSV file: its header gives the columns.
type LineParser = Box<dyn Fn(&[u8], u64) -> Result<Option<Row>, String>>;

fn csv_parser(spec: &Arc<Spec>, file: &Path) -> Result<LineParser, SourceError> {
    let header = read_csv_header(file).map_err(|reason| SourceError::BadRecord {
        source_name: format!("csv({})", file.display()),
        path: file.to_path_buf(),
        line: 1,
        offset: 0,
        reason: format!("cannot read the header row: {reason}"),
    })?;
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
        Type::Str => Ok(Value::Str(raw.to_string())),
        _ if raw.is_empty() => Ok(Value::Null),
        Type::Int => raw
            .parse()
            .map(Value::Int)
            .map_err(|_| format!("field `{field}`: expected an integer, got `{raw}`")),
        Type::Float => raw
            .parse()
            .map(Value::Float)
            .map_err(|_| format!("field `{field}`: expected a number, got `{raw}`")),
        Type::Auto => Ok(raw
            .parse()
            .map(Value::Int)
            .or_else(|_| raw.parse().map(Value::Float))
            .unwrap_or_else(|_| Value::Str(raw.to_string()))),
    }
}

fn csv_row(spec: &Spec, header: &[String], line: &[u8]) -> Result<Option<Row>, String> {
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

fn json_row(spec: &Spec, line: &[u8]) -> Result<Option<Row>, String> {
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
            (Type::Int, Value::Float(_)) | (Type::Int | Type::Float, Value::Bool(_)) => {
                Err(format!("field `{field}`: expected a number, got {v:?}"))
            }
            (Type::Float, Value::Int(i)) => Ok(Value::Float(*i as f64)),
            (Type::Str, _) => Ok(Value::Str(v.text())),
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

/// The fields of a Nexmark bid, as the spec names them.
const BID_FIELDS: [&str; 7] = [
    "auction",
    "bidder",
    "price",
    "channel",
    "url",
    "date_time",
    "extra",
];

fn bid_row(spec: &Spec, bid: &Bid) -> Row {
    let get = |field: &str| -> Result<Value, String> {
        Ok(match field {
            "auction" => Value::Int(bid.auction as i64),
            "bidder" => Value::Int(bid.bidder as i64),
            "price" => Value::Int(bid.price as i64),
            "channel" => Value::Str(bid.channel.clone()),
            "url" => Value::Str(bid.url.clone()),
            "date_time" => Value::Int(bid.date_time as i64),
            "extra" => Value::Str(bid.extra.clone()),
            other => return Err(format!("no field `{other}` in a bid")),
        })
    };
    build_row(spec, get)
        .ok()
        .flatten()
        .expect("bid fields are checked against the spec when it is parsed")
}

/// The accumulator of one aggregate.
#[derive(Debug, Clone)]
enum Cell {
    Count(u64),
    SumInt(i64),
    SumFloat(f64),
    Extreme(Option<Value>),
    Avg(f64, u64),
}

struct SpecAggregator(Arc<Spec>);

impl Aggregator<Row> for SpecAggregator {
    type Acc = Vec<Cell>;
    type Out = Vec<Value>;

    fn init(&self) -> Vec<Cell> {
        self.0
            .aggs
            .iter()
            .map(|a| match a.func {
                Func::Count => Cell::Count(0),
                Func::Sum => Cell::SumInt(0),
                Func::Min | Func::Max => Cell::Extreme(None),
                Func::Avg => Cell::Avg(0.0, 0),
            })
            .collect()
    }

    fn add(&self, acc: &mut Vec<Cell>, row: &Row) {
        for (cell, agg) in acc.iter_mut().zip(&self.0.aggs) {
            let v = agg.column.map(|c| &row.values[c]);
            match (cell, v) {
                (Cell::Count(n), _) => *n += 1,
                (_, Some(Value::Null)) => {}
                (c @ Cell::SumInt(_), Some(Value::Float(f))) => {
                    let Cell::SumInt(i) = *c else { unreachable!() };
                    *c = Cell::SumFloat(i as f64 + f);
                }
                (c @ Cell::SumInt(_), Some(Value::Int(i))) => add_int(c, *i),
                (Cell::SumFloat(s), Some(v)) => *s += v.as_f64().unwrap_or(0.0),
                (Cell::Avg(s, n), Some(v)) => {
                    *s += v.as_f64().unwrap_or(0.0);
                    *n += 1;
                }
                (Cell::Extreme(best), Some(v)) => keep_extreme(agg.func, best, v),
                _ => {}
            }
        }
    }

    fn merge(&self, acc: &mut Vec<Cell>, other: &Vec<Cell>) {
        for ((cell, o), agg) in acc.iter_mut().zip(other).zip(&self.0.aggs) {
            match (cell, o) {
                (Cell::Count(a), Cell::Count(b)) => *a += b,
                (c @ Cell::SumInt(_), Cell::SumInt(b)) => add_int(c, *b),
                (c @ (Cell::SumInt(_) | Cell::SumFloat(_)), o) => {
                    let total = sum_of(c) + sum_of(o);
                    *c = Cell::SumFloat(total);
                }
                (Cell::Avg(s, n), Cell::Avg(s2, n2)) => {
                    *s += s2;
                    *n += n2;
                }
                (Cell::Extreme(best), Cell::Extreme(Some(v))) => keep_extreme(agg.func, best, v),
                _ => {}
            }
        }
    }

    fn finish(&self, acc: Vec<Cell>) -> Vec<Value> {
        acc.into_iter()
            .map(|c| match c {
                Cell::Count(n) => Value::Int(n as i64),
                Cell::SumInt(s) => Value::Int(s),
                Cell::SumFloat(s) => Value::Float(s),
                Cell::Extreme(v) => v.unwrap_or(Value::Null),
                Cell::Avg(_, 0) => Value::Null,
                Cell::Avg(s, n) => Value::Float(s / n as f64),
            })
            .collect()
    }
}

/// Keeps `v` in `best` if it is the new minimum (or maximum).
fn keep_extreme(func: Func, best: &mut Option<Value>, v: &Value) {
    let better = match best {
        None => true,
        Some(b) if func == Func::Min => v.total_cmp(b) == Ordering::Less,
        Some(b) => v.total_cmp(b) == Ordering::Greater,
    };
    if better {
        *best = Some(v.clone());
    }
}

/// Adds an integer to an integer sum, turning it into a float sum rather
/// than overflowing.
fn add_int(cell: &mut Cell, i: i64) {
    if let Cell::SumInt(s) = cell {
        *cell = match s.checked_add(i) {
            Some(total) => Cell::SumInt(total),
            None => Cell::SumFloat(*s as f64 + i as f64),
        };
    }
}

fn sum_of(c: &Cell) -> f64 {
    match c {
        Cell::SumInt(i) => *i as f64,
        Cell::SumFloat(f) => *f,
        _ => 0.0,
    }
}

/// One result as a JSON object line or a CSV line, fields in spec order.
fn render(spec: &Spec, r: WindowResult<Vec<Value>, Vec<Value>>, json: bool) -> String {
    let values = r
        .key
        .into_iter()
        .chain([
            Value::Int(r.window_start as i64),
            Value::Int(r.window_end as i64),
        ])
        .chain(r.value);
    let mut out = String::new();
    if json {
        out.push('{');
        for (i, (name, v)) in spec.header().iter().zip(values).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(name).expect("strings serialize"));
            out.push(':');
            v.json(&mut out);
        }
        out.push('}');
    } else {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        let cells: Vec<String> = values.map(|v| v.text()).collect();
        let _ = w.write_record(&cells);
        out = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
        out.truncate(out.trim_end_matches(['\n', '\r']).len());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(aggregate: &str) -> Arc<Spec> {
        let text = format!(
            r#"
            name = "t"
            [source]
            type = "nexmark"
            events = 10
            event_time = {{ field = "date_time", max_out_of_orderness_ms = 0 }}
            [window]
            key = "auction"
            type = "tumbling"
            size_ms = 10
            [aggregate]
            {aggregate}
            [sink]
            type = "stdout"
            "#
        );
        Arc::new(Spec::parse(&text).unwrap())
    }

    fn row(values: Vec<Value>) -> Row {
        Row {
            ts: 0,
            key: vec![],
            values,
        }
    }

    #[test]
    fn sums_stay_integers_until_a_float_or_an_overflow() {
        let agg = SpecAggregator(spec(r#"s = "sum(price)""#));
        let mut acc = agg.init();
        agg.add(&mut acc, &row(vec![Value::Int(2)]));
        agg.add(&mut acc, &row(vec![Value::Null]));
        agg.add(&mut acc, &row(vec![Value::Int(3)]));
        assert_eq!(agg.finish(acc.clone()), vec![Value::Int(5)]);
        agg.add(&mut acc, &row(vec![Value::Float(0.5)]));
        assert_eq!(agg.finish(acc), vec![Value::Float(5.5)]);

        let mut acc = agg.init();
        agg.add(&mut acc, &row(vec![Value::Int(i64::MAX)]));
        agg.add(&mut acc, &row(vec![Value::Int(1)]));
        assert_eq!(agg.finish(acc), vec![Value::Float(i64::MAX as f64 + 1.0)]);
    }

    #[test]
    fn min_max_avg_count_merge_like_one_pass() {
        let agg = SpecAggregator(spec(
            r#"lo = "min(price)"
            hi = "max(price)"
            mean = "avg(price)"
            n = "count(*)""#,
        ));
        let values = [
            Value::Int(4),
            Value::Float(-1.5),
            Value::Int(10),
            Value::Null,
        ];
        let mut one = agg.init();
        for v in &values {
            agg.add(&mut one, &row(vec![v.clone()]));
        }
        let (mut left, mut right) = (agg.init(), agg.init());
        for v in &values[..2] {
            agg.add(&mut left, &row(vec![v.clone()]));
        }
        for v in &values[2..] {
            agg.add(&mut right, &row(vec![v.clone()]));
        }
        agg.merge(&mut left, &right);
        let expected = vec![
            Value::Float(-1.5),
            Value::Int(10),
            Value::Float(12.5 / 3.0),
            Value::Int(4),
        ];
        assert_eq!(agg.finish(one), expected);
        assert_eq!(agg.finish(left), expected);
    }
}
