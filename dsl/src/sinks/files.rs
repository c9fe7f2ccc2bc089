use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ByRef, Placement, Sink, SinkContext, SinkWriter, WriteRefs};
use crate::error::SinkError;
use crate::{BoxError, Data};
use weir_operators::Time;

/// One file written by worker 0, or a directory of part files.
#[derive(Debug, Clone)]
enum Target {
    File(PathBuf),
    Parts(PathBuf),
}

impl Target {
    fn describe(&self, format: &str) -> String {
        match self {
            Target::File(p) => format!("{format}({})", p.display()),
            Target::Parts(p) => format!("{format}({}/part-*.{format})", p.display()),
        }
    }

    fn placement(&self) -> Placement {
        match self {
            Target::File(_) => Placement::WorkerZero,
            Target::Parts(_) => Placement::EveryWorker,
        }
    }

    /// Creates this worker's file.
    fn create(
        &self,
        ctx: &SinkContext,
        ext: &str,
    ) -> Result<(PathBuf, BufWriter<File>), SinkError> {
        let path = match self {
            Target::File(p) => p.clone(),
            Target::Parts(dir) => {
                std::fs::create_dir_all(dir).map_err(|error| SinkError {
                    sink: ctx.name().to_string(),
                    path: dir.clone(),
                    error,
                })?;
                dir.join(format!("part-{:05}.{ext}", ctx.worker()))
            }
        };
        let file = File::create(&path).map_err(|error| SinkError {
            sink: ctx.name().to_string(),
            path: path.clone(),
            error,
        })?;
        Ok((path, BufWriter::with_capacity(1 << 16, file)))
    }
}

fn sink_error(name: &str, path: &Path, error: std::io::Error) -> BoxError {
    Box::new(SinkError {
        sink: name.to_string(),
        path: path.to_path_buf(),
        error,
    })
}

/// Writes records as JSON lines to one file (all records routed to worker 0)
/// or to a directory with one `part-NNNNN.jsonl` file per worker.
///
/// # Examples
///
/// ```
/// use weir::prelude::*;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.jsonl");
/// Pipeline::new("p")
///     .source(Iter::new(vec![1, 2, 3]))
///     .sink(JsonLinesFile::to(&path))
///     .run(Cluster::threads(2).quiet(true))
///     .unwrap();
/// let text = std::fs::read_to_string(&path).unwrap();
/// let mut lines: Vec<&str> = text.lines().collect();
/// lines.sort();
/// assert_eq!(lines, vec!["1", "2", "3"]);
/// ```
pub struct JsonLinesFile {
    target: Target,
}

impl JsonLinesFile {
    /// All records in the file at `path`, written by worker 0.
    pub fn to(path: impl AsRef<Path>) -> Self {
        JsonLinesFile {
            target: Target::File(path.as_ref().to_path_buf()),
        }
    }

    /// One part file per worker in directory `dir` (created if missing).
    pub fn parts(dir: impl AsRef<Path>) -> Self {
        JsonLinesFile {
            target: Target::Parts(dir.as_ref().to_path_buf()),
        }
    }
}

impl<T: Data> Sink<T> for JsonLinesFile {
    fn describe(&self) -> String {
        self.target.describe("jsonl")
    }

    fn placement(&self) -> Placement {
        self.target.placement()
    }

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError> {
        let (path, out) = self.target.create(ctx, "jsonl")?;
        Ok(Box::new(ByRef(JsonLinesWriter {
            name: ctx.name().to_string(),
            path,
            out,
        })))
    }
}

struct JsonLinesWriter {
    name: String,
    path: PathBuf,
    out: BufWriter<File>,
}

impl<T: Data> WriteRefs<T> for JsonLinesWriter {
    fn write_refs<'a>(&mut self, records: impl Iterator<Item = &'a T>) -> Result<(), BoxError>
    where
        T: 'a,
    {
        for record in records {
            serde_json::to_writer(&mut self.out, record)
                .map_err(|e| sink_error(&self.name, &self.path, e.into()))?;
            self.out
                .write_all(b"\n")
                .map_err(|e| sink_error(&self.name, &self.path, e))?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.out
            .flush()
            .map_err(|e| sink_error(&self.name, &self.path, e))
    }
}

