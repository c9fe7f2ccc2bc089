use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{ByRef, Placement, Sink, SinkContext, SinkWriter, Staging, WriteRefs};
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

    /// The file worker `worker` writes.
    fn path(&self, worker: usize, ext: &str) -> PathBuf {
        match self {
            Target::File(p) => p.clone(),
            Target::Parts(dir) => dir.join(format!("part-{worker:05}.{ext}")),
        }
    }

    /// Creates this worker's file, or with checkpoints its file of output
    /// in progress (see [`SinkContext::staging`]).
    fn create(&self, ctx: &SinkContext, ext: &str) -> Result<FileOut, SinkError> {
        // Without checkpoints the file is written beside its output file
        // and published (renamed over it) once the sink has all its input:
        // a job that fails leaves the previous output as it was.
        let (path, publish) = match ctx.staging() {
            Some(staging) => (staging.in_progress(), None),
            None => {
                let target = self.path(ctx.worker(), ext);
                // Only a regular file (or none yet) is replaced this way: a
                // device or a pipe (`/dev/stdout`) is written to directly.
                let special = std::fs::metadata(&target).is_ok_and(|m| !m.is_file());
                match special {
                    true => (target, None),
                    false => (partial_path(&target), Some(target)),
                }
            }
        };
        let mut out = FileOut::create(ctx, path)?;
        out.publish = publish;
        Ok(out)
    }

    /// The output file of `worker`, for a sink staging its output.
    fn staged_output(&self, worker: usize, ext: &str) -> Option<PathBuf> {
        match (self, worker) {
            (Target::File(_), 0) | (Target::Parts(_), _) => Some(self.path(worker, ext)),
            (Target::File(_), _) => None,
        }
    }
}

/// Where the output for file `target` is written until it is published:
/// `.NAME.weir-partial` beside it.
fn partial_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "output".into());
    target.with_file_name(format!(".{name}.weir-partial"))
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
        Ok(Box::new(ByRef(JsonLinesWriter {
            out: self.target.create(ctx, "jsonl")?,
        })))
    }

    fn staged_output(&self, worker: usize) -> Option<PathBuf> {
        self.target.staged_output(worker, "jsonl")
    }
}

struct JsonLinesWriter {
    out: FileOut,
}

impl<T: Data> WriteRefs<T> for JsonLinesWriter {
    fn write_refs<'a>(&mut self, records: impl Iterator<Item = &'a T>) -> Result<(), BoxError>
    where
        T: 'a,
    {
        for record in records {
            let buf = &mut self.out.buf;
            serde_json::to_writer(&mut *buf, record)
                .map_err(|e| sink_error(&self.out.name, &self.out.path, e.into()))?;
            buf.push(b'\n');
        }
        self.out.ship()
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.out.finish()
    }

    fn checkpoint(&mut self, at: Option<Time>) -> Result<(), BoxError> {
        self.out.checkpoint(at)
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
        Ok(Box::new(ByRef(CsvWriter {
            // Output appended to a file the job wrote before a restore
            // already has its header.
            header: !ctx.staging().is_some_and(|s| s.append),
            out: self.target.create(ctx, "csv")?,
        })))
    }

    fn staged_output(&self, worker: usize) -> Option<PathBuf> {
        self.target.staged_output(worker, "csv")
    }
}

struct CsvWriter {
    /// Whether the header is still to be written (before the first record).
    header: bool,
    out: FileOut,
}

