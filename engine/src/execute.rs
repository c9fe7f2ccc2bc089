use std::any::Any;
use std::cell::RefCell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::Duration;

use timely::worker::Worker;

use crate::connect;

use crate::error::WorkerFailure;
use crate::{BoxError, Cluster, EngineError};

/// How long an idle worker parks before it looks again at the failure flags.
const PARK: Duration = Duration::from_millis(20);

/// The slot where operators of one worker report an error that must stop the
/// job. The first error raised wins; the engine sees it after the current
/// step, stops every worker of the process, and returns it from
/// [`Cluster::execute`].
#[derive(Clone, Default)]
pub struct Failure(Rc<RefCell<Option<BoxError>>>);

impl Failure {
    /// Records `error` unless an earlier one is already recorded.
    pub fn raise(&self, error: impl Into<BoxError>) {
        let mut slot = self.0.borrow_mut();
        if slot.is_none() {
            *slot = Some(error.into());
        }
    }

    /// True once an error has been raised.
    pub fn is_raised(&self) -> bool {
        self.0.borrow().is_some()
    }

    fn take(&self) -> Option<BoxError> {
        self.0.borrow_mut().take()
    }
}

/// What a worker knows about its place in the cluster, handed to the dataflow
/// builder of [`Cluster::execute`].
pub struct WorkerContext {
    index: usize,
    peers: usize,
    process: usize,
    failure: Failure,
}

impl WorkerContext {
    /// Global index of this worker, `0..peers()`.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Number of workers in the whole cluster.
    pub fn peers(&self) -> usize {
        self.peers
    }

    /// Index of the process running this worker.
    pub fn process(&self) -> usize {
        self.process
    }

    /// The failure slot operators of this worker report errors to.
    pub fn failure(&self) -> &Failure {
        &self.failure
    }
}

/// Outcome of one local worker, as sent back to the launching thread.
enum Outcome<R> {
    Done(R),
    Failed(WorkerFailure),
    /// Stopped because another local worker failed.
    Aborted,
}

impl Cluster {
    /// Runs `build` on every worker of this process, then steps the dataflows
    /// it installed until they complete, and returns the local workers'
    /// results in worker order.
    ///
    /// `build` constructs dataflows on the worker; operators report errors
    /// through [`WorkerContext::failure`]. When any local worker fails (an
    /// error, or a panic), every local worker stops and the error, naming the
    /// worker, is returned. When a peer process disappears, timely's network
    /// threads poison the channels, the local workers fail with
    /// [`WorkerFailure::PeerLost`](crate::WorkerFailure::PeerLost), and this
    /// returns rather than hangs.
    ///
    /// # Errors
    ///
    /// [`EngineError::Config`] for bad settings, [`EngineError::Startup`] if
    /// the network cannot be set up, [`EngineError::Worker`] if a worker fails.
    ///
    /// # Examples
    ///
    /// ```
    /// use weir_engine::{Cluster, EngineError};
    ///
    /// let err = Cluster::threads(2)
    ///     .execute(|worker, ctx| {
    ///         if worker.index() == 1 {
    ///             ctx.failure().raise("bad row");
    ///         }
    ///         Ok(())
    ///     })
    ///     .unwrap_err();
    /// assert!(matches!(err, EngineError::Worker { worker: 1, .. }));
    /// assert!(err.to_string().contains("bad row"));
    /// ```
    pub fn execute<R, F>(&self, build: F) -> Result<Vec<R>, EngineError>
    where
        R: Send + 'static,
        F: Fn(&mut Worker, &WorkerContext) -> Result<R, BoxError> + Send + Sync + 'static,
    {
        let config = self.timely_config()?;
        let local = self.workers();
        let process = self.process();
        if self.processes() > 1 {
            exit_on_peer_loss(process);
        }
        let abort = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<(usize, Outcome<R>)>();
        let abort_in = Arc::clone(&abort);
        let run = move |worker: &mut Worker| {
            let ctx = WorkerContext {
                index: worker.index(),
                peers: worker.peers(),
                process,
                failure: Failure::default(),
            };
            let outcome =
                match catch_unwind(AssertUnwindSafe(|| drive(worker, &ctx, &build, &abort_in))) {
                    Ok(outcome) => outcome,
                    Err(payload) => Outcome::Failed(classify_panic(payload)),
                };
            if matches!(outcome, Outcome::Failed(_)) {
                abort_in.store(true, Ordering::SeqCst);
            }
            // The receiver only goes away if the launching thread is gone.
            let _ = tx.send((ctx.index, outcome));
        };
        let guards = if self.processes() > 1 {
            // weir connects the processes itself (see `connect`), then
            // hands the sockets to timely.
            use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
            use timely::communication::allocator::{AllocatorBuilder, ProcessBuilder};
            let secret = self.secret()?;
            let sockets = connect::connect(
                &self.addresses()?,
                process,
                self.connect_timeout(),
                secret.as_deref(),
            )?;
            let hooks = timely::communication::Hooks::default();
            let local_allocators =
                ProcessBuilder::new_typed_vector(local, hooks.refill.clone(), hooks.spill.clone());
            let (builders, comms) =
                initialize_networking_from_sockets(local_allocators, sockets, process, local, hooks)
                    .map_err(|e| EngineError::Startup(format!("process {process}: {e}")))?;
            let builders = builders.into_iter().map(AllocatorBuilder::Tcp).collect();
            timely::execute::execute_from(builders, Box::new(comms), config.worker, run)
        } else {
            timely::execute(config, run)
        }
        .map_err(EngineError::Startup)?;

        let mut results = Vec::with_capacity(local);
        let mut failure: Option<(usize, WorkerFailure)> = None;
        for _ in 0..local {
            let Ok((index, outcome)) = rx.recv() else {
                break;
            };
            match outcome {
                Outcome::Done(r) => results.push((index, r)),
                Outcome::Failed(cause) => {
                    let replace = match &failure {
                        None => true,
                        // Prefer the root cause over the echo of a lost peer.
                        Some((_, WorkerFailure::PeerLost(_))) => {
                            !matches!(cause, WorkerFailure::PeerLost(_))
                        }
                        Some(_) => false,
                    };
                    if replace {
                        failure = Some((index, cause));
                    }
                }
                Outcome::Aborted => {}
            }
        }
        if let Some((worker, cause)) = failure {
            // Joining would wait for timely's network threads, which wait for
            // peers that may never close their side: leave them to process exit.
            std::mem::forget(guards);
            return Err(EngineError::Worker {
                worker,
                process,
                cause,
            });
        }
        if results.len() < local {
            std::mem::forget(guards);
            return Err(EngineError::Worker {
                worker: process * local,
                process,
                cause: WorkerFailure::Panic("a worker thread ended without a result".into()),
            });
        }
        drop(guards);
        results.sort_by_key(|(i, _)| *i);
        Ok(results.into_iter().map(|(_, r)| r).collect())
    }
}

