//! File sources: CSV, JSON lines and plain text, from a file, a directory or a glob,
//! split across workers by file and byte range.

use std::cell::Cell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::de::DeserializeOwned;
use weir_engine::BoxError;

use super::{
    BadRecords, Each, Origin, PartitionReader, ReadEach, ReadStatus, Source, SourceContext,
};
use crate::Data;
use crate::error::SourceError;

/// The default size of a byte range (a source partition) of a file.
const SPLIT: u64 = 1 << 20;

/// One byte range of one file. A range reads every line that *starts* in
/// `[start, end)`, so each line belongs to exactly one range.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Split {
    path: PathBuf,
    start: u64,
    end: u64,
}

/// The files `pattern` names: the file itself, the files of a directory
/// (not hidden, sorted), or the files a glob matches (sorted).
pub(crate) fn list_files(name: &str, pattern: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let text = pattern.to_string_lossy();
    let io_err = |path: &Path, error| SourceError::Io {
        source_name: name.to_string(),
        path: path.to_path_buf(),
        error,
    };
    let hidden = |path: &Path| {
        path.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(['.', '_']))
    };
    let mut files = Vec::new();
    if pattern.is_dir() {
        for entry in std::fs::read_dir(pattern).map_err(|e| io_err(pattern, e))? {
            let path = entry.map_err(|e| io_err(pattern, e))?.path();
            if path.is_file() && !hidden(&path) {
                files.push(path);
            }
        }
    } else if text.contains(['*', '?', '[']) {
        let paths = glob::glob(&text).map_err(|e| SourceError::NoFiles {
            source_name: name.to_string(),
            pattern: format!("{text} (bad glob: {e})"),
        })?;
        for path in paths {
            let path = path.map_err(|e| io_err(e.path(), std::io::Error::other(e.to_string())))?;
            if path.is_file() && !hidden(&path) {
                files.push(path);
            }
        }
    } else if pattern.is_file() {
        files.push(pattern.to_path_buf());
    } else {
        return Err(io_err(
            pattern,
            std::io::Error::new(std::io::ErrorKind::NotFound, "no such file or directory"),
        ));
    }
    if files.is_empty() {
        return Err(SourceError::NoFiles {
            source_name: name.to_string(),
            pattern: text.into_owned(),
        });
    }
    files.sort();
    Ok(files)
}

/// Cuts the files into byte ranges of `split` bytes (the last of a file may
/// be shorter) and returns those of `worker`, round-robin. The ranges depend
/// on the files only, not on the number of workers, so every range (a source
/// partition) reads the same lines in the same order on any cluster.
fn splits_for(
    name: &str,
    files: &[PathBuf],
    split: u64,
    worker: usize,
    peers: usize,
) -> Result<Vec<Split>, SourceError> {
    let mut sizes = Vec::with_capacity(files.len());
    for path in files {
        let len = std::fs::metadata(path)
            .map_err(|error| SourceError::Io {
                source_name: name.to_string(),
                path: path.clone(),
                error,
            })?
            .len();
        sizes.push(len);
    }
    let chunk = split.max(1);
    let mut all = Vec::new();
    for (path, &len) in files.iter().zip(&sizes) {
        let mut start = 0;
        loop {
            let end = (start + chunk).min(len);
            all.push(Split {
                path: path.clone(),
                start,
                end,
            });
            if end >= len {
                break;
            }
            start = end;
        }
    }
    Ok(all
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % peers == worker)
        .map(|(_, s)| s)
        .collect())
}

/// Opens `split` positioned at the first line starting at or after
/// `split.start`; returns the reader and that position.
fn open_aligned(name: &str, split: &Split) -> Result<(BufReader<File>, u64), SourceError> {
    let io_err = |error| SourceError::Io {
        source_name: name.to_string(),
        path: split.path.clone(),
        error,
    };
    let file = File::open(&split.path).map_err(io_err)?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    if split.start == 0 {
        return Ok((reader, 0));
    }
    // A line starting exactly at `start` has '\n' just before it.
    reader
        .seek(SeekFrom::Start(split.start - 1))
        .map_err(io_err)?;
    let mut skipped = Vec::new();
    let n = reader.read_until(b'\n', &mut skipped).map_err(io_err)?;
    Ok((reader, split.start - 1 + n as u64))
}

/// At most this many splits of one source stay open on a worker between
/// reads; the others are opened for the length of a read and closed after,
/// so no input is too large for the file descriptor limit. The source reads
/// its partitions in event-time order, mostly one after the other, so the
/// splits being read are the ones kept open.
const MAX_OPEN: usize = 16;