impl<T: Data> WriteRefs<T> for CsvWriter {
    fn write_refs<'a>(&mut self, records: impl Iterator<Item = &'a T>) -> Result<(), BoxError>
    where
        T: 'a,
    {
        // A csv writer per batch, encoding into the batch's bytes.
        let mut csv = csv::WriterBuilder::new()
            .has_headers(self.header)
            .from_writer(std::mem::take(&mut self.out.buf));
        for record in records {
            csv.serialize(record)
                .map_err(|e| self.out.error(std::io::Error::other(e.to_string())))?;
            self.header = false;
        }
        self.out.buf = csv
            .into_inner()
            .map_err(|e| self.out.error(std::io::Error::other(e.to_string())))?;
        self.out.ship()
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.out.finish()
    }

    fn checkpoint(&mut self, at: Option<Time>) -> Result<(), BoxError> {
        self.out.checkpoint(at)
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
    fn open_text(&self, ctx: &SinkContext) -> Result<FileOut, SinkError> {
        let mut out = self.target.create(ctx, "txt")?;
        let append = ctx.staging().is_some_and(|s| s.append);
        if let (Some(header), false) = (&self.header, append) {
            out.buf.extend_from_slice(header.as_bytes());
            out.buf.push(b'\n');
            // Out now: `Lines` hand their text to the thread directly.
            out.ship().map_err(|e| SinkError {
                sink: ctx.name().to_string(),
                path: out.path.clone(),
                error: std::io::Error::other(e.to_string()),
            })?;
        }
        Ok(out)
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
        Ok(Box::new(ByRef(TextWriter {
            out: self.open_text(ctx)?,
        })))
    }

    fn staged_output(&self, worker: usize) -> Option<PathBuf> {
        self.target.staged_output(worker, "txt")
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
            out: self.open_text(ctx)?,
            written: 0,
        }))
    }

    fn staged_output(&self, worker: usize) -> Option<PathBuf> {
        self.target.staged_output(worker, "txt")
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
    out: FileOut,
    written: u64,
}

