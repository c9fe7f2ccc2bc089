use std::io::BufRead;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, TryRecvError, sync_channel};

use weir_engine::BoxError;

use super::{BadRecords, Origin, PartitionReader, ReadStatus, Source, SourceContext};
use crate::Data;
use crate::error::SourceError;

/// The lines of standard input, read by worker 0 of the cluster (in process
/// 0), without their line ends. The stream ends at end of input.
///
/// ```no_run
/// use weir::prelude::*;
///
/// Pipeline::new("upper")
///     .source(Stdin::lines())
///     .map(|line: String| line.to_uppercase())
///     .sink(Stdout::jsonl())
///     .run(Cluster::from_args())
///     .unwrap();
/// ```
pub struct Stdin {
    _private: (),
}

impl Stdin {
    /// Lines of standard input, as `String`s.
    pub fn lines() -> Self {
        Stdin { _private: () }
    }
}

impl Source for Stdin {
    type Item = String;

    fn describe(&self) -> String {
        "stdin(lines)".to_string()
    }

    fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<Vec<Box<dyn PartitionReader<String>>>, SourceError> {
        open_stdin(ctx, Arc::new(|line: &str, _| Ok(Some(line.to_string()))))
    }
}

/// Parses one line of standard input (with its 1-based number); `Ok(None)`
/// skips it.
pub(crate) type LineParse<T> = Arc<dyn Fn(&str, u64) -> Result<Option<T>, LineError> + Send + Sync>;

/// Why a line of standard input does not parse.
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) enum LineError {
    /// The line is a bad record: the source's policy says what follows.
    Bad(String),
    /// The input cannot be read at all (a CSV header without the fields
    /// the job reads): the job stops, whatever the policy.
    Fatal(String),
}

impl From<String> for LineError {
    fn from(reason: String) -> Self {
        LineError::Bad(reason)
    }
}

impl From<&str> for LineError {
    fn from(reason: &str) -> Self {
        LineError::Bad(reason.to_string())
    }
}

/// Standard input parsed line by line into records (for the text spec).
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) struct ParsedStdin<T> {
    format: &'static str,
    parse: LineParse<T>,
    _item: PhantomData<fn() -> T>,
}

#[cfg_attr(not(feature = "cli"), allow(dead_code))]
impl<T> ParsedStdin<T> {
    pub(crate) fn new(format: &'static str, parse: LineParse<T>) -> Self {
        ParsedStdin {
            format,
            parse,
            _item: PhantomData,
        }
    }
}

impl<T: Data> Source for ParsedStdin<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("stdin({})", self.format)
    }

    fn open(&self, ctx: &SourceContext) -> Result<Vec<Box<dyn PartitionReader<T>>>, SourceError> {
        open_stdin(ctx, Arc::clone(&self.parse))
    }
}

fn open_stdin<T: Data>(
    ctx: &SourceContext,
    parse: LineParse<T>,
) -> Result<Vec<Box<dyn PartitionReader<T>>>, SourceError> {
    if ctx.worker() != 0 {
        return Ok(Vec::new());
    }
    // Whole lines, in chunks of about CHUNK bytes: one allocation and one
    // channel message per chunk, not per line.
    let (tx, rx) = sync_channel::<std::io::Result<Vec<u8>>>(64);
    std::thread::Builder::new()
        .name("weir:stdin".into())
        .spawn(move || {
            let mut stdin = std::io::BufReader::with_capacity(CHUNK, std::io::stdin());
            loop {
                let mut chunk = Vec::with_capacity(CHUNK + 256);
                let mut end = false;
                while chunk.len() < CHUNK {
                    match stdin.read_until(b'\n', &mut chunk) {
                        Ok(0) => {
                            end = true;
                            break;
                        }
                        // Nothing more is buffered: the next read may
                        // wait for input, so what was read goes now (a
                        // slow producer's lines are not held back).
                        Ok(_) if stdin.buffer().is_empty() => break,
                        Ok(_) => {}
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            return;
                        }
                    }
                }
                if !chunk.is_empty() && tx.send(Ok(chunk)).is_err() {
                    return;
                }
                if end {
                    return;
                }
            }
        })
        .map_err(|error| SourceError::Io {
            source_name: ctx.name().to_string(),
            path: "<stdin>".into(),
            error,
        })?;
    Ok(vec![Box::new(StdinReader {
        rx,
        chunk: Vec::new(),
        at: 0,
        name: ctx.name().to_string(),
        line: 0,
        offset: 0,
        parse,
        bad: ctx.bad_records(),
    })])
}

/// Bytes of standard input per message from the reading thread.
const CHUNK: usize = 64 * 1024;

struct StdinReader<T> {
    rx: Receiver<std::io::Result<Vec<u8>>>,
    /// Whole lines read from standard input, and how far they are parsed.
    chunk: Vec<u8>,
    at: usize,
    name: String,
    /// The number of the last line taken, and the byte offset of the next.
    line: u64,
    offset: u64,
    parse: LineParse<T>,
    bad: BadRecords,
}

impl<T: Data> StdinReader<T> {
    fn bad(&self, offset: u64, reason: String) -> BoxError {
        Box::new(SourceError::BadRecord {
            source_name: self.name.clone(),
            path: "<stdin>".into(),
            line: self.line,
            offset,
            reason,
        })
    }
}

impl<T: Data> PartitionReader<T> for StdinReader<T> {
    fn read(&mut self, out: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        let limit = out.len() + max;
        while out.len() < limit {
            if self.at >= self.chunk.len() {
                match self.rx.try_recv() {
                    Ok(Ok(chunk)) => {
                        self.chunk = chunk;
                        self.at = 0;
                    }
                    Ok(Err(e)) => {
                        self.line += 1;
                        return Err(self.bad(self.offset, e.to_string()));
                    }
                    Err(TryRecvError::Empty) => return Ok(ReadStatus::Idle),
                    Err(TryRecvError::Disconnected) => return Ok(ReadStatus::Done),
                }
            }
            let rest = &self.chunk[self.at..];
            let len = rest
                .iter()
                .position(|&b| b == b'\n')
                .map_or(rest.len(), |i| i + 1);
            let at = self.offset;
            self.line += 1;
            self.offset += len as u64;
            self.at += len;
            let mut text = &rest[..len];
            text = text.strip_suffix(b"\n").unwrap_or(text);
            text = text.strip_suffix(b"\r").unwrap_or(text);
            let parsed = match std::str::from_utf8(text) {
                Ok(line) => (self.parse)(line, self.line),
                Err(e) => Err(LineError::Bad(format!("invalid UTF-8: {e}"))),
            };
            match parsed {
                Ok(Some(record)) => out.push(record),
                Ok(None) => {}
                Err(LineError::Fatal(reason)) => return Err(self.bad(at, reason)),
                Err(LineError::Bad(reason)) => {
                    let origin = Origin::File {
                        path: "<stdin>".into(),
                        line: self.line,
                        offset: at,
                    };
                    self.bad.reject(origin, text, reason)?;
                }
            }
        }
        Ok(ReadStatus::More)
    }
}