/// How many more splits of one source may stay open on this worker.
type OpenBudget = Rc<Cell<usize>>;

fn open_budget() -> OpenBudget {
    Rc::new(Cell::new(MAX_OPEN))
}

/// One split's file, opened on first read (aligned to its first line) and
/// kept open between reads while the worker's budget of open splits allows;
/// otherwise closed after each read and reopened at the position reached.
struct SplitFile {
    name: String,
    split: Split,
    /// What to do with a line that does not read.
    bad: BadRecords,
    /// A byte offset at a line start and that line's number, where
    /// counting lines for the next bad record starts.
    counted: (u64, u64),
    /// The position of the next line, once aligned.
    pos: Option<u64>,
    reader: Option<BufReader<File>>,
    budget: OpenBudget,
    /// Whether this split holds one unit of the budget.
    holds: bool,
}

impl Drop for SplitFile {
    fn drop(&mut self) {
        if self.holds {
            self.budget.set(self.budget.get() + 1);
        }
    }
}

impl SplitFile {
    fn new(name: &str, split: Split, budget: &OpenBudget, bad: BadRecords) -> Self {
        SplitFile {
            name: name.to_string(),
            split,
            bad,
            counted: (0, 1),
            pos: None,
            reader: None,
            budget: Rc::clone(budget),
            holds: false,
        }
    }

    /// Whether the split may stay open between reads: it holds a unit of
    /// the budget, or takes one if any is left.
    fn keep(&mut self) -> bool {
        if !self.holds && self.budget.get() > 0 {
            self.budget.set(self.budget.get() - 1);
            self.holds = true;
        }
        self.holds
    }

    /// The reader at the next line (opened, or reopened where reading
    /// stopped, if not held), and that line's position.
    fn take(&mut self) -> Result<(BufReader<File>, u64), SourceError> {
        match (self.reader.take(), self.pos) {
            (Some(reader), Some(pos)) => Ok((reader, pos)),
            (_, None) => open_aligned(&self.name, &self.split),
            (None, Some(pos)) => {
                let io_err = |error| SourceError::Io {
                    source_name: self.name.clone(),
                    path: self.split.path.clone(),
                    error,
                };
                let mut file = File::open(&self.split.path).map_err(io_err)?;
                file.seek(SeekFrom::Start(pos)).map_err(io_err)?;
                Ok((BufReader::with_capacity(1 << 16, file), pos))
            }
        }
    }

    /// The position of the next line: where reading resumes.
    fn position(&self) -> u64 {
        self.pos.unwrap_or(self.split.start)
    }

    /// Moves to `pos`, the start of a line read by this split (or where its
    /// reading ended); the split's own start is aligned again, as on a first
    /// read.
    fn seek(&mut self, pos: u64) -> Result<(), BoxError> {
        let Split { start, end, .. } = &self.split;
        if pos < *start {
            return Err(format!(
                "{}: cannot resume at byte {pos} of {}, before its split {start}..{end}",
                self.name,
                self.split.path.display()
            )
            .into());
        }
        self.reader = None;
        self.pos = (pos != *start).then_some(pos);
        Ok(())
    }

    /// Hands the line at byte `offset` (`raw`, with its line break) that
    /// does not read, for `reason`, to the source's policy.
    fn reject(&mut self, offset: u64, raw: &[u8], reason: String) -> Result<(), BoxError> {
        let (from, line) = match self.counted {
            (at, line) if at <= offset => (at, line),
            _ => (0, 1),
        };
        let line = line + lines_between(&self.split.path, from, offset);
        self.counted = (offset, line);
        let origin = Origin::File {
            path: self.split.path.clone(),
            line,
            offset,
        };
        self.bad.reject(origin, trim_line_break(raw), reason)
    }

    /// Records that reading has reached `pos`, and keeps `reader` (at
    /// `pos`) if the file may stay open between reads.
    fn release(&mut self, pos: u64, reader: Option<BufReader<File>>) {
        self.pos = Some(pos);
        self.reader = reader.filter(|_| self.keep());
    }
}