impl LinesWriter {
    fn write_all(&mut self, batch: impl Iterator<Item = Lines>) -> Result<(), BoxError> {
        self.written = 0;
        for lines in batch {
            self.written += lines.count;
            self.out.send(lines.text.into_bytes())?;
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

    fn checkpoint(&mut self, at: Option<Time>) -> Result<(), BoxError> {
        self.out.checkpoint(at)
    }
}

/// Chunks of text a sink's file thread has not written yet, at most.
const QUEUED_CHUNKS: usize = 64;

/// A sink's file, written on a thread of its own: the worker encodes each
/// batch into bytes (`buf`, or a chunk of its own) and queues them; the
/// thread makes the write calls. A one-file sink's worker, which gets every
/// result of the cluster, thus does not also wait on the kernel: a second
/// core, when free, takes the writes. The queue is bounded; a full queue
/// makes the worker wait.
pub(super) struct FileOut {
    name: String,
    path: PathBuf,
    buf: Vec<u8>,
    queue: Option<std::sync::mpsc::SyncSender<Chunk>>,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    /// With checkpoints: where staged output goes.
    staging: Option<Staging>,
    /// Without: the output file `path` is renamed to once complete.
    publish: Option<PathBuf>,
}

/// What the writing thread of a [`FileOut`] is handed.
enum Chunk {
    /// Bytes to append.
    Bytes(Vec<u8>),
    /// Move the file written so far to `to` and go on in a new one at the
    /// same path; say how it went on `done`.
    Stage {
        to: PathBuf,
        done: std::sync::mpsc::SyncSender<std::io::Result<()>>,
    },
}

impl FileOut {
    /// Creates `path` (and its directory) and starts writing it for the
    /// sink `ctx` opens, staging into checkpoints if it stages.
    pub(super) fn create(ctx: &SinkContext, path: PathBuf) -> Result<Self, SinkError> {
        let fail = |path: &Path, error| SinkError {
            sink: ctx.name().to_string(),
            path: path.to_path_buf(),
            error,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| fail(dir, e))?;
        }
        let file = File::create(&path).map_err(|e| fail(&path, e))?;
        let out = BufWriter::with_capacity(1 << 16, file);
        FileOut::start(ctx.name(), path, out, ctx.staging().cloned())
    }

    fn start(
        name: &str,
        path: PathBuf,
        mut out: BufWriter<File>,
        staging: Option<Staging>,
    ) -> Result<Self, SinkError> {
        let (queue, chunks) = std::sync::mpsc::sync_channel::<Chunk>(QUEUED_CHUNKS);
        let at = path.clone();
        let thread = std::thread::Builder::new()
            .name("weir:sink-file".into())
            .spawn(move || {
                for chunk in chunks {
                    match chunk {
                        Chunk::Bytes(bytes) => out.write_all(&bytes)?,
                        Chunk::Stage { to, done } => {
                            let staged = out.flush().and_then(|()| std::fs::rename(&at, &to));
                            let next = staged.and_then(|()| File::create(&at));
                            match next {
                                Ok(file) => {
                                    out = BufWriter::with_capacity(1 << 16, file);
                                    let _ = done.send(Ok(()));
                                }
                                Err(e) => {
                                    let kind = e.kind();
                                    let _ = done.send(Err(e));
                                    return Err(std::io::Error::new(kind, "staging failed"));
                                }
                            }
                        }
                    }
                }
                out.flush()
            })
            .map_err(|error| SinkError {
                sink: name.to_string(),
                path: path.clone(),
                error,
            })?;
        Ok(FileOut {
            name: name.to_string(),
            path,
            buf: Vec::new(),
            queue: Some(queue),
            thread: Some(thread),
            staging,
            publish: None,
        })
    }

    fn error(&self, error: std::io::Error) -> BoxError {
        sink_error(&self.name, &self.path, error)
    }

    /// The bytes to write next: [`ship`](FileOut::ship) hands them over.
    #[cfg(any(feature = "kafka", feature = "amqp"))]
    pub(super) fn buffer(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    pub(super) fn ship(&mut self) -> Result<(), BoxError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let room = self.buf.len();
        let chunk = std::mem::replace(&mut self.buf, Vec::with_capacity(room));
        self.send(chunk)
    }

    fn send(&mut self, chunk: Vec<u8>) -> Result<(), BoxError> {
        self.hand(Chunk::Bytes(chunk))
    }

    fn hand(&mut self, chunk: Chunk) -> Result<(), BoxError> {
        let sent = self.queue.as_ref().map(|q| q.send(chunk).is_ok());
        if sent == Some(true) {
            return Ok(());
        }
        // The thread stopped early: its write failed.
        self.finish()?;
        Err(self.error(std::io::Error::other("the file's writer thread stopped")))
    }

    /// Stages what was written so far for the checkpoint at `at` (see
    /// [`SinkWriter::checkpoint`]): the file written since the last one is
    /// moved into the checkpoint, and writing goes on in a new file.
    pub(super) fn checkpoint(&mut self, at: Option<Time>) -> Result<(), BoxError> {
        let Some(staging) = &self.staging else {
            return Err(self.error(std::io::Error::other(
                "this sink was not opened for checkpoints",
            )));
        };
        let to = staging.staged_path(at)?;
        self.ship()?;
        let (done, result) = std::sync::mpsc::sync_channel(1);
        self.hand(Chunk::Stage { to, done })?;
        match result.recv() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.error(e)),
            Err(_) => {
                self.finish()?;
                Err(self.error(std::io::Error::other("the file's writer thread stopped")))
            }
        }
    }

    pub(super) fn finish(&mut self) -> Result<(), BoxError> {
        self.ship()?;
        self.queue = None;
        let Some(thread) = self.thread.take() else {
            return Ok(());
        };
        let written = match thread.join() {
            Ok(written) => written.map_err(|e| self.error(e)),
            Err(_) => Err(self.error(std::io::Error::other("the file's writer thread panicked"))),
        };
        if self.staging.is_some() {
            // Everything was staged: the file in progress is empty.
            let _ = std::fs::remove_file(&self.path);
        }
        written?;
        if let Some(target) = self.publish.take() {
            std::fs::rename(&self.path, &target).map_err(|e| sink_error(&self.name, &target, e))?;
        }
        Ok(())
    }
}

impl Drop for FileOut {
    /// A sink that did not get all its input (its job failed or stopped)
    /// leaves its output file as it was, and says where its partial output
    /// is.
    fn drop(&mut self) {
        if let Some(target) = &self.publish
            && self.path.exists()
        {
            eprintln!(
                "weir: sink `{}` did not complete: {} is left as it was; the partial output is in {}",
                self.name,
                target.display(),
                self.path.display()
            );
        }
    }
}

struct TextWriter {
    out: FileOut,
}

impl WriteRefs<String> for TextWriter {
    fn write_refs<'a>(&mut self, lines: impl Iterator<Item = &'a String>) -> Result<(), BoxError> {
        for line in lines {
            self.out.buf.extend_from_slice(line.as_bytes());
            self.out.buf.push(b'\n');
        }
        self.out.ship()
    }

    fn close(&mut self) -> Result<(), BoxError> {
        self.out.finish()
    }

    fn checkpoint(&mut self, at: Option<Time>) -> Result<(), BoxError> {
        self.out.checkpoint(at)
    }
}
