//! Checkpoint storage: immutable files per checkpoint, and a manifest,
//! written last, that makes a checkpoint complete.
//!
//! A checkpoint `id` is a set of files (each worker's state, each source's
//! positions) written once and never changed, and a [`Manifest`] listing
//! them with their lengths and CRC-32 checksums. Writing the manifest is
//! the commit: [`CheckpointStore::commit`] writes it to a temporary file,
//! syncs it, renames it into place and syncs the directory, so a crash
//! leaves either no manifest or a whole one. On restore,
//! [`CheckpointStore::latest`] takes the newest checkpoint whose manifest
//! and files are all present and intact, and names every newer one it
//! skipped and why (a torn or partial checkpoint, a truncated or altered
//! file). [`CheckpointStore::retain`] keeps the newest complete
//! checkpoints and deletes the rest.
//!
//! [`DirStore`] keeps checkpoints in a directory (one host, or a mount
//! shared by several); the trait is small so that an object store can
//! follow.
//!
//! # Examples
//!
//! ```
//! use weir_engine::checkpoint::{CheckpointStore, DirStore, Manifest};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let store = DirStore::new(dir.path());
//! let state = store.write(1, "worker-0.state", b"counts").unwrap();
//! store.commit(&Manifest::new("job", 7, 1, 5_000, 1, vec![state])).unwrap();
//!
//! let latest = store.latest("job").unwrap();
//! let manifest = latest.checkpoint.unwrap();
//! assert_eq!((manifest.id, manifest.time), (1, 5_000));
//! assert_eq!(store.read(1, &manifest.files[0]).unwrap(), b"counts");
//! assert!(latest.skipped.is_empty());
//! ```

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The version of the checkpoint format this build writes and reads.
pub const FORMAT: u32 = 3;

/// The id of a job's final checkpoint, committed when the job completes:
/// it holds no state, only the output staged since the last checkpoint.
pub const FINAL: u64 = u64::MAX;

/// The name of a checkpoint's manifest in its directory.
const MANIFEST: &str = "MANIFEST.json";

/// One file of a checkpoint, as its manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The file's name within the checkpoint.
    pub name: String,
    /// Its length in bytes.
    pub len: u64,
    /// The CRC-32 of its bytes.
    pub crc32: u32,
}

/// What a complete checkpoint holds; written last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The checkpoint format ([`FORMAT`] when written by this build).
    pub format: u32,
    /// The job's name.
    pub job: String,
    /// A fingerprint of the job's plan: a restore into a changed plan is an
    /// error rather than a wrong restore.
    pub plan: u64,
    /// The checkpoint's number, increasing over the job's life.
    pub id: u64,
    /// The checkpoint time: state as of every record before it.
    pub time: u64,
    /// How many workers wrote it.
    pub workers: usize,
    /// Its files.
    pub files: Vec<FileEntry>,
    /// The plan's stages, one line each (to name what changed when a
    /// restore finds another plan).
    #[serde(default)]
    pub stages: Vec<String>,
    /// Output staged in this checkpoint, published once it is committed.
    #[serde(default)]
    pub publish: Vec<Publish>,
    /// The length of every output file of the job once this checkpoint is
    /// published.
    #[serde(default)]
    pub outputs: Vec<OutputLen>,
    /// Whether the job stopped here on request: it took no checkpoint
    /// after this one and published nothing more, and a run of it resumes
    /// from here.
    #[serde(default)]
    pub stopped: bool,
    /// The run this checkpoint belongs to: drawn when a job starts from
    /// the beginning, kept by every run restored from one of its
    /// checkpoints. With the id it names the checkpoint to message queues,
    /// which outlive the checkpoints (see `weir::sinks::Publisher`).
    #[serde(default)]
    pub lineage: u64,
}

/// A file of staged output and where it goes: written at byte `at` of
/// `target`, which then ends after it. Publishing is idempotent: it can be
/// repeated after a crash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Publish {
    /// The staged file's name within the checkpoint.
    pub file: String,
    /// The output file.
    pub target: PathBuf,
    /// Where in it the staged bytes go.
    pub at: u64,
}

/// The committed length of one output file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputLen {
    /// The output file.
    pub path: PathBuf,
    /// Its length in bytes.
    pub len: u64,
}