/// Writes records as CSV, with a header row from the field names, to one
/// file (all records routed to worker 0) or to a directory with one
/// `part-NNNNN.csv` file per worker. Records must be flat (no nested structs).
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use weir::prelude::*;
///
/// #[derive(Clone, Serialize, Deserialize)]
/// struct Row { word: String, n: u64 }
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.csv");
/// Pipeline::new("p")
///     .source(Iter::new(vec![Row { word: "a".into(), n: 2 }]))
///     .sink(CsvFile::to(&path))
///     .run(Cluster::threads(1).quiet(true))
///     .unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "word,n\na,2\n");
/// ```
pub struct CsvFile {
    target: Target,
}

impl CsvFile {
    /// All records in the file at `path`, written by worker 0.
    pub fn to(path: impl AsRef<Path>) -> Self {
        CsvFile {
            target: Target::File(path.as_ref().to_path_buf()),
        }
    }

    /// One part file per worker in directory `dir` (created if missing).
    pub fn parts(dir: impl AsRef<Path>) -> Self {
        CsvFile {
            target: Target::Parts(dir.as_ref().to_path_buf()),
        }
    }
}

impl<T: Data> Sink<T> for CsvFile {
    fn describe(&self) -> String {
        self.target.describe("csv")
    }

    fn placement(&self) -> Placement {
        self.target.placement()
    }

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError> {
        let (path, out) = self.target.create(ctx, "csv")?;
        Ok(Box::new(ByRef(CsvWriter {
            name: ctx.name().to_string(),
            path,
            out: csv::Writer::from_writer(out),
        })))
    }
}

struct CsvWriter {
    name: String,
    path: PathBuf,
    out: csv::Writer<BufWriter<File>>,
}

impl<T: Data> WriteRefs<T> for CsvWriter {
    fn write_refs<'a>(&mut self, records: impl Iterator<Item = &'a T>) -> Result<(), BoxError>
    where
        T: 'a,
    {
        for record in records {
            self.out.serialize(record).map_err(|e| {
                sink_error(&self.name, &self.path, std::io::Error::other(e.to_string()))
            })?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.out
            .flush()
            .map_err(|e| sink_error(&self.name, &self.path, e))
    }
}

/// Writes `String` records as lines of text, after an optional header line,
/// to one file (all records routed to worker 0) or to a directory with one
/// `part-NNNNN.txt` file per worker.
///
/// # Examples
///
/// ```
/// use weir::prelude::*;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.csv");
/// Pipeline::new("p")
///     .source(Iter::new(vec!["a,1".to_string()]))
///     .sink(TextFile::to(&path).header("word,n"))
///     .run(Cluster::threads(2).quiet(true))
///     .unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "word,n\na,1\n");
/// ```
pub struct TextFile {
    target: Target,
    header: Option<String>,
}

impl TextFile {
    /// All lines in the file at `path`, written by worker 0.
    pub fn to(path: impl AsRef<Path>) -> Self {
        TextFile {
            target: Target::File(path.as_ref().to_path_buf()),
            header: None,
        }
    }

    /// One part file per worker in directory `dir` (created if missing).
    pub fn parts(dir: impl AsRef<Path>) -> Self {
        TextFile {
            target: Target::Parts(dir.as_ref().to_path_buf()),
            header: None,
        }
    }

    /// Starts every file with `line`.
    pub fn header(mut self, line: impl Into<String>) -> Self {
        self.header = Some(line.into());
        self
    }
}

impl TextFile {
    /// This worker's file, with the header written.
    fn open_text(&self, ctx: &SinkContext) -> Result<TextWriter, SinkError> {
        let (path, mut out) = self.target.create(ctx, "txt")?;
        if let Some(header) = &self.header {
            writeln!(out, "{header}").map_err(|error| SinkError {
                sink: ctx.name().to_string(),
                path: path.clone(),
                error,
            })?;
        }
        Ok(TextWriter {
            name: ctx.name().to_string(),
            path,
            out,
        })
    }
}

impl Sink<String> for TextFile {
    fn describe(&self) -> String {
        self.target.describe("txt")
    }

    fn placement(&self) -> Placement {
        self.target.placement()
    }

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<String>>, SinkError> {
        Ok(Box::new(ByRef(self.open_text(ctx)?)))
    }
}

/// Writes each [`Lines`] as it is, counting its lines.
impl Sink<Lines> for TextFile {
    fn describe(&self) -> String {
        self.target.describe("txt")
    }

    fn placement(&self) -> Placement {
        self.target.placement()
    }

    fn open(&self, ctx: &SinkContext) -> Result<Box<dyn SinkWriter<Lines>>, SinkError> {
        Ok(Box::new(LinesWriter {
            out: WriterThread::start(self.open_text(ctx)?)?,
            written: 0,
        }))
    }
}

