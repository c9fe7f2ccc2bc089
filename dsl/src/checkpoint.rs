//! Checkpoints of a pipeline: the setting ([`Checkpointing`]), and what a
//! run with them does (see ARCHITECTURE.md, "Checkpoints").
//!
//! A run with checkpoints restores the newest complete checkpoint of the
//! job in its directory, if there is one: it publishes that checkpoint's
//! output again (publishing is idempotent, so a crash between a checkpoint's
//! manifest and the end of its publishing loses and repeats nothing), every
//! stateful stage loads the key groups its worker owns, every source resumes
//! each of its partitions where the checkpoint left it, and sinks go on
//! after the output committed so far. Then checkpoints are taken about
//! every interval; each one's output is published once it is committed.
//! When the job completes, the rest of its output is committed as a final
//! checkpoint and published, and every other checkpoint is deleted; the
//! final one only names the job's output files. Running the job again then
//! starts from the beginning, with those files removed.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weir_engine::checkpoint::{
    CheckpointStore, DirStore, FINAL, Manifest, OutputLen, Publish, fingerprint, publish,
    remove_if_present,
};
use weir_engine::{Metrics, failpoint};
use weir_operators::checkpoint::{Commit, SourceCuts, decode_states, encode_states};
use weir_operators::{GroupStates, PartitionCut, Time};

use crate::BoxError;
use crate::error::{PlanError, RunError};
use crate::plan::{CommitHook, SharedPublisher};
use crate::sinks::CheckpointId;

/// Where and how often a pipeline takes checkpoints (see
/// [`Pipeline::checkpoint`](crate::Pipeline::checkpoint)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use weir::Checkpointing;
///
/// let c = Checkpointing::to("/tmp/job-checkpoints").every(Duration::from_millis(500)).keep(3);
/// assert_eq!(c.interval(), Duration::from_millis(500));
/// assert_eq!(c.kept(), 3);
/// assert_eq!(Checkpointing::to("x").interval(), Duration::from_secs(1));
/// assert_eq!(Checkpointing::to("x").kept(), 2);
/// assert!(!Checkpointing::to("x").is_fresh());
/// assert!(Checkpointing::to("x").fresh().is_fresh());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpointing {
    dir: PathBuf,
    interval: Duration,
    keep: usize,
    fresh: bool,
}

impl Checkpointing {
    /// Checkpoints in directory `dir` (one host, or a mount every process
    /// of the job shares), every second, keeping the last two.
    pub fn to(dir: impl AsRef<Path>) -> Self {
        Checkpointing {
            dir: dir.as_ref().to_path_buf(),
            interval: Duration::from_secs(1),
            keep: 2,
            fresh: false,
        }
    }

    /// Starts from the beginning on purpose instead of resuming: the job's
    /// checkpoints in the directory are deleted, and so is the output they
    /// published (the output files their manifest names), before the job
    /// runs. Only this run starts fresh; a restart after it resumes as
    /// usual if it is set up without `fresh`.
    pub fn fresh(mut self) -> Self {
        self.fresh = true;
        self
    }

    /// Whether the run starts fresh (see [`fresh`](Checkpointing::fresh)).
    pub fn is_fresh(&self) -> bool {
        self.fresh
    }

