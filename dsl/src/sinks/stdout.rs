use std::io::Write;

use super::{Sink, SinkContext, SinkWriter};
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
/// Pipeline::new("p")
///     .source(Iter::new(vec![1, 2]))
///     .sink(Stdout::jsonl())
///     .run(Cluster::threads(1).quiet(true))
///     .unwrap();
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
        Ok(Box::new(StdoutWriter {
            name: ctx.name().to_string(),
            buffer: Vec::with_capacity(1 << 16),
        }))
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

impl<T: Data> SinkWriter<T> for StdoutWriter {
    fn write(&mut self, batch: &mut Vec<T>) -> Result<(), BoxError> {
        self.buffer.clear();
        for record in batch.drain(..) {
            serde_json::to_writer(&mut self.buffer, &record).map_err(|e| self.error(e.into()))?;
            self.buffer.push(b'\n');
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&self.buffer).map_err(|e| self.error(e))
    }

    fn close(&mut self) -> Result<(), BoxError> {
        std::io::stdout().lock().flush().map_err(|e| self.error(e))
    }
}
