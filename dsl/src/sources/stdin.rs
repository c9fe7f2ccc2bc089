use std::io::BufRead;
use std::marker::PhantomData;
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};
use std::sync::Arc;

use weir_engine::BoxError;

use super::{PartitionReader, ReadStatus, Source, SourceContext};
use crate::error::SourceError;
use crate::Data;

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
pub(crate) type LineParse<T> = Arc<dyn Fn(&str, u64) -> Result<Option<T>, String> + Send + Sync>;

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
    let (tx, rx) = sync_channel::<std::io::Result<String>>(4096);
    std::thread::Builder::new()
        .name("weir:stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let stop = line.is_err();
                if tx.send(line).is_err() || stop {
                    break;
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
        name: ctx.name().to_string(),
        line: 0,
        parse,
    })])
}

struct StdinReader<T> {
    rx: Receiver<std::io::Result<String>>,
    name: String,
    line: u64,
    parse: LineParse<T>,
}

impl<T: Data> StdinReader<T> {
    fn bad(&self, reason: String) -> BoxError {
        Box::new(SourceError::BadRecord {
            source_name: self.name.clone(),
            path: "<stdin>".into(),
            line: self.line,
            offset: 0,
            reason,
        })
    }
}

impl<T: Data> PartitionReader<T> for StdinReader<T> {
    fn read(&mut self, out: &mut Vec<T>, max: usize) -> Result<ReadStatus, BoxError> {
        let limit = out.len() + max;
        while out.len() < limit {
            match self.rx.try_recv() {
                Ok(Ok(line)) => {
                    self.line += 1;
                    match (self.parse)(&line, self.line) {
                        Ok(Some(record)) => out.push(record),
                        Ok(None) => {}
                        Err(reason) => return Err(self.bad(reason)),
                    }
                }
                Ok(Err(e)) => {
                    self.line += 1;
                    return Err(self.bad(e.to_string()));
                }
                Err(TryRecvError::Empty) => return Ok(ReadStatus::Idle),
                Err(TryRecvError::Disconnected) => return Ok(ReadStatus::Done),
            }
        }
        Ok(ReadStatus::More)
    }
}