/// The number of line breaks in bytes `from..to` of `path`: counted only
/// for records that do not read, so the reading path need not.
fn lines_between(path: &Path, from: u64, to: u64) -> u64 {
    let Ok(mut file) = File::open(path) else {
        return 0;
    };
    if file.seek(SeekFrom::Start(from)).is_err() {
        return 0;
    }
    let mut reader = BufReader::new(file).take(to.saturating_sub(from));
    let mut buf = [0u8; 1 << 16];
    let mut lines = 0;
    while let Ok(n) = reader.read(&mut buf) {
        if n == 0 {
            break;
        }
        lines += buf[..n].iter().filter(|&&b| b == b'\n').count() as u64;
    }
    lines
}

/// The 1-based number of the line starting at byte `offset` of `path`.
fn line_at(path: &Path, offset: u64) -> u64 {
    1 + lines_between(path, 0, offset)
}

/// `line` without its line break (`\n` or `\r\n`).
fn trim_line_break(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Bytes `from..to` of `path` (a CSV row that did not read, read again).
fn bytes_at(path: &Path, from: u64, to: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(path)
        && file.seek(SeekFrom::Start(from)).is_ok()
    {
        let _ = file.take(to.saturating_sub(from)).read_to_end(&mut bytes);
    }
    bytes
}

fn bad_record(name: &str, path: &Path, offset: u64, reason: String) -> BoxError {
    Box::new(SourceError::BadRecord {
        source_name: name.to_string(),
        path: path.to_path_buf(),
        line: line_at(path, offset),
        offset,
        reason,
    })
}

/// Shared settings of the file sources.
struct FileSpec {
    path: PathBuf,
    split: u64,
}

impl FileSpec {
    fn new(path: &Path) -> Self {
        FileSpec {
            path: path.to_path_buf(),
            split: SPLIT,
        }
    }

    fn splits(&self, ctx: &SourceContext) -> Result<Vec<Split>, SourceError> {
        let files = list_files(ctx.name(), &self.path)?;
        let splits = splits_for(ctx.name(), &files, self.split, ctx.worker(), ctx.peers())?;
        ctx.expect_work(splits.iter().map(|s| s.end - s.start).sum());
        Ok(splits)
    }
}

/// JSON lines files: one JSON value per line, deserialized into `T` with
/// serde. Blank lines are skipped.
///
/// The path is a file, a directory (its files that do not start with `.`
/// or `_`) or a glob; files are split across workers by byte range, and every
/// line is read exactly once. A line that does not parse stops the job with an
/// error naming the file, the line number and the reason.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use weir::prelude::*;
///
/// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
/// struct Reading { sensor: String, value: f64 }
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("r.jsonl");
/// std::fs::write(&path, "{\"sensor\":\"a\",\"value\":1.5}\n\n{\"sensor\":\"b\",\"value\":2}\n").unwrap();
///
/// let out = Collect::new();
/// Pipeline::new("readings")
///     .source(JsonLines::<Reading>::new(&path))
///     .sink(out.clone())
///     .run(Cluster::threads(2).quiet(true))
///     .unwrap();
/// let mut got = out.take();
/// got.sort_by(|a, b| a.sensor.cmp(&b.sensor));
/// assert_eq!(got[1], Reading { sensor: "b".into(), value: 2.0 });
///
/// std::fs::write(&path, "{\"sensor\":\"a\",\"value\":1}\n{\"sensor\":\"b\"}\n").unwrap();
/// let err = Pipeline::new("readings")
///     .source(JsonLines::<Reading>::new(&path))
///     .sink(Collect::new())
///     .run(Cluster::threads(1).quiet(true))
///     .unwrap_err();
/// let msg = err.to_string();
/// assert!(msg.contains("r.jsonl:2") && msg.contains("missing field `value`"), "{msg}");
/// ```
pub struct JsonLines<T> {
    spec: FileSpec,
    _item: PhantomData<fn() -> T>,
}

impl<T: Data> JsonLines<T> {
    /// JSON lines from a file, a directory or a glob.
    pub fn new(path: impl AsRef<Path>) -> Self {
        JsonLines {
            spec: FileSpec::new(path.as_ref()),
            _item: PhantomData,
        }
    }

    /// Splits files into byte ranges (partitions) of `bytes` (default 1 MiB);
    /// the ranges are spread over the workers.
    pub fn split_size(mut self, bytes: u64) -> Self {
        self.spec.split = bytes.max(1);
        self
    }
}

impl<T: Data> Source for JsonLines<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("jsonl({})", self.spec.path.display())
    }

    fn bounded(&self) -> bool {
        true
    }

    fn resumable(&self) -> bool {
        true
    }

    fn open(&self, ctx: &SourceContext) -> Result<Vec<Box<dyn PartitionReader<T>>>, SourceError> {
        open_lines(&self.spec, ctx, |line: &[u8]| {
            if line.iter().all(u8::is_ascii_whitespace) {
                return Ok(None);
            }
            serde_json::from_slice(line)
                .map(Some)
                .map_err(|e| e.to_string())
        })
    }
}