    /// About every `interval` of processing time (at least 1 ms).
    pub fn every(mut self, interval: Duration) -> Self {
        self.interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Keeps the last `n` complete checkpoints (at least 1).
    pub fn keep(mut self, n: usize) -> Self {
        self.keep = n.max(1);
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The interval between checkpoints.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How many complete checkpoints are kept.
    pub fn kept(&self) -> usize {
        self.keep
    }
}

/// The name of a part's file in a checkpoint: its kind (`state`, `cuts`,
/// `sink`), its stage and its worker.
pub(crate) fn part_file(kind: &str, node: usize, worker: usize) -> String {
    format!("{kind}-{node}-w{worker}")
}

/// The files of checkpoint `m` written by the parts of `kind` of stage
/// `node` (one per worker).
fn part_entries<'m>(
    m: &'m Manifest,
    kind: &str,
    node: usize,
) -> impl Iterator<Item = &'m weir_engine::checkpoint::FileEntry> + use<'m> {
    let prefix = format!("{kind}-{node}-w");
    m.files.iter().filter(move |f| f.name.starts_with(&prefix))
}

/// Every partition's cut in the `cuts` part files of a source.
fn decode_cuts<B: std::ops::Deref<Target = Vec<u8>>>(
    files: impl IntoIterator<Item = B>,
) -> Result<Vec<PartitionCut>, BoxError> {
    let mut cuts = Vec::new();
    for file in files {
        for (_, state) in decode_states(&file)? {
            cuts.push(SourceCuts::decode(&state)?);
        }
    }
    Ok(cuts)
}

/// A run with checkpoints, shared by the workers of one process.
pub(crate) struct Run {
    pub(crate) store: DirStore,
    job: String,
    plan: u64,
    stages: Vec<String>,
    pub(crate) interval: Duration,
    keep: usize,
    /// The checkpoint restored from, if any.
    pub(crate) restored: Option<Manifest>,
    /// Its files read so far, by name.
    files: Mutex<HashMap<String, Arc<Vec<u8>>>>,
    metrics: Arc<Metrics>,
    /// Sources told of each complete checkpoint, by stage.
    hooks: Vec<(usize, CommitHook)>,
    /// Queue sinks' publishers of their staged output, by stage.
    publishers: Vec<(usize, SharedPublisher)>,
    /// The run's lineage (see [`Manifest::lineage`]).
    lineage: u64,
    /// The newest complete checkpoint's time as last looked up, and when.
    newest: Arc<Mutex<Option<Looked>>>,
    /// Raised once the job is asked to stop (on this process): the next
    /// checkpoint committed is marked stopped, and is the last.
    stop: Option<weir_engine::StopHandle>,
    /// The checkpoint the job stopped at, once committed (by this process).
    stopped_at: Mutex<Option<Time>>,
}

/// What a run tells of each committed checkpoint: sources (by stage) where
/// their partitions stood, and queue sinks' publishers (by stage) their
/// staged output.
#[derive(Default)]
pub(crate) struct Hooks {
    pub(crate) committed: Vec<(usize, CommitHook)>,
    pub(crate) publishers: Vec<(usize, SharedPublisher)>,
}

/// A new lineage: a number no other run of the job is likely to draw.
fn new_lineage() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}

/// Publishes, with each of `publishers`, the output its sink staged in
/// checkpoint `m` unless the store notes it as published, and notes it;
/// with `ask` (after a restore, and for a job's end) the publisher is first
/// asked whether its queue already has it (a crash came between publishing
/// and the note).
fn publish_queues(
    store: &DirStore,
    m: &Manifest,
    publishers: &[(usize, SharedPublisher)],
    ask: bool,
) -> Result<(), BoxError> {
    for (node, publisher) in publishers {
        let name = format!("sink-{node}");
        if store.is_published(m.id, &name) {
            continue;
        }
        let at = CheckpointId {
            lineage: m.lineage,
            id: m.id,
        };
        let mut publisher = publisher.lock().unwrap_or_else(|p| p.into_inner());
        if !(ask && publisher.published(at)?) {
            let parts = part_entries(m, "sink", *node)
                .map(|entry| store.read(m.id, entry))
                .collect::<Result<Vec<_>, _>>()?;
            if parts.iter().any(|p| !p.is_empty()) {
                publisher.publish(at, &parts)?;
            }
            failpoint::hit("queue-published");
        }
        store.note_published(m.id, &name)?;
    }
    Ok(())
}

/// When the store was looked in, and the newest complete checkpoint's time
/// found there.
type Looked = (Instant, Option<Time>);

/// How often [`Run::completed_watch`] looks in the store at most.
const WATCH_EVERY: Duration = Duration::from_millis(20);

/// `look` (a look in the store), asked at most every [`WATCH_EVERY`]
/// through `cache`, which answers in between; with `found_stays`, a time
/// once found is answered from then on without looking again.
fn watch_store(
    cache: Arc<Mutex<Option<Looked>>>,
    found_stays: bool,
    look: impl Fn() -> Option<Time> + Send + Sync + 'static,
) -> Arc<dyn Fn() -> Option<Time> + Send + Sync> {
    Arc::new(move || {
        let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
        match *cache {
            Some((at, time)) if at.elapsed() < WATCH_EVERY || (found_stays && time.is_some()) => {
                time
            }
            _ => {
                let time = look();
                *cache = Some((Instant::now(), time));
                time
            }
        }
    })
}