impl Manifest {
    /// A manifest of the current [`FORMAT`].
    pub fn new(
        job: impl Into<String>,
        plan: u64,
        id: u64,
        time: u64,
        workers: usize,
        files: Vec<FileEntry>,
    ) -> Manifest {
        Manifest {
            format: FORMAT,
            job: job.into(),
            plan,
            id,
            time,
            workers,
            files,
            stages: Vec::new(),
            publish: Vec::new(),
            outputs: Vec::new(),
            stopped: false,
            lineage: 0,
        }
    }

    /// Whether this is a job's final checkpoint (the job completed).
    pub fn is_final(&self) -> bool {
        self.id == FINAL
    }

    /// The committed length of output `path`, if the job has written it.
    pub fn output_len(&self, path: &Path) -> Option<u64> {
        self.outputs.iter().find(|o| o.path == path).map(|o| o.len)
    }

    /// The total size of its files in bytes.
    pub fn bytes(&self) -> u64 {
        self.files.iter().map(|f| f.len).sum()
    }
}

/// The newest complete checkpoint, and why each newer one was skipped.
#[derive(Debug, Default)]
pub struct Latest {
    /// The newest checkpoint that is complete and intact, if any.
    pub checkpoint: Option<Manifest>,
    /// One line per newer checkpoint that was skipped, naming it and why.
    pub skipped: Vec<String>,
}

/// An error of checkpoint storage, naming the path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// Reading or writing failed.
    #[error("checkpoint storage {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A file is not what its manifest says, or a manifest does not parse.
    #[error("checkpoint storage {path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Where checkpoints are kept.
pub trait CheckpointStore: Send + Sync {
    /// Writes one immutable file of checkpoint `id` and returns its entry
    /// for the manifest. Several workers may write files of one checkpoint
    /// at once, each under its own name.
    ///
    /// # Errors
    ///
    /// The file cannot be written.
    fn write(&self, id: u64, name: &str, bytes: &[u8]) -> Result<FileEntry, StoreError>;

    /// Writes one file of checkpoint `id` without waiting for it to be
    /// durable: [`seal`](CheckpointStore::seal) makes it so before the
    /// manifest is written. Several workers may write at once, each under
    /// its own name.
    ///
    /// # Errors
    ///
    /// The file cannot be written.
    fn write_part(&self, id: u64, name: &str, bytes: &[u8]) -> Result<(), StoreError>;

    /// Makes every file written so far for checkpoint `id` durable and
    /// returns their entries for the manifest.
    ///
    /// # Errors
    ///
    /// A file cannot be read or synced.
    fn seal(&self, id: u64) -> Result<Vec<FileEntry>, StoreError>;

    /// Where a file of checkpoint `id` is written (its directory is
    /// created): for writers that stream a file there themselves, such as
    /// sinks staging output.
    ///
    /// # Errors
    ///
    /// The directory cannot be created.
    fn file_path(&self, id: u64, name: &str) -> Result<PathBuf, StoreError>;

    /// Deletes every checkpoint after `id` (every one, if `None`), oldest
    /// first, so that until the newest goes it stays the latest: a job
    /// restored from `id` takes the later ones again, and must not find
    /// files of an earlier attempt among them; a completed job that runs
    /// again starts from nothing.
    ///
    /// # Errors
    ///
    /// A checkpoint cannot be deleted.
    fn discard_after(&self, id: Option<u64>) -> Result<(), StoreError>;

    /// Reads a file of checkpoint `id`, checked against its entry.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or its length or checksum differ.
    fn read(&self, id: u64, entry: &FileEntry) -> Result<Vec<u8>, StoreError>;

    /// Checks a file of checkpoint `id` against its entry (length and
    /// checksum) without keeping it. By default it is read whole.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or its length or checksum differ.
    fn verify(&self, id: u64, entry: &FileEntry) -> Result<(), StoreError> {
        self.read(id, entry).map(|_| ())
    }

    /// Writes a file of checkpoint `id` into the local file `target` at
    /// byte `at` and cuts `target` right after it, durably. The file is
    /// not checked against its checksum again (a checkpoint is checked
    /// when it is sealed and when it is restored), only its length. By
    /// default it is read whole.
    ///
    /// # Errors
    ///
    /// The file cannot be read or has another length, or `target` cannot
    /// be written.
    fn copy_into(
        &self,
        id: u64,
        entry: &FileEntry,
        target: &Path,
        at: u64,
    ) -> Result<(), StoreError> {
        use std::os::unix::fs::FileExt;
        let bytes = self.read(id, entry)?;
        let file = open_target(target)?;
        file.write_all_at(&bytes, at)
            .and_then(|()| file.set_len(at + bytes.len() as u64))
            .and_then(|()| file.sync_data())
            .map_err(|e| io(target, e))
    }