/// Plain text files, one `String` record per line, without the line end.
///
/// The path is a file, a directory (its files that do not start with `.`
/// or `_`) or a glob; files are split across workers by byte range, and every
/// line is read exactly once. A line that is not UTF-8 stops the job with an
/// error naming the file and line.
///
/// # Examples
///
/// ```
/// use weir::prelude::*;
///
/// let dir = tempfile::tempdir().unwrap();
/// std::fs::write(dir.path().join("a.txt"), "one\r\ntwo\n").unwrap();
/// std::fs::write(dir.path().join("b.txt"), "three").unwrap();
/// let out = Collect::new();
/// Pipeline::new("text")
///     .source(TextLines::new(dir.path()))
///     .sink(out.clone())
///     .run(Cluster::threads(2).quiet(true))
///     .unwrap();
/// let mut got = out.take();
/// got.sort();
/// assert_eq!(got, vec!["one", "three", "two"]);
/// ```
pub struct TextLines {
    spec: FileSpec,
}

impl TextLines {
    /// Lines of a file, a directory or a glob.
    pub fn new(path: impl AsRef<Path>) -> Self {
        TextLines {
            spec: FileSpec::new(path.as_ref()),
        }
    }

    /// Splits files into byte ranges (partitions) of `bytes` (default 1 MiB);
    /// the ranges are spread over the workers.
    pub fn split_size(mut self, bytes: u64) -> Self {
        self.spec.split = bytes.max(1);
        self
    }
}

impl Source for TextLines {
    type Item = String;

    fn describe(&self) -> String {
        format!("text({})", self.spec.path.display())
    }

    fn bounded(&self) -> bool {
        true
    }

    fn resumable(&self) -> bool {
        true
    }

    fn open(
        &self,
        ctx: &SourceContext,
    ) -> Result<Vec<Box<dyn PartitionReader<String>>>, SourceError> {
        open_lines(&self.spec, ctx, |line: &[u8]| {
            let line = line.strip_suffix(b"\n").unwrap_or(line);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            std::str::from_utf8(line)
                .map(|s| Some(s.to_string()))
                .map_err(|e| format!("not UTF-8 text: {e}"))
        })
    }
}

/// Readers for every split of this worker, parsing each line with `parse`
/// (`Ok(None)` skips the line).
fn open_lines<T, P>(
    spec: &FileSpec,
    ctx: &SourceContext,
    parse: P,
) -> Result<Vec<Box<dyn PartitionReader<T>>>, SourceError>
where
    T: Data,
    P: Fn(&[u8]) -> Result<Option<T>, String> + Clone + 'static,
{
    open_lines_with(spec, ctx, |_| {
        let parse = parse.clone();
        Ok(move |line: &[u8], _offset: u64| parse(line))
    })
}

/// Readers for every split of this worker; `make` gives, per file, the
/// function parsing a line that starts at a byte offset of that file.
fn open_lines_with<T, M, P>(
    spec: &FileSpec,
    ctx: &SourceContext,
    make: M,
) -> Result<Vec<Box<dyn PartitionReader<T>>>, SourceError>
where
    T: Data,
    M: Fn(&Path) -> Result<P, SourceError>,
    P: Fn(&[u8], u64) -> Result<Option<T>, String> + 'static,
{
    let mut readers: Vec<Box<dyn PartitionReader<T>>> = Vec::new();
    let splits = spec.splits(ctx)?;
    let budget = open_budget();
    for split in splits {
        let parse = make(&split.path)?;
        readers.push(Box::new(Each(LinesReader {
            file: SplitFile::new(ctx.name(), split, &budget, ctx.bad_records()),
            line: Vec::new(),
            work: ctx.work_done(),
            parse,
        })));
    }
    Ok(readers)
}

/// A source of the lines of files, each parsed by a function made per file
/// (for the text spec's dynamic rows, whose CSV columns depend on each file's
/// header).
#[cfg_attr(not(feature = "cli"), allow(dead_code))]
pub(crate) struct LineSource<T, M> {
    spec: FileSpec,
    format: &'static str,
    make: M,
    _item: PhantomData<fn() -> T>,
}

