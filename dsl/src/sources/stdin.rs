use std::io::BufRead;
use std::sync::mpsc::{sync_channel, Receiver, TryRecvError};

use weir_engine::BoxError;

use super::{PartitionReader, ReadStatus, Source, SourceContext};
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
        })])
    }
}

struct StdinReader {
    rx: Receiver<std::io::Result<String>>,
    name: String,
    line: u64,
}

impl PartitionReader<String> for StdinReader {
    fn read(&mut self, out: &mut Vec<String>, max: usize) -> Result<ReadStatus, BoxError> {
        let limit = out.len() + max;
        while out.len() < limit {
            match self.rx.try_recv() {
                Ok(Ok(line)) => {
                    self.line += 1;
                    out.push(line);
                }
                Ok(Err(e)) => {
                    return Err(Box::new(SourceError::BadRecord {
                        source_name: self.name.clone(),
                        path: "<stdin>".into(),
                        line: self.line + 1,
                        offset: 0,
                        reason: e.to_string(),
                    }))
                }
                Err(TryRecvError::Empty) => return Ok(ReadStatus::Idle),
                Err(TryRecvError::Disconnected) => return Ok(ReadStatus::Done),
            }
        }
        Ok(ReadStatus::More)
    }
}