impl Run {
    /// Opens a run of job `job` with plan `stages` in process `process` of a
    /// cluster of `workers` workers (saying on stderr which newer
    /// checkpoints it skipped and, unless `quiet`, what it restores): finds the checkpoint to restore and, on
    /// process 0, publishes it again (or, if the job had completed, removes
    /// its output files and its checkpoints: it runs again from the start).
    ///
    /// # Errors
    ///
    /// The directory cannot be read, the plan changed since the checkpoint,
    /// or publishing failed.
    pub(crate) fn open(
        c: &Checkpointing,
        job: &str,
        stages: Vec<String>,
        cluster: &weir_engine::Cluster,
        metrics: Arc<Metrics>,
        hooks: Hooks,
    ) -> Result<Run, RunError> {
        let (process, quiet) = (cluster.process(), cluster.is_quiet());
        let workers = cluster.workers() * cluster.processes();
        let store = DirStore::new(&c.dir);
        let latest = store.latest(job)?;
        // A damaged checkpoint is worth a warning even in a quiet run.
        for skipped in &latest.skipped {
            eprintln!("weir: warning: {skipped}");
        }
        let mut restored = latest.checkpoint;
        if let Some(m) = restored.as_ref().filter(|m| m.is_final() || c.fresh) {
            // The job completed (or starts fresh on purpose): it runs again
            // from the start, and its output files (including any this run
            // will not write, such as part files of workers it does not
            // have) start empty.
            if c.fresh && !quiet && process == 0 && !m.is_final() {
                eprintln!(
                    "weir: job `{job}`: starting fresh, discarding the checkpoint at {} ({})",
                    m.time,
                    store.checkpoint_dir(m.id).display()
                );
            }
            if process == 0 {
                for output in &m.outputs {
                    remove_if_present(&output.path)?;
                }
                store.discard_after(None)?;
            }
            restored = None;
        }
        if process == 0 {
            // Checkpoints after the one restored were not completed: the
            // run takes them again, and must not mix in their files.
            store.discard_after(restored.as_ref().map(|m| m.id))?;
            remove_if_present(&store.in_progress_dir())?;
        }
        if let Some(m) = &restored {
            if m.stages != stages {
                return Err(PlanError::PlanChanged {
                    checkpoint: store.checkpoint_dir(m.id).display().to_string(),
                    change: plan_change(&m.stages, &stages),
                    dir: c.dir.display().to_string(),
                }
                .into());
            }
            if process == 0 {
                publish(&store, m)?;
                publish_queues(&store, m, &hooks.publishers, true).map_err(RunError::Publish)?;
                failpoint::hit("restore-published");
            }
            let restoring = format!(
                "the checkpoint at {} ({}), taken on {} workers, onto {workers}",
                m.time,
                store.checkpoint_dir(m.id).display(),
                m.workers
            );
            if !quiet {
                eprintln!("weir: job `{job}`: restoring {restoring}");
            }
            metrics.checkpointing(Some(restoring));
        } else {
            metrics.checkpointing(None);
        }
        let lineage = restored.as_ref().map_or_else(new_lineage, |m| m.lineage);
        Ok(Run {
            store,
            job: job.to_string(),
            plan: fingerprint(&stages),
            stages,
            interval: c.interval,
            keep: c.keep,
            restored,
            files: Mutex::new(HashMap::new()),
            metrics,
            hooks: hooks.committed,
            publishers: hooks.publishers,
            lineage,
            newest: Arc::default(),
            stop: None,
            stopped_at: Mutex::new(None),
        })
    }

    /// A function giving the time of the newest complete checkpoint of the
    /// run (`Time::MAX` once the final one is), looked up in the store at
    /// most every 20 ms, so that every process learns of the checkpoints
    /// process 0 commits. A store that cannot be read counts as no newer
    /// checkpoint.
    pub(crate) fn completed_watch(&self) -> Arc<dyn Fn() -> Option<Time> + Send + Sync> {
        let store = self.store.clone();
        watch_store(Arc::clone(&self.newest), false, move || {
            let id = store.newest_complete().ok().flatten()?;
            Some(if id == FINAL { Time::MAX } else { id })
        })
    }