#[cfg_attr(not(feature = "cli"), allow(dead_code))]
impl<T, M> LineSource<T, M> {
    /// Lines of `path` (a file, directory or glob), described as `format(path)`.
    pub(crate) fn new(path: &Path, format: &'static str, make: M) -> Self {
        LineSource {
            spec: FileSpec::new(path),
            format,
            make,
            _item: PhantomData,
        }
    }
}

impl<T, M, P> Source for LineSource<T, M>
where
    T: Data,
    M: Fn(&Path) -> Result<P, SourceError> + Send + Sync + 'static,
    P: Fn(&[u8], u64) -> Result<Option<T>, String> + 'static,
{
    type Item = T;

    fn describe(&self) -> String {
        format!("{}({})", self.format, self.spec.path.display())
    }

    fn bounded(&self) -> bool {
        true
    }

    fn resumable(&self) -> bool {
        true
    }

    fn open(&self, ctx: &SourceContext) -> Result<Vec<Box<dyn PartitionReader<T>>>, SourceError> {
        open_lines_with(&self.spec, ctx, &self.make)
    }
}

struct LinesReader<P> {
    file: SplitFile,
    line: Vec<u8>,
    work: Arc<AtomicU64>,
    parse: P,
}

impl<T, P> ReadEach<T> for LinesReader<P>
where
    P: Fn(&[u8], u64) -> Result<Option<T>, String> + 'static,
{
    fn read_each(&mut self, max: usize, mut push: impl FnMut(T)) -> Result<ReadStatus, BoxError> {
        let end = self.file.split.end;
        let (mut reader, begin) = self.file.take()?;
        let mut pos = begin;
        let mut status = ReadStatus::More;
        let mut read = 0;
        let mut failure = None;
        while read < max {
            if pos >= end {
                status = ReadStatus::Done;
                break;
            }
            self.line.clear();
            let n = match reader.read_until(b'\n', &mut self.line) {
                Ok(n) => n,
                Err(error) => {
                    failure = Some(Box::new(SourceError::Io {
                        source_name: self.file.name.clone(),
                        path: self.file.split.path.clone(),
                        error,
                    }) as BoxError);
                    break;
                }
            };
            if n == 0 {
                status = ReadStatus::Done;
                break;
            }
            let at = pos;
            pos += n as u64;
            match (self.parse)(&self.line, at) {
                Ok(Some(record)) => {
                    push(record);
                    read += 1;
                }
                Ok(None) => {}
                Err(reason) => {
                    if let Err(e) = self.file.reject(at, &self.line, reason) {
                        failure = Some(e);
                        break;
                    }
                }
            }
        }
        self.file.release(pos, Some(reader));
        if let Some(e) = failure {
            return Err(e);
        }
        let done = pos.min(end) - begin.min(end);
        self.work.fetch_add(done, Ordering::Relaxed);
        Ok(status)
    }

    /// The byte offset of the next line.
    fn position(&self) -> Option<u64> {
        Some(self.file.position())
    }

    fn seek(&mut self, position: u64) -> Result<(), BoxError> {
        self.file.seek(position)
    }
}

/// CSV files whose header row names the fields of `T` (deserialized with
/// serde, so fields may come in any column order and `Option` fields may be
/// empty).
///
/// The path is a file, a directory (its files that do not start with `.`
/// or `_`) or a glob; every file has its own header. Files are split across
/// workers by byte range at line boundaries, so a quoted field must not hold
/// a line break. A row that does not parse stops the job with an error naming
/// the file, the line number, the field and the reason.
///
/// # Examples
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use weir::prelude::*;
///
/// #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
/// struct Click { user: String, ts: u64 }
///
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("clicks.csv");
/// std::fs::write(&path, "ts,user\n10,ann\n20,bob\n").unwrap();
///
/// let out = Collect::new();
/// Pipeline::new("clicks")
///     .source(Csv::<Click>::new(&path))
///     .sink(out.clone())
///     .run(Cluster::threads(1).quiet(true))
///     .unwrap();
/// assert_eq!(out.take(), vec![
///     Click { user: "ann".into(), ts: 10 },
///     Click { user: "bob".into(), ts: 20 },
/// ]);
///
/// std::fs::write(&path, "ts,user\n10,ann\nsoon,bob\n").unwrap();
/// let err = Pipeline::new("clicks")
///     .source(Csv::<Click>::new(&path))
///     .sink(Collect::new())
///     .run(Cluster::threads(1).quiet(true))
///     .unwrap_err();
/// let msg = err.to_string();
/// assert!(msg.contains("clicks.csv:3") && msg.contains("field `ts`"), "{msg}");
/// ```
pub struct Csv<T> {
    spec: FileSpec,
    delimiter: u8,
    _item: PhantomData<fn() -> T>,
}