    /// Makes checkpoint `manifest.id` complete by writing its manifest,
    /// durably and atomically, after all its files.
    ///
    /// # Errors
    ///
    /// The manifest cannot be written.
    fn commit(&self, manifest: &Manifest) -> Result<(), StoreError>;

    /// The newest complete, intact checkpoint of job `job`.
    ///
    /// # Errors
    ///
    /// The store cannot be listed. A damaged checkpoint is not an error: it
    /// is skipped and named in [`Latest::skipped`].
    fn latest(&self, job: &str) -> Result<Latest, StoreError>;

    /// Keeps the newest `keep` complete checkpoints (at least one) and
    /// deletes older ones, and incomplete ones older than the newest
    /// complete one (an incomplete newer one may be being written).
    ///
    /// # Errors
    ///
    /// A checkpoint cannot be deleted.
    fn retain(&self, keep: usize) -> Result<(), StoreError>;
}

/// Checkpoints in a directory: `chk-<id>/` per checkpoint, holding its
/// files and, once complete, `MANIFEST.json`.
#[derive(Debug, Clone)]
pub struct DirStore {
    dir: PathBuf,
}

impl DirStore {
    /// Checkpoints under `dir` (created when the first one is written).
    pub fn new(dir: impl AsRef<Path>) -> DirStore {
        DirStore {
            dir: dir.as_ref().to_path_buf(),
        }
    }

    /// The directory holding the checkpoints.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where writers that stream files into checkpoints (sinks staging
    /// output) keep the files they are writing; not part of any checkpoint.
    pub fn in_progress_dir(&self) -> PathBuf {
        self.dir.join("in-progress")
    }

    /// The directory of checkpoint `id`.
    pub fn checkpoint_dir(&self, id: u64) -> PathBuf {
        self.dir.join(format!("chk-{id:020}"))
    }

    /// The id of the newest checkpoint that has a manifest (is complete),
    /// without checking its files: cheap enough to poll, for a process
    /// that waits for checkpoints another one commits.
    ///
    /// # Errors
    ///
    /// The directory cannot be listed.
    pub fn newest_complete(&self) -> Result<Option<u64>, StoreError> {
        Ok(self
            .ids()?
            .into_iter()
            .find(|&id| self.checkpoint_dir(id).join(MANIFEST).exists()))
    }

    /// The newest complete checkpoint, if the job stopped at it on request
    /// ([`Manifest::stopped`]): its time.
    ///
    /// # Errors
    ///
    /// The directory cannot be listed, or the manifest read.
    pub fn stopped_at(&self) -> Result<Option<u64>, StoreError> {
        let Some(id) = self.newest_complete()? else {
            return Ok(None);
        };
        Ok(self.manifest(id)?.filter(|m| m.stopped).map(|m| m.time))
    }

    /// Notes that the output checkpoint `id` staged for `publisher` (a
    /// queue sink) is published: a file beside the checkpoint's own,
    /// written once the publisher is done.
    ///
    /// # Errors
    ///
    /// The note cannot be written.
    pub fn note_published(&self, id: u64, publisher: &str) -> Result<(), StoreError> {
        write_durably(&self.published_path(id, publisher), b"")
    }

    /// Whether [`note_published`](DirStore::note_published) noted that the
    /// output checkpoint `id` staged for `publisher` is published.
    pub fn is_published(&self, id: u64, publisher: &str) -> bool {
        self.published_path(id, publisher).exists()
    }

    fn published_path(&self, id: u64, publisher: &str) -> PathBuf {
        self.checkpoint_dir(id)
            .join(format!("published-{publisher}"))
    }

    /// Deletes checkpoint `id`, its manifest first: a half-deleted
    /// checkpoint is then incomplete, never complete with files missing.
    fn delete(&self, id: u64) -> Result<(), StoreError> {
        let dir = self.checkpoint_dir(id);
        remove_if_present(&dir.join(MANIFEST))?;
        remove_if_present(&dir)
    }