    /// Whether the job's final checkpoint is committed, waiting up to
    /// `timeout` for it (another process may be committing it).
    pub(crate) fn await_final(&self, timeout: Duration) -> bool {
        let started = Instant::now();
        loop {
            if let Ok(Some(FINAL)) = self.store.newest_complete() {
                return true;
            }
            if started.elapsed() >= timeout {
                return false;
            }
            std::thread::sleep(WATCH_EVERY);
        }
    }

    /// Stops at the first checkpoint committed once `stop` is asked.
    pub(crate) fn with_stop(mut self, stop: weir_engine::StopHandle) -> Self {
        self.stop = Some(stop);
        self
    }

    /// The checkpoint the job stopped at on request, as the store says
    /// (the process that commits may be another), looked up at most every
    /// 20 ms.
    pub(crate) fn stopped_watch(&self) -> Arc<dyn Fn() -> Option<Time> + Send + Sync> {
        let store = self.store.clone();
        watch_store(Arc::default(), true, move || {
            store.stopped_at().ok().flatten()
        })
    }

    /// Tells each hooked source where its partitions stood in checkpoint
    /// `manifest`; a failure is a warning (the job's positions are in its
    /// checkpoints).
    fn tell_sources(&self, manifest: &Manifest) {
        for (node, hook) in &self.hooks {
            let told = part_entries(manifest, "cuts", *node)
                .map(|entry| self.store.read(manifest.id, entry))
                .collect::<Result<Vec<_>, _>>()
                .map_err(BoxError::from)
                .and_then(|files| decode_cuts(files.iter()))
                .and_then(|cuts| {
                    let positions: Vec<(usize, u64)> = cuts
                        .iter()
                        .filter_map(|c| Some((c.partition, c.position?)))
                        .collect();
                    hook(&positions)
                });
            if let Err(e) = told {
                eprintln!(
                    "weir: warning: checkpoint at {}: stage #{node} could not commit its positions: {e}",
                    manifest.time
                );
            }
        }
    }

    /// The checkpoint time restored from.
    pub(crate) fn restored_at(&self) -> Option<Time> {
        self.restored.as_ref().map(|m| m.time)
    }

    /// The committed length of output file `path` in the checkpoint
    /// restored from.
    pub(crate) fn committed_len(&self, path: &Path) -> Option<u64> {
        self.restored.as_ref().and_then(|m| m.output_len(path))
    }

    /// The restored checkpoint's files of `kind` for stage `node`, from
    /// every worker that wrote one.
    fn restored_files(&self, kind: &str, node: usize) -> Result<Vec<Arc<Vec<u8>>>, BoxError> {
        let Some(m) = &self.restored else {
            return Ok(Vec::new());
        };
        let mut files = self.files.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for entry in part_entries(m, kind, node) {
            if let Some(bytes) = files.get(&entry.name) {
                out.push(Arc::clone(bytes));
                continue;
            }
            let bytes = Arc::new(self.store.read(m.id, entry)?);
            files.insert(entry.name.clone(), Arc::clone(&bytes));
            out.push(bytes);
        }
        Ok(out)
    }

    /// The restored state of the parts of `kind` of stage `node`: the key
    /// groups `owns` says this worker owns.
    pub(crate) fn groups(
        &self,
        kind: &str,
        node: usize,
        owns: impl Fn(u32) -> bool,
    ) -> Result<GroupStates, BoxError> {
        let mut groups = Vec::new();
        for file in self.restored_files(kind, node)? {
            groups.extend(decode_states(&file)?.into_iter().filter(|(g, _)| owns(*g)));
        }
        Ok(groups)
    }

    /// Where every partition of source `node` stood at the restored
    /// checkpoint, with its time.
    pub(crate) fn cuts(&self, node: usize) -> Result<Option<(Time, Vec<PartitionCut>)>, BoxError> {
        let Some(at) = self.restored_at() else {
            return Ok(None);
        };
        let cuts = decode_cuts(self.restored_files("cuts", node)?)?;
        Ok(Some((at, cuts)))
    }