fn drive<R, F>(
    worker: &mut Worker,
    ctx: &WorkerContext,
    build: &F,
    abort: &AtomicBool,
) -> Outcome<R>
where
    F: Fn(&mut Worker, &WorkerContext) -> Result<R, BoxError>,
{
    let result = match build(worker, ctx) {
        Ok(r) => r,
        Err(e) => return Outcome::Failed(WorkerFailure::Error(e)),
    };
    loop {
        if let Some(e) = ctx.failure.take() {
            abort.store(true, Ordering::SeqCst);
            drop_all(worker);
            return Outcome::Failed(WorkerFailure::Error(e));
        }
        if abort.load(Ordering::SeqCst) {
            drop_all(worker);
            return Outcome::Aborted;
        }
        if !worker.has_dataflows() {
            return Outcome::Done(result);
        }
        worker.step_or_park(Some(PARK));
    }
}

/// Makes this process exit with a clear error when timely's network threads
/// lose a peer process.
///
/// timely's send and receive threads panic ("timely communication error")
/// when a connection closes without a clean shutdown; the panic poisons the
/// channels, the workers panic on them, and a second panic while unwinding
/// aborts the process with a core dump. The hook runs before any of that,
/// while the network thread starts to panic, reports the lost peer and exits
/// with status 1: the job cannot go on without the peer's workers.
fn exit_on_peer_loss(process: usize) {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let thread = std::thread::current();
            let network = thread
                .name()
                .is_some_and(|n| n.starts_with("timely:send") || n.starts_with("timely:recv"));
            let msg = panic_text(info.payload());
            if network && msg.contains("timely communication error") {
                eprintln!(
                    "weir: process {process} lost its connection to a peer process ({msg}); \
                     a process of the cluster failed or was killed, stopping"
                );
                std::process::exit(1);
            }
            previous(info);
        }));
    });
}

fn panic_text(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-text panic payload".to_string()
    }
}

fn drop_all(worker: &mut Worker) {
    for id in worker.installed_dataflows() {
        worker.drop_dataflow(id);
    }
}

fn classify_panic(payload: Box<dyn Any + Send>) -> WorkerFailure {
    let msg = panic_text(payload.as_ref());
    if msg.contains("timely communication error") || msg.contains("MergeQueue poisoned") {
        WorkerFailure::PeerLost(msg)
    } else {
        WorkerFailure::Panic(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_in_one_worker_stops_all_and_names_it() {
        let err = Cluster::threads(2)
            .execute(|worker, _| {
                if worker.index() == 1 {
                    panic!("boom in worker");
                }
                Ok(())
            })
            .unwrap_err();
        match err {
            EngineError::Worker {
                worker: 1,
                cause: WorkerFailure::Panic(msg),
                ..
            } => assert!(msg.contains("boom in worker")),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn error_from_build_is_returned() {
        let err = Cluster::threads(1)
            .execute(|_, _| -> Result<(), BoxError> { Err("cannot open x.csv".into()) })
            .unwrap_err();
        assert!(err.operator_error().is_some());
        assert!(err.to_string().contains("worker 0"));
        assert!(err.to_string().contains("cannot open x.csv"));
    }
}