    /// The checkpoints present, complete or not, newest first.
    fn ids(&self) -> Result<Vec<u64>, StoreError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&self.dir, e)),
        };
        let mut ids = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io(&self.dir, e))?;
            let name = entry.file_name();
            let id = name
                .to_str()
                .and_then(|n| n.strip_prefix("chk-"))
                .and_then(|n| n.parse::<u64>().ok());
            if let Some(id) = id {
                ids.push(id);
            }
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    /// The manifest of checkpoint `id`, `None` if it has none (incomplete).
    fn manifest(&self, id: u64) -> Result<Option<Manifest>, StoreError> {
        let path = self.checkpoint_dir(id).join(MANIFEST);
        let text = match fs::read(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(&path, e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| StoreError::Corrupt {
                path,
                reason: format!("the manifest does not parse: {e}"),
            })
    }

    /// Why checkpoint `id` cannot be restored, if it cannot.
    fn check(&self, id: u64, job: &str) -> Result<Manifest, String> {
        let manifest = match self.manifest(id) {
            Ok(Some(m)) => m,
            Ok(None) => return Err("it has no manifest (it was not completed)".into()),
            Err(e) => return Err(e.to_string()),
        };
        if manifest.format != FORMAT {
            return Err(format!(
                "it has format {}, this build reads format {FORMAT}",
                manifest.format
            ));
        }
        if manifest.id != id {
            return Err(format!("its manifest names checkpoint {}", manifest.id));
        }
        if manifest.job != job {
            return Err(format!("it belongs to job `{}`, not `{job}`", manifest.job));
        }
        for entry in &manifest.files {
            self.verify(id, entry).map_err(|e| e.to_string())?;
        }
        Ok(manifest)
    }
}

impl CheckpointStore for DirStore {
    fn write(&self, id: u64, name: &str, bytes: &[u8]) -> Result<FileEntry, StoreError> {
        let dir = self.checkpoint_dir(id);
        fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        write_durably(&dir.join(name), bytes)?;
        Ok(FileEntry {
            name: name.to_string(),
            len: bytes.len() as u64,
            crc32: crc32fast::hash(bytes),
        })
    }

    fn write_part(&self, id: u64, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        let path = self.file_path(id, name)?;
        let tmp = tmp_path(&path);
        fs::write(&tmp, bytes).map_err(|e| io(&tmp, e))?;
        fs::rename(&tmp, &path).map_err(|e| io(&path, e))
    }