    /// Saves one part's state for the checkpoint at `at`.
    pub(crate) fn save(&self, at: Time, file: &str, states: &GroupStates) -> Result<(), BoxError> {
        let bytes = encode_states(states)?;
        self.store.write_part(at, file, &bytes)?;
        failpoint::hit("checkpoint-state-saved");
        Ok(())
    }

    /// Commits a checkpoint (on worker 0): seals its files, writes its
    /// manifest, publishes its output into `targets` (each staged file's
    /// output file) at the lengths in `outputs`, which it updates, and
    /// keeps the newest checkpoints. The final one is deleted, with every
    /// other, once published.
    pub(crate) fn commit(
        &self,
        step: Commit,
        workers: usize,
        targets: &[(String, PathBuf)],
        outputs: &mut BTreeMap<PathBuf, u64>,
    ) -> Result<(), BoxError> {
        let started = Instant::now();
        if self.stopped().is_some() {
            // The job stopped at a checkpoint: nothing after it is kept.
            return Ok(());
        }
        let (id, time) = match step {
            Commit::Checkpoint(at) => (at, at),
            Commit::Final => (FINAL, Time::MAX),
        };
        let stopping =
            step != Commit::Final && self.stop.as_ref().is_some_and(|s| s.is_requested());
        let files = self.store.seal(id)?;
        let mut manifest = Manifest::new(&self.job, self.plan, id, time, workers, files);
        manifest.stopped = stopping;
        manifest.lineage = self.lineage;
        for (file, target) in targets {
            let Some(entry) = manifest.files.iter().find(|f| &f.name == file) else {
                continue;
            };
            let at = outputs.entry(target.clone()).or_insert(0);
            manifest.publish.push(Publish {
                file: file.clone(),
                target: target.clone(),
                at: *at,
            });
            *at += entry.len;
        }
        manifest.outputs = outputs
            .iter()
            .map(|(path, len)| OutputLen {
                path: path.clone(),
                len: *len,
            })
            .collect();
        manifest.stages = self.stages.clone();
        if manifest.is_final() {
            // Queue sinks publish the job's end before its manifest: a
            // final manifest means the job completed, and the next run
            // starts from the beginning. A crash in between restores the
            // last checkpoint, and the end is published again under the
            // same id unless the queue has it (`Publisher::published`).
            publish_queues(&self.store, &manifest, &self.publishers, true)?;
        }
        self.store.commit(&manifest)?;
        failpoint::hit(match manifest.is_final() {
            true => "final-manifest-written",
            false => "checkpoint-manifest-written",
        });
        publish(&self.store, &manifest)?;
        if !manifest.is_final() {
            publish_queues(&self.store, &manifest, &self.publishers, false)?;
        }
        failpoint::hit("checkpoint-published");
        if manifest.is_final() {
            // Only the final manifest stays: it names the job's outputs.
            self.store.retain(1)?;
            remove_if_present(&self.store.in_progress_dir())?;
        } else {
            self.tell_sources(&manifest);
            self.store.retain(self.keep)?;
            self.metrics
                .checkpoint_committed(time, manifest.bytes(), started.elapsed());
        }
        if stopping {
            *self.stopped_at.lock().unwrap_or_else(|p| p.into_inner()) = Some(time);
        }
        Ok(())
    }

    /// The checkpoint this process committed as the one the job stopped at.
    pub(crate) fn stopped(&self) -> Option<Time> {
        *self.stopped_at.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The committed output lengths a committer starts from: those of the
    /// restored checkpoint.
    pub(crate) fn outputs(&self) -> BTreeMap<PathBuf, u64> {
        self.restored
            .iter()
            .flat_map(|m| &m.outputs)
            .map(|o| (o.path.clone(), o.len))
            .collect()
    }
}

/// Commits a run's checkpoints (on worker 0) on a thread of its own, in
/// order, so that sealing, writing the manifest and publishing output never
/// stop the dataflow: worker 0 hands each step over through a short queue
/// (waiting only when the thread is that many steps behind), learns of an
/// error at its next step, and waits for the thread at the job's end.
pub(crate) struct Committer {
    /// What the thread needs, until it is started (at the first step).
    idle: Option<(Arc<Run>, usize, Targets)>,
    steps: Option<std::sync::mpsc::SyncSender<Commit>>,
    errors: Option<std::sync::mpsc::Receiver<BoxError>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Each staged output file of a job, and the file it is published into.
pub(crate) type Targets = Vec<(String, PathBuf)>;

/// Steps a committer thread may be behind before worker 0 waits for it.
const COMMITS_QUEUED: usize = 4;

impl Committer {
    /// A committer of `run`'s checkpoints taken on `workers` workers, which
    /// publishes each staged output file into its target in `targets`.
    pub(crate) fn new(run: Arc<Run>, workers: usize, targets: Targets) -> Self {
        Committer {
            idle: Some((run, workers, targets)),
            steps: None,
            errors: None,
            thread: None,
        }
    }