/// Lines of text rendered together: `text` holds `count` lines, each ended
/// by `\n`. [`TextFile`] and [`StdoutLines`](super::StdoutLines) write it as
/// it is and count `count` records; a stage that renders a batch of records
/// into one `Lines` saves an allocation and a copy per record.
///
/// # Examples
///
/// ```
/// use weir::prelude::*;
/// use weir::sinks::Lines;
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("out.txt");
/// let summary = Pipeline::new("p")
///     .source(Iter::new(vec![3u64]))
///     .map(|n: u64| Lines {
///         text: (0..n).map(|i| format!("line {i}\n")).collect(),
///         count: n,
///     })
///     .sink(TextFile::to(&path))
///     .run(Cluster::threads(1).quiet(true))
///     .unwrap();
/// assert_eq!(std::fs::read_to_string(&path).unwrap(), "line 0\nline 1\nline 2\n");
/// assert_eq!(summary.sinks[0].1, 3);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lines {
    /// The lines, each ended by `\n`.
    pub text: String,
    /// How many lines `text` holds.
    pub count: u64,
}

struct LinesWriter {
    out: WriterThread,
    written: u64,
}

impl LinesWriter {
    fn write_all(&mut self, batch: impl Iterator<Item = Lines>) -> Result<(), BoxError> {
        self.written = 0;
        for lines in batch {
            self.written += lines.count;
            self.out.send(lines.text)?;
        }
        Ok(())
    }
}

impl SinkWriter<Lines> for LinesWriter {
    fn write(&mut self, batch: &mut Vec<Lines>) -> Result<(), BoxError> {
        self.write_all(batch.drain(..))
    }

    fn write_timed(
        &mut self,
        batch: &mut Vec<(Time, Lines)>,
        _: &mut Vec<Lines>,
    ) -> Result<(), BoxError> {
        self.write_all(batch.drain(..).map(|(_, l)| l))
    }

    fn records_written(&self, _batch_len: usize) -> u64 {
        self.written
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.out.finish()
    }
}

/// Chunks of text a sink's file thread has not written yet, at most.
const QUEUED_CHUNKS: usize = 64;

/// Writes chunks of text to a sink's file on a thread of its own, so that
/// the worker of a one-file sink, which gets every result of the cluster,
/// does not also wait on the write calls: a second core, when free, takes
/// them. The queue is bounded; a full queue makes the worker wait.
struct WriterThread {
    name: String,
    path: PathBuf,
    queue: Option<std::sync::mpsc::SyncSender<String>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
}

impl WriterThread {
    fn start(text: TextWriter) -> Result<Self, SinkError> {
        let TextWriter {
            name,
            path,
            mut out,
        } = text;
        let (queue, chunks) = std::sync::mpsc::sync_channel::<String>(QUEUED_CHUNKS);
        let thread = std::thread::Builder::new()
            .name("weir:sink-file".into())
            .spawn(move || {
                for chunk in chunks {
                    out.write_all(chunk.as_bytes())?;
                }
                out.flush()
            })
            .map_err(|error| SinkError {
                sink: name.clone(),
                path: path.clone(),
                error,
            })?;
        Ok(WriterThread {
            name,
            path,
            queue: Some(queue),
            thread: Some(thread),
        })
    }

    fn send(&mut self, chunk: String) -> Result<(), BoxError> {
        let sent = self.queue.as_ref().map(|q| q.send(chunk).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The thread stopped early: its write failed.
        self.finish()?;
        Err(sink_error(
            &self.name,
            &self.path,
            std::io::Error::other("the file's writer thread stopped"),
        ))
    }

    /// Waits until every chunk is written and flushed.
    fn finish(&mut self) -> Result<(), BoxError> {
        self.queue = None;
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        match thread.join() {
            Ok(written) => written.map_err(|e| sink_error(&self.name, &self.path, e)),
            Err(_) => Err(sink_error(
                &self.name,
                &self.path,
                std::io::Error::other("the file's writer thread panicked"),
            )),
        }
    }
}

struct TextWriter {
    name: String,
    path: PathBuf,
    out: BufWriter<File>,
}

impl WriteRefs<String> for TextWriter {
    fn write_refs<'a>(&mut self, lines: impl Iterator<Item = &'a String>) -> Result<(), BoxError> {
        for line in lines {
            self.out
                .write_all(line.as_bytes())
                .and_then(|()| self.out.write_all(b"\n"))
                .map_err(|e| sink_error(&self.name, &self.path, e))?;
        }
        Ok(())
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.out
            .flush()
            .map_err(|e| sink_error(&self.name, &self.path, e))
    }
}