    fn seal(&self, id: u64) -> Result<Vec<FileEntry>, StoreError> {
        let dir = self.checkpoint_dir(id);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(&dir, e)),
        };
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| io(&dir, e))?;
            let Some(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name == MANIFEST || name.ends_with(".tmp") {
                continue;
            }
            let path = entry.path();
            let (len, crc32) = checksum(&path)?;
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(&path, e))?;
            files.push(FileEntry { name, len, crc32 });
        }
        files.sort_by(|a, b| a.name.cmp(&b.name));
        sync_dir(&dir)?;
        Ok(files)
    }

    fn file_path(&self, id: u64, name: &str) -> Result<PathBuf, StoreError> {
        let dir = self.checkpoint_dir(id);
        fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        Ok(dir.join(name))
    }

    fn discard_after(&self, id: Option<u64>) -> Result<(), StoreError> {
        for newer in self
            .ids()?
            .into_iter()
            .filter(|&i| id.is_none_or(|id| i > id))
        {
            self.delete(newer)?;
        }
        Ok(())
    }

    fn read(&self, id: u64, entry: &FileEntry) -> Result<Vec<u8>, StoreError> {
        let path = self.checkpoint_dir(id).join(&entry.name);
        let bytes = fs::read(&path).map_err(|e| io(&path, e))?;
        same_as_entry(&path, entry, bytes.len() as u64, crc32fast::hash(&bytes))?;
        Ok(bytes)
    }

    /// Checks the file in chunks: a large staged output is never read
    /// whole into memory.
    fn verify(&self, id: u64, entry: &FileEntry) -> Result<(), StoreError> {
        let path = self.checkpoint_dir(id).join(&entry.name);
        let (len, crc) = checksum(&path)?;
        same_as_entry(&path, entry, len, crc)
    }

    /// Copies with `std::io::copy`, which on Linux lets the kernel copy
    /// (`copy_file_range`) instead of reading the file into memory.
    fn copy_into(
        &self,
        id: u64,
        entry: &FileEntry,
        target: &Path,
        at: u64,
    ) -> Result<(), StoreError> {
        use std::io::{Seek, SeekFrom};
        let path = self.checkpoint_dir(id).join(&entry.name);
        let mut from = File::open(&path).map_err(|e| io(&path, e))?;
        let len = from.metadata().map_err(|e| io(&path, e))?.len();
        same_len(&path, entry, len)?;
        let mut to = open_target(target)?;
        to.seek(SeekFrom::Start(at)).map_err(|e| io(target, e))?;
        let copied = std::io::copy(&mut from, &mut to).map_err(|e| io(target, e))?;
        if copied != len {
            return Err(StoreError::Corrupt {
                path,
                reason: format!("{copied} bytes copied of {len}"),
            });
        }
        to.set_len(at + len)
            .and_then(|()| to.sync_data())
            .map_err(|e| io(target, e))
    }

    fn commit(&self, manifest: &Manifest) -> Result<(), StoreError> {
        let dir = self.checkpoint_dir(manifest.id);
        fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        let text = serde_json::to_vec_pretty(manifest).map_err(|e| StoreError::Corrupt {
            path: dir.join(MANIFEST),
            reason: format!("the manifest does not serialise: {e}"),
        })?;
        write_durably(&dir.join(MANIFEST), &text)?;
        // The checkpoint's directory entry itself must survive a crash.
        sync_dir(&self.dir)
    }

    fn latest(&self, job: &str) -> Result<Latest, StoreError> {
        let mut latest = Latest::default();
        for id in self.ids()? {
            match self.check(id, job) {
                Ok(manifest) => {
                    latest.checkpoint = Some(manifest);
                    break;
                }
                Err(why) => latest.skipped.push(format!(
                    "checkpoint {id} ({}) skipped: {why}",
                    self.checkpoint_dir(id).display()
                )),
            }
        }
        Ok(latest)
    }

    fn retain(&self, keep: usize) -> Result<(), StoreError> {
        let ids = self.ids()?;
        let complete: Vec<u64> = ids
            .iter()
            .copied()
            .filter(|&id| matches!(self.manifest(id), Ok(Some(_))))
            .collect();
        let Some(&oldest_kept) = complete.get(keep.max(1) - 1).or(complete.last()) else {
            return Ok(());
        };
        let newest = complete[0];
        for id in ids {
            let stale = id < oldest_kept || (id < newest && !complete.contains(&id));
            if stale {
                self.delete(id)?;
            }
        }
        Ok(())
    }
}