    /// Starts the thread, if it is not running yet.
    fn start(&mut self) -> Result<(), BoxError> {
        let Some((run, workers, targets)) = self.idle.take() else {
            return Ok(());
        };
        let (steps, todo) = std::sync::mpsc::sync_channel::<Commit>(COMMITS_QUEUED);
        let (failed, errors) = std::sync::mpsc::channel::<BoxError>();
        let thread = std::thread::Builder::new()
            .name("weir-commit".into())
            .spawn(move || {
                let mut outputs = run.outputs();
                for step in todo {
                    if let Err(e) = run.commit(step, workers, &targets, &mut outputs) {
                        let _ = failed.send(e);
                        return;
                    }
                }
            })?;
        self.steps = Some(steps);
        self.errors = Some(errors);
        self.thread = Some(thread);
        Ok(())
    }

    /// The error the thread stopped at, if it did.
    fn failed(&self) -> Option<BoxError> {
        self.errors.as_ref().and_then(|e| e.try_recv().ok())
    }

    /// Hands `step` to the thread: a checkpoint is committed in the
    /// background; the job's end ([`Commit::Final`]) is waited for.
    ///
    /// # Errors
    ///
    /// An earlier step failed, or (for the final step) this one did.
    pub(crate) fn step(&mut self, step: Commit) -> Result<(), BoxError> {
        self.start()?;
        // A thread that failed has stopped taking steps: the send fails,
        // and its error is what is returned.
        let sent = self.steps.as_ref().is_some_and(|s| s.send(step).is_ok());
        if step == Commit::Final || !sent {
            self.finish();
        }
        match self.failed() {
            Some(e) => Err(e),
            None if !sent => Err("the commit thread stopped".into()),
            None => Ok(()),
        }
    }

    /// Lets the thread finish the steps it was given, and waits for it.
    fn finish(&mut self) {
        self.steps = None;
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            eprintln!("weir: the checkpoint commit thread panicked");
        }
    }
}

impl Drop for Committer {
    /// A job that stops early still completes the commits it started: a
    /// checkpoint handed over is complete in every part.
    fn drop(&mut self) {
        self.finish();
    }
}

/// How plan `now` differs from plan `was`, naming the first stage that does.
fn plan_change(was: &[String], now: &[String]) -> String {
    for (i, (a, b)) in was.iter().zip(now).enumerate() {
        if a != b {
            return format!("stage #{i} was `{a}` and is now `{b}`");
        }
    }
    match (was.get(now.len()), now.get(was.len())) {
        (Some(removed), _) => format!("stage `{removed}` was removed"),
        (_, Some(added)) => format!("stage `{added}` was added"),
        _ => "the job's name changed".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_change_names_the_first_stage_that_differs() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let was = s(&["#0 source a", "#1 map <- #0", "#2 sink b <- #1"]);
        let changed = s(&["#0 source a", "#1 filter <- #0", "#2 sink b <- #1"]);
        assert_eq!(
            plan_change(&was, &changed),
            "stage #1 was `#1 map <- #0` and is now `#1 filter <- #0`"
        );
        assert_eq!(
            plan_change(&was, &was[..2]),
            "stage `#2 sink b <- #1` was removed"
        );
        let mut longer = was.clone();
        longer.push("#3 sink c <- #1".into());
        assert_eq!(
            plan_change(&was, &longer),
            "stage `#3 sink c <- #1` was added"
        );
    }
}
