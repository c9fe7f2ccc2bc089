use std::io::Write;

use super::{ByRef, Lines, Sink, SinkContext, SinkWriter, WriteRefs};
use crate::error::SinkError;
use crate::{BoxError, Data};

/// Writes records to standard output as JSON lines. Each worker writes the
/// records it holds, a whole batch at a time, so lines never interleave.
///
/// # Examples
///
/// ```
/// use weir::prelude::*;
///
/// let summary = Pipeline::new("p")
///     .source(Iter::new(vec![1, 2]))
///     .sink(Stdout::jsonl())
///     .run(Cluster::threads(1).quiet(true))
///     .unwrap();
/// assert_eq!(summary.sinks, vec![("stdout(jsonl)".to_string(), 2)]);
/// ```
pub struct Stdout {
    _private: (),
}

impl Stdout {
    /// One JSON value per line.
    pub fn jsonl() -> Self {
        Stdout { _private: () }
    }
}

impl<T: Data> Sink<T> for Stdout {
    fn describe(&self) -> String {
        "stdout(jsonl)".to_string()
    }

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError> {
        Ok(Box::new(ByRef(StdoutWriter {
            name: ctx.name().to_string(),
            buffer: Vec::with_capacity(1 << 16),
        })))
    }
}

struct StdoutWriter {
    name: String,
    buffer: Vec<u8>,
}

impl StdoutWriter {
    fn error(&self, error: std::io::Error) -> BoxError {
        Box::new(SinkError {
            sink: self.name.clone(),
            path: "<stdout>".into(),
            error,
        })
    }
}

impl<T: Data> WriteRefs<T> for StdoutWriter {
    fn write_refs<'a>(&mut self, records: impl Iterator<Item = &'a T>) -> Result<(), BoxError>
    where
        T: 'a,
    {
        self.buffer.clear();
        for record in records {
            serde_json::to_writer(&mut self.buffer, record).map_err(|e| self.error(e.into()))?;
            self.buffer.push(b'\n');
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&self.buffer).map_err(|e| self.error(e))
    }

    fn close(&mut self) -> Result<(), BoxError> {
        std::io::stdout().lock().flush().map_err(|e| self.error(e))
    }
}

/// Writes `String` records to standard output as they are, one per line,
/// after an optional header line written by worker 0.
///
/// # Examples
///
/// ```
/// use weir::prelude::*;
///
/// let summary = Pipeline::new("p")
///     .source(Iter::new(vec!["plain text".to_string()]))
///     .sink(StdoutLines::new())
///     .run(Cluster::threads(1).quiet(true))
///     .unwrap();
/// assert_eq!(summary.sinks, vec![("stdout(lines)".to_string(), 1)]);
/// ```
#[derive(Default)]
pub struct StdoutLines {
    header: Option<String>,
}

impl StdoutLines {
    /// Lines as they are.
    pub fn new() -> Self {
        StdoutLines { header: None }
    }

    /// Prints `line` first.
    pub fn header(mut self, line: impl Into<String>) -> Self {
        self.header = Some(line.into());
        self
    }
}

impl Sink<String> for StdoutLines {
    fn describe(&self) -> String {
        "stdout(lines)".to_string()
    }

    fn placement(&self) -> super::Placement {
        // One writer, so that the header comes first.
        if self.header.is_some() {
            super::Placement::WorkerZero
        } else {
            super::Placement::EveryWorker
        }
    }

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<String>>, SinkError> {
        Ok(Box::new(ByRef(self.open_lines(ctx)?)))
    }
}

impl StdoutLines {
    /// The writer, with the header printed.
    fn open_lines(&self, ctx: &SinkContext) -> Result<LinesWriter, SinkError> {
        let mut writer = StdoutWriter {
            name: ctx.name().to_string(),
            buffer: Vec::with_capacity(1 << 16),
        };
        if let Some(header) = &self.header {
            let mut out = std::io::stdout().lock();
            writeln!(out, "{header}").map_err(|e| SinkError {
                sink: writer.name.clone(),
                path: "<stdout>".into(),
                error: e,
            })?;
        }
        writer.buffer.clear();
        Ok(LinesWriter(writer))
    }
}

/// Prints each [`Lines`] as it is, counting its lines.
impl Sink<Lines> for StdoutLines {
    fn describe(&self) -> String {
        <Self as Sink<String>>::describe(self)
    }

    fn placement(&self) -> super::Placement {
        <Self as Sink<String>>::placement(self)
    }

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<Lines>>, SinkError> {
        let LinesWriter(writer) = self.open_lines(ctx)?;
        Ok(Box::new(ChunkWriter { writer, written: 0 }))
    }
}

struct ChunkWriter {
    writer: StdoutWriter,
    written: u64,
}

impl SinkWriter<Lines> for ChunkWriter {
    fn write(&mut self, batch: &mut Vec<Lines>) -> Result<(), BoxError> {
        self.written = batch.iter().map(|l| l.count).sum();
        let mut out = std::io::stdout().lock();
        for lines in batch.drain(..) {
            out.write_all(lines.text.as_bytes())
                .map_err(|e| self.writer.error(e))?;
        }
        Ok(())
    }

    fn records_written(&self, _batch_len: usize) -> u64 {
        self.written
    }

    fn close(&mut self) -> Result<(), BoxError> {
        std::io::stdout()
            .lock()
            .flush()
            .map_err(|e| self.writer.error(e))
    }
}

struct LinesWriter(StdoutWriter);

impl WriteRefs<String> for LinesWriter {
    fn write_refs<'a>(&mut self, lines: impl Iterator<Item = &'a String>) -> Result<(), BoxError> {
        let w = &mut self.0;
        w.buffer.clear();
        for line in lines {
            w.buffer.extend_from_slice(line.as_bytes());
            w.buffer.push(b'\n');
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&w.buffer).map_err(|e| w.error(e))
    }

    fn close(&mut self) -> Result<(), BoxError> {
        std::io::stdout()
            .lock()
            .flush()
            .map_err(|e| self.0.error(e))
    }
}