fn io(path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` through a temporary file: written, synced, then
/// renamed into place and the directory synced, so that `path` holds either
/// nothing or all of `bytes`.
fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = tmp_path(path);
    let mut file = File::create(&tmp).map_err(|e| io(&tmp, e))?;
    file.write_all(bytes).map_err(|e| io(&tmp, e))?;
    file.sync_all().map_err(|e| io(&tmp, e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| io(path, e))?;
    match path.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

/// A fingerprint of a plan given as its stages, one line each: equal for
/// equal plans in any build.
pub fn fingerprint(stages: &[String]) -> u64 {
    let mut hasher = crc32fast::Hasher::new();
    for stage in stages {
        hasher.update(stage.as_bytes());
        hasher.update(b"\n");
    }
    u64::from(hasher.finalize()) | ((stages.len() as u64) << 32)
}

/// Removes the file or directory (with what it holds) at `path`, if there
/// is one.
///
/// # Errors
///
/// It is there and cannot be removed.
pub fn remove_if_present(path: &Path) -> Result<(), StoreError> {
    let removed = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io(path, e)),
        _ => Ok(()),
    }
}

/// `path` with `.tmp` appended.
fn tmp_path(path: &Path) -> PathBuf {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    PathBuf::from(tmp)
}

/// Publishes the output staged in checkpoint `manifest` (see [`Publish`]):
/// each staged file is written at its place in its target, which is cut
/// after it, and synced; every other output file the job has written is
/// cut to its committed length (dropping output of a later checkpoint that
/// did not complete). Repeating it gives the same files.
///
/// # Errors
///
/// A staged file cannot be read (or is not what the manifest says), or a
/// target cannot be written.
pub fn publish(store: &dyn CheckpointStore, manifest: &Manifest) -> Result<(), StoreError> {
    let mut published = std::collections::HashSet::new();
    for p in &manifest.publish {
        let entry = manifest
            .files
            .iter()
            .find(|f| f.name == p.file)
            .ok_or_else(|| StoreError::Corrupt {
                path: p.target.clone(),
                reason: format!(
                    "the manifest publishes `{}`, which it does not list",
                    p.file
                ),
            })?;
        store.copy_into(manifest.id, entry, &p.target, p.at)?;
        published.insert(p.target.clone());
    }
    for out in manifest
        .outputs
        .iter()
        .filter(|o| !published.contains(&o.path))
    {
        let file = open_target(&out.path)?;
        file.set_len(out.len)
            .and_then(|()| file.sync_all())
            .map_err(|e| io(&out.path, e))?;
    }
    Ok(())
}

/// Opens an output file to publish into: created if missing, not cut.
fn open_target(path: &Path) -> Result<File, StoreError> {
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| io(path, e))
}

/// The length and CRC-32 of a file, read in chunks.
fn checksum(path: &Path) -> Result<(u64, u32), StoreError> {
    use std::io::Read;
    let mut file = File::open(path).map_err(|e| io(path, e))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(path, e)),
        };
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((len, hasher.finalize()))
}

/// Whether a file of `len` bytes has the length `entry` lists.
fn same_len(path: &Path, entry: &FileEntry, len: u64) -> Result<(), StoreError> {
    if len == entry.len {
        return Ok(());
    }
    Err(StoreError::Corrupt {
        path: path.to_path_buf(),
        reason: format!("{len} bytes where the manifest says {}", entry.len),
    })
}

/// Whether a file of `len` bytes with checksum `crc` is the one `entry`
/// lists.
fn same_as_entry(path: &Path, entry: &FileEntry, len: u64, crc: u32) -> Result<(), StoreError> {
    same_len(path, entry, len)?;
    if crc != entry.crc32 {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            reason: format!(
                "checksum {crc:08x} where the manifest says {:08x}",
                entry.crc32
            ),
        });
    }
    Ok(())
}

/// Syncs a directory, so that the entries renamed into it survive a crash.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with complete checkpoints `ids`, each with one file of state
    /// `state-<id>` and time `id * 1000`.
    fn store_with(ids: &[u64]) -> (tempfile::TempDir, DirStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path().join("checkpoints"));
        for &id in ids {
            let state = format!("state-{id}");
            let a = store.write(id, "worker-0", state.as_bytes()).unwrap();
            let b = store.write(id, "worker-1", b"").unwrap();
            store
                .commit(&Manifest::new("job", 1, id, id * 1000, 2, vec![a, b]))
                .unwrap();
        }
        (dir, store)
    }

    fn latest_id(store: &DirStore) -> Option<u64> {
        store.latest("job").unwrap().checkpoint.map(|m| m.id)
    }

    #[test]
    fn the_newest_complete_checkpoint_is_restored_with_its_files() {
        let (_dir, store) = store_with(&[1, 2, 3]);
        let latest = store.latest("job").unwrap();
        assert!(latest.skipped.is_empty(), "{:?}", latest.skipped);
        let m = latest.checkpoint.unwrap();
        assert_eq!((m.id, m.time, m.workers, m.bytes()), (3, 3000, 2, 7));
        assert_eq!(store.read(3, &m.files[0]).unwrap(), b"state-3");
        assert_eq!(store.read(3, &m.files[1]).unwrap(), b"");
    }

    #[test]
    fn an_empty_or_missing_directory_has_no_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path().join("nothing-yet"));
        assert_eq!(store.newest_complete().unwrap(), None);
        let latest = store.latest("job").unwrap();
        assert!(latest.checkpoint.is_none() && latest.skipped.is_empty());
        store.retain(2).unwrap();
    }

    #[test]
    fn a_checkpoint_without_its_manifest_is_skipped() {
        let (_dir, store) = store_with(&[1, 2]);
        // Checkpoint 3: its files are written, the crash came before the
        // manifest (or during it: only the temporary file exists).
        store.write(3, "worker-0", b"state-3").unwrap();
        fs::write(store.checkpoint_dir(3).join("MANIFEST.json.tmp"), b"{\"for").unwrap();
        let latest = store.latest("job").unwrap();
        assert_eq!(latest.checkpoint.map(|m| m.id), Some(2));
        assert_eq!(store.newest_complete().unwrap(), Some(2));
        assert_eq!(latest.skipped.len(), 1);
        assert!(
            latest.skipped[0].contains("checkpoint 3") && latest.skipped[0].contains("no manifest"),
            "{:?}",
            latest.skipped
        );
    }

    #[test]
    fn a_truncated_or_altered_file_makes_the_previous_checkpoint_the_latest() {
        let (_dir, store) = store_with(&[1, 2, 3]);
        let file = store.checkpoint_dir(3).join("worker-0");
        fs::write(&file, b"state").unwrap(); // truncated
        let latest = store.latest("job").unwrap();
        assert_eq!(latest.checkpoint.map(|m| m.id), Some(2));
        assert!(
            latest.skipped[0].contains("5 bytes where the manifest says 7"),
            "{:?}",
            latest.skipped
        );

        let file = store.checkpoint_dir(2).join("worker-0");
        fs::write(&file, b"state-X").unwrap(); // same length, other bytes
        let latest = store.latest("job").unwrap();
        assert_eq!(latest.checkpoint.map(|m| m.id), Some(1));
        assert_eq!(latest.skipped.len(), 2);
        assert!(
            latest.skipped[1].contains("checksum"),
            "{:?}",
            latest.skipped
        );
    }

    #[test]
    fn a_manifest_that_does_not_parse_or_of_another_format_or_job_is_skipped() {
        let (_dir, store) = store_with(&[1, 2, 3, 4]);
        fs::write(store.checkpoint_dir(4).join(MANIFEST), b"{ not json").unwrap();
        let mut m3 = store.manifest(3).unwrap().unwrap();
        m3.format = FORMAT + 1;
        fs::write(
            store.checkpoint_dir(3).join(MANIFEST),
            serde_json::to_vec(&m3).unwrap(),
        )
        .unwrap();
        let mut m2 = store.manifest(2).unwrap().unwrap();
        m2.job = "other".into();
        fs::write(
            store.checkpoint_dir(2).join(MANIFEST),
            serde_json::to_vec(&m2).unwrap(),
        )
        .unwrap();
        let latest = store.latest("job").unwrap();
        assert_eq!(latest.checkpoint.map(|m| m.id), Some(1));
        let why = latest.skipped.join("\n");
        assert!(why.contains("does not parse"), "{why}");
        assert!(why.contains(&format!("format {}", FORMAT + 1)), "{why}");
        assert!(why.contains("job `other`"), "{why}");
    }

    #[test]
    fn retain_keeps_the_newest_complete_and_any_newer_incomplete() {
        let (_dir, store) = store_with(&[1, 2, 3, 5]);
        store.write(4, "worker-0", b"abandoned").unwrap(); // older than 5, incomplete
        store.write(6, "worker-0", b"in progress").unwrap(); // newer, being written
        store.retain(2).unwrap();
        let left: Vec<u64> = store.ids().unwrap();
        assert_eq!(left, vec![6, 5, 3]);
        assert_eq!(latest_id(&store), Some(5));
        store.retain(0).unwrap(); // keeps at least one
        assert_eq!(store.ids().unwrap(), vec![6, 5]);
    }

    #[test]
    fn publishing_writes_staged_output_in_place_and_can_be_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path().join("chk"));
        let out = dir.path().join("out.txt");
        let other = dir.path().join("other.txt");
        std::fs::write(&out, "a\nb\nTORN").unwrap();
        std::fs::write(&other, "x\nLATER").unwrap();
        store.write_part(9, "sink-1-w0", b"c\n").unwrap();
        let files = store.seal(9).unwrap();
        assert_eq!(files.len(), 1);
        let mut m = Manifest::new("job", 1, 9, 9, 1, files);
        m.publish = vec![Publish {
            file: "sink-1-w0".into(),
            target: out.clone(),
            at: 4,
        }];
        m.outputs = vec![
            OutputLen {
                path: out.clone(),
                len: 6,
            },
            OutputLen {
                path: other.clone(),
                len: 2,
            },
        ];
        store.commit(&m).unwrap();
        for _ in 0..2 {
            publish(&store, &m).unwrap();
            assert_eq!(std::fs::read_to_string(&out).unwrap(), "a\nb\nc\n");
            assert_eq!(std::fs::read_to_string(&other).unwrap(), "x\n");
        }
        store.discard_after(None).unwrap();
        assert!(store.latest("job").unwrap().checkpoint.is_none());
    }
}