impl<T: Data> Csv<T> {
    /// CSV from a file, a directory or a glob, comma-separated.
    pub fn new(path: impl AsRef<Path>) -> Self {
        Csv {
            spec: FileSpec::new(path.as_ref()),
            delimiter: b',',
            _item: PhantomData,
        }
    }

    /// Splits files into byte ranges (partitions) of `bytes` (default 1 MiB);
    /// the ranges are spread over the workers.
    pub fn split_size(mut self, bytes: u64) -> Self {
        self.spec.split = bytes.max(1);
        self
    }

    /// Uses `delimiter` between fields instead of a comma.
    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }
}

impl<T: Data> Source for Csv<T> {
    type Item = T;

    fn describe(&self) -> String {
        format!("csv({})", self.spec.path.display())
    }

    fn bounded(&self) -> bool {
        true
    }

    fn resumable(&self) -> bool {
        true
    }

    fn open(&self, ctx: &SourceContext) -> Result<Vec<Box<dyn PartitionReader<T>>>, SourceError> {
        open_csv(&self.spec, ctx, self.delimiter, |_, headers| {
            Ok(SerdeDecode {
                headers: headers.clone(),
                _item: PhantomData,
            })
        })
    }
}

/// Readers for every split of this worker, each decoding rows with the
/// decoder `make` gives for its file and header.
fn open_csv<T, D>(
    spec: &FileSpec,
    ctx: &SourceContext,
    delimiter: u8,
    make: impl Fn(&Path, &csv::ByteRecord) -> Result<D, SourceError>,
) -> Result<Vec<Box<dyn PartitionReader<T>>>, SourceError>
where
    T: 'static,
    D: CsvDecode<T>,
{
    let mut readers: Vec<Box<dyn PartitionReader<T>>> = Vec::new();
    let splits = spec.splits(ctx)?;
    let budget = open_budget();
    for split in splits {
        let headers = read_header(ctx.name(), &split.path, delimiter)?;
        let decoder = make(&split.path, &headers)?;
        readers.push(Box::new(Each(CsvReader::new(
            ctx, split, &budget, delimiter, decoder,
        ))));
    }
    Ok(readers)
}

/// Turns the CSV records of one file into records of a stream.
pub(crate) trait CsvDecode<T>: 'static {
    /// The record for `row` (a row after the header), or `Ok(None)` to skip
    /// it; an error is the reason the row does not parse.
    fn decode(&self, row: &csv::ByteRecord) -> Result<Option<T>, String>;
}

/// Decodes rows with serde, naming fields by the file's header.
struct SerdeDecode<T> {
    headers: csv::ByteRecord,
    _item: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + 'static> CsvDecode<T> for SerdeDecode<T> {
    fn decode(&self, row: &csv::ByteRecord) -> Result<Option<T>, String> {
        if row.len() != self.headers.len() {
            return Err(format!(
                "{} field(s) where the header has {}",
                row.len(),
                self.headers.len()
            ));
        }
        row.deserialize::<T>(Some(&self.headers))
            .map(Some)
            .map_err(|e| describe_csv_error(Some(&self.headers), &e))
    }
}

/// A CSV source whose rows are decoded by a decoder made per file from its
/// header (for the text spec's dynamic rows).
pub(crate) struct CsvRows<T, M> {
    spec: FileSpec,
    make: M,
    _item: PhantomData<fn() -> T>,
}

impl<T, M> CsvRows<T, M> {
    /// Comma-separated rows of `path` (a file, directory or glob).
    #[cfg_attr(not(feature = "cli"), allow(dead_code))]
    pub(crate) fn new(path: &Path, make: M) -> Self {
        CsvRows {
            spec: FileSpec::new(path),
            make,
            _item: PhantomData,
        }
    }
}

