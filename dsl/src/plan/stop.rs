//! Stopping a run on request (SIGINT, SIGTERM, a
//! [`StopHandle`](weir_engine::StopHandle)), on every process of the
//! cluster.
//!
//! Each worker runs a `StopWatch` operator while the job's sources are
//! live (its input is their cuts, whose frontier is theirs). When one of
//! the cluster's handles is asked, the worker broadcasts the request, so
//! every worker of every process learns of it, and raises the run's
//! process-wide handle. Then:
//! - without checkpoints, the sources end every partition where it is, the
//!   job drains what was read, and the run says its output is partial;
//! - with checkpoints, the next checkpoint committed is marked stopped in
//!   its manifest and is the last one committed (nor is the job's final
//!   output published); once a worker sees it in the store, its sources
//!   end, so every process completes its dataflow cleanly (no process
//!   exits while another still talks to it), and the next run resumes
//!   from that checkpoint.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::Scope;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::vec::Broadcast;
use timely::dataflow::operators::{Capability, Concatenate};
use weir_engine::StopHandle;
use weir_operators::source::PartitionCut;
use weir_operators::{Time, VecStream};

/// How often a worker looks at the stop handles.
const LOOK_EVERY: Duration = Duration::from_millis(50);

/// A run's stop, shared by the workers of one process.
pub(crate) struct StopState {
    /// The cluster's handles: its own, and the signals' if it handles them.
    asked: Vec<StopHandle>,
    /// Raised once this process knows the job stops (asked here, or
    /// broadcast by another process).
    pub(crate) process: StopHandle,
    /// Raised when the sources end where they are: at once without
    /// checkpoints, once the checkpoint stopped at is committed with.
    pub(crate) end_sources: StopHandle,
    /// Whether the job drains (no checkpoints) rather than stopping at a
    /// checkpoint.
    drain: bool,
    /// Whether this process has said that it stops.
    said: AtomicBool,
}

impl StopState {
    pub(crate) fn new(asked: Vec<StopHandle>, drain: bool) -> Self {
        StopState {
            asked,
            process: StopHandle::new(),
            end_sources: StopHandle::new(),
            drain,
            said: AtomicBool::new(false),
        }
    }

    /// The signal that asked this process to stop, if one did.
    pub(crate) fn signal(&self) -> Option<i32> {
        self.asked.iter().find_map(StopHandle::signal)
    }
}

/// Builds this worker's stop watch over the job's sources' `cuts`; with
/// checkpoints, `stopped` gives the checkpoint the job stopped at, once
/// one is committed.
pub(crate) fn watch<'s>(
    scope: Scope<'s, Time>,
    cuts: Vec<VecStream<'s, PartitionCut>>,
    state: Arc<StopState>,
    stopped: Option<Arc<dyn Fn() -> Option<Time> + Send + Sync>>,
) {
    let sources = scope.concatenate(cuts);
    let mut builder = OperatorBuilder::new("StopWatch".to_owned(), scope);
    let address = builder.operator_info().address;
    let mut input = builder.new_input(sources, Pipeline);
    // The requests go out at the watch's own capability, which no other
    // stage waits for: the output is connected to no input.
    let no_input: Vec<(usize, timely::progress::Antichain<Time>)> = Vec::new();
    let (output, requests) = builder.new_output_connection::<Vec<()>, _>(no_input);
    let mut output = OutputBuilder::<_, CapacityContainerBuilder<Vec<()>>>::from(output);
    let watching = Arc::clone(&state);
    builder.build(move |mut initial| {
        let activator = scope.activator_for(address);
        let mut cap: Option<Capability<Time>> = initial.pop();
        let mut sent = false;
        move |frontiers| {
            input.for_each(|_, data| data.clear());
            if cap.is_none() {
                return;
            }
            if frontiers[0].frontier().is_empty() {
                cap = None; // the sources are done: nothing left to stop
                return;
            }
            let state = &watching;
            if !sent && state.asked.iter().any(StopHandle::is_requested) {
                if let Some(cap) = &cap {
                    output.activate().session(cap).give(());
                }
                sent = true;
                state.process.request();
            }
            if state.process.is_requested() {
                learned(state, stopped.as_deref());
            }
            activator.activate_after(LOOK_EVERY);
        }
    });
    let mut builder = OperatorBuilder::new("StopRequests".to_owned(), scope);
    let mut requests = builder.new_input(requests.broadcast(), Pipeline);
    builder.build(move |_| {
        move |_| {
            requests.for_each(|_, data| {
                data.clear();
                state.process.request();
            });
        }
    });
}

/// What a worker does once its process knows the job stops: says so (once
/// per process), and ends the sources, at once without checkpoints, with
/// checkpoints once the checkpoint stopped at is committed.
fn learned(state: &StopState, stopped: Option<&(dyn Fn() -> Option<Time> + Send + Sync)>) {
    if !state.said.swap(true, Ordering::SeqCst) {
        match state.drain {
            true => eprintln!(
                "weir: stopping: the sources end where they are and what they read goes through (Ctrl-C again to stop at once)"
            ),
            false => {
                eprintln!("weir: stopping at the next checkpoint (Ctrl-C again to stop at once)")
            }
        }
    }
    if state.drain || stopped.is_some_and(|at| at().is_some()) {
        state.end_sources.request();
    }
}