impl<T, M, D> Source for CsvRows<T, M>
where
    T: Data,
    M: Fn(&Path, &csv::ByteRecord) -> Result<D, SourceError> + Send + Sync + 'static,
    D: CsvDecode<T>,
{
    type Item = T;

    fn describe(&self) -> String {
        format!("csv({})", self.spec.path.display())
    }

    fn bounded(&self) -> bool {
        true
    }

    fn resumable(&self) -> bool {
        true
    }

    fn open(&self, ctx: &SourceContext) -> Result<Vec<Box<dyn PartitionReader<T>>>, SourceError> {
        open_csv(&self.spec, ctx, b',', &self.make)
    }
}

pub(crate) fn read_header(
    name: &str,
    path: &Path,
    delimiter: u8,
) -> Result<csv::ByteRecord, SourceError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .from_path(path)
        .map_err(|e| SourceError::Io {
            source_name: name.to_string(),
            path: path.to_path_buf(),
            error: std::io::Error::other(e.to_string()),
        })?;
    reader
        .byte_headers()
        .cloned()
        .map_err(|e| SourceError::BadRecord {
            source_name: name.to_string(),
            path: path.to_path_buf(),
            line: 1,
            offset: 0,
            reason: format!("cannot read the header row: {e}"),
        })
}

struct CsvReader<T, D> {
    /// The CSV reader over the split's open file, between reads only if the
    /// file stays open.
    csv: Option<csv::Reader<BufReader<File>>>,
    delimiter: u8,
    /// File offset of the CSV reader's byte 0.
    base: u64,
    /// File offset up to which progress was reported.
    reported: Option<u64>,
    skip_header: bool,
    file: SplitFile,
    decoder: D,
    record: csv::ByteRecord,
    work: Arc<AtomicU64>,
    _item: PhantomData<fn() -> T>,
}

impl<T, D> CsvReader<T, D> {
    fn new(
        ctx: &SourceContext,
        split: Split,
        budget: &OpenBudget,
        delimiter: u8,
        decoder: D,
    ) -> Self {
        CsvReader {
            csv: None,
            delimiter,
            base: 0,
            reported: None,
            skip_header: split.start == 0,
            file: SplitFile::new(ctx.name(), split, budget, ctx.bad_records()),
            decoder,
            record: csv::ByteRecord::new(),
            work: ctx.work_done(),
            _item: PhantomData,
        }
    }
}

/// A CSV error as a reason: the field (by the header, if known) and what is
/// wrong.
fn describe_csv_error(headers: Option<&csv::ByteRecord>, e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Deserialize { err, .. } => {
            let field = err.field().and_then(|i| {
                headers.and_then(|h| h.get(i as usize)).map(|h| {
                    format!(
                        "field `{}` (column {}): ",
                        String::from_utf8_lossy(h),
                        i + 1
                    )
                })
            });
            format!("{}{}", field.unwrap_or_default(), err.kind())
        }
        csv::ErrorKind::Utf8 { err, .. } => {
            format!("invalid UTF-8 in field {}", err.field() + 1)
        }
        _ => e.to_string(),
    }
}

impl<T: 'static, D: CsvDecode<T> + 'static> ReadEach<T> for CsvReader<T, D> {
    fn read_each(&mut self, max: usize, push: impl FnMut(T)) -> Result<ReadStatus, BoxError> {
        let mut csv = match self.csv.take() {
            Some(csv) => csv,
            None => {
                let (reader, pos) = self.file.take()?;
                self.base = pos;
                csv::ReaderBuilder::new()
                    .has_headers(false)
                    .delimiter(self.delimiter)
                    .flexible(true)
                    .from_reader(reader)
            }
        };
        let reported = *self.reported.get_or_insert(self.base);
        let result = self.read_with(&mut csv, push, max);
        let now = self.base + csv.position().byte();
        self.file.release(now, None);
        if self.file.keep() {
            self.csv = Some(csv);
        }
        let now = now.min(self.file.split.end);
        self.work
            .fetch_add(now.saturating_sub(reported), Ordering::Relaxed);
        self.reported = Some(reported.max(now));
        result
    }

    /// The byte offset of the next record.
    fn position(&self) -> Option<u64> {
        Some(self.file.position())
    }

    fn seek(&mut self, position: u64) -> Result<(), BoxError> {
        self.file.seek(position)?;
        self.csv = None;
        self.reported = None;
        // The header row is the first line of the file only.
        self.skip_header = position == 0;
        Ok(())
    }
}

impl<T, D: CsvDecode<T>> CsvReader<T, D> {
    fn read_with(
        &mut self,
        csv: &mut csv::Reader<BufReader<File>>,
        mut push: impl FnMut(T),
        max: usize,
    ) -> Result<ReadStatus, BoxError> {
        let end = self.file.split.end;
        let mut read = 0;
        while read < max {
            let at = self.base + csv.position().byte();
            if at >= end {
                return Ok(ReadStatus::Done);
            }
            let more = csv.read_byte_record(&mut self.record).map_err(|e| {
                bad_record(
                    &self.file.name,
                    &self.file.split.path,
                    at,
                    describe_csv_error(None, &e),
                )
            })?;
            if !more {
                return Ok(ReadStatus::Done);
            }
            if self.skip_header {
                self.skip_header = false;
                continue;
            }
            match self.decoder.decode(&self.record) {
                Ok(Some(record)) => {
                    push(record);
                    read += 1;
                }
                Ok(None) => {}
                Err(reason) => {
                    let next = self.base + csv.position().byte();
                    let raw = bytes_at(&self.file.split.path, at, next);
                    self.file.reject(at, &raw, reason)?;
                }
            }
        }
        Ok(ReadStatus::More)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Reads every split of `path` for `peers` workers with the JSON lines
    /// reader, to check each line is read exactly once.
    fn read_all_lines(files: &[PathBuf], split: u64, peers: usize) -> Vec<u64> {
        let mut all = Vec::new();
        // With an even number of workers no split may stay open: each is
        // reopened for every read.
        let budget = Rc::new(Cell::new(if peers.is_multiple_of(2) {
            0
        } else {
            MAX_OPEN
        }));
        for w in 0..peers {
            for split in splits_for("t", files, split, w, peers).unwrap() {
                let mut r = Each(LinesReader {
                    file: SplitFile::new("t", split, &budget, BadRecords::for_test()),
                    line: Vec::new(),
                    work: Arc::new(AtomicU64::new(0)),
                    parse: |l: &[u8], _| Ok(Some(serde_json::from_slice::<u64>(l).unwrap())),
                });
                let mut out = Vec::new();
                while r.read(&mut out, 100).unwrap() != ReadStatus::Done {}
                all.extend(out);
            }
        }
        all.sort();
        all
    }

    #[test]
    fn byte_range_splits_read_each_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("n.jsonl");
        let mut f = File::create(&path).unwrap();
        // Varying line lengths so that split points land everywhere.
        let n = 30_000u64;
        for i in 0..n {
            writeln!(f, "{}", i * (i % 13)).unwrap();
        }
        drop(f);
        let mut expected: Vec<u64> = (0..n).map(|i| i * (i % 13)).collect();
        expected.sort();
        let files = vec![path.clone()];
        for (peers, split) in [(1, SPLIT), (2, 1), (3, 1000), (7, 4096)] {
            let got = read_all_lines(&files, split, peers);
            assert_eq!(got, expected, "peers={peers} split={split}");
        }
    }

    #[test]
    fn splits_at_line_start_boundaries() {
        // Lines exactly as long as the splits put every split point at a
        // line start.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("exact.jsonl");
        let width = 64;
        let mut f = File::create(&path).unwrap();
        for i in 0..20u64 {
            let digits = i.to_string();
            writeln!(f, "{}{}", " ".repeat(width - 1 - digits.len()), digits).unwrap();
        }
        drop(f);
        let got = read_all_lines(std::slice::from_ref(&path), width as u64, 2);
        assert_eq!(got, (0..20).collect::<Vec<_>>());
    }

    #[test]
    fn directory_and_glob_listing() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.csv", "a.csv", ".hidden.csv", "_SUCCESS", "c.txt"] {
            std::fs::write(dir.path().join(name), "x\n").unwrap();
        }
        let listed = list_files("t", dir.path()).unwrap();
        let names: Vec<_> = listed
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["a.csv", "b.csv", "c.txt"]);
        let globbed = list_files("t", &dir.path().join("*.csv")).unwrap();
        assert_eq!(globbed.len(), 2);
        let none = list_files("t", &dir.path().join("*.parquet")).unwrap_err();
        assert!(none.to_string().contains("no input file matches"), "{none}");
        let missing = list_files("t", &dir.path().join("nope.csv")).unwrap_err();
        assert!(missing.to_string().contains("nope.csv"), "{missing}");
    }

    #[test]
    fn line_numbers_count_from_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.txt");
        std::fs::write(&path, "a\nbb\nccc\n").unwrap();
        assert_eq!(line_at(&path, 0), 1);
        assert_eq!(line_at(&path, 2), 2);
        assert_eq!(line_at(&path, 5), 3);
    }
}
