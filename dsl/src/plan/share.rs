//! Process 0's view of the whole cluster: once a second, the first worker
//! of every other process sends its process's dashboard state (what
//! `GET /api/state` shows there) to worker 0, through the dataflow, while
//! the job's sources run; process 0's dashboard adds them up
//! ([`Metrics::set_peer`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::Concatenate;
use timely::dataflow::Scope;
use weir_engine::Metrics;
use weir_operators::{PartitionCut, Time, VecStream};

/// How often a process reports.
const EVERY: Duration = Duration::from_secs(1);

/// Builds, on this worker, the sending and the gathering of process
/// states: `cuts` are the sources' cuts (the reports stop once the sources
/// are done, so they never hold the job back), `workers` the worker
/// threads per process.
pub(crate) fn share<'s>(
    scope: Scope<'s, Time>,
    cuts: Vec<VecStream<'s, PartitionCut>>,
    metrics: Arc<Metrics>,
    workers: usize,
) {
    let sources = scope.concatenate(cuts);
    let mut builder = OperatorBuilder::new("MetricsShare".to_owned(), scope);
    let address = builder.operator_info().address;
    let mut input = builder.new_input(sources, Pipeline);
    // Reports go out at the operator's own capability, which no stage
    // waits for: the output is connected to no input.
    let no_input: Vec<(usize, timely::progress::Antichain<Time>)> = Vec::new();
    let (output, reports) = builder.new_output_connection::<Vec<(usize, String)>, _>(no_input);
    let mut output =
        OutputBuilder::<_, CapacityContainerBuilder<Vec<(usize, String)>>>::from(output);
    let worker = scope.index();
    let process = worker / workers.max(1);
    let reports_here = worker.is_multiple_of(workers.max(1)) && process > 0;
    let sending = Arc::clone(&metrics);
    builder.build(move |mut initial| {
        let activator = scope.activator_for(address);
        let mut cap = initial.pop();
        let mut last: Option<Instant> = None;
        move |frontiers| {
            input.for_each(|_, data| data.clear());
            if cap.is_none() {
                return;
            }
            if frontiers[0].frontier().is_empty() {
                cap = None;
                return;
            }
            if !reports_here {
                cap = None;
                return;
            }
            if last.is_none_or(|at| at.elapsed() >= EVERY) {
                last = Some(Instant::now());
                let state = weir_engine::process_state(&sending).to_string();
                if let Some(cap) = &cap {
                    output.activate().session(cap).give((process, state));
                }
            }
            activator.activate_after(EVERY);
        }
    });
    let mut builder = OperatorBuilder::new("MetricsGather".to_owned(), scope);
    let mut reports = builder.new_input(reports, Exchange::new(|_: &(usize, String)| 0));
    builder.build(move |_| {
        move |_| {
            reports.for_each(|_, data| {
                for (process, state) in data.drain(..) {
                    metrics.set_peer(process, &state);
                }
            });
        }
    });
}

/// Builds, on this worker, the notes of when the job's watermark moved:
/// an operator whose input frontier is the sources' (their cuts'), the
/// least watermark of every partition of the cluster; the first worker of
/// each process notes each move in its process's [`Metrics`]
/// ([`Metrics::note_watermark`]), so that sinks can tell how long a result
/// took from the watermark passing its time.
pub(crate) fn timeline<'s>(
    scope: Scope<'s, Time>,
    cuts: Vec<VecStream<'s, PartitionCut>>,
    metrics: Arc<Metrics>,
    workers: usize,
) {
    let sources = scope.concatenate(cuts);
    let notes = scope.index().is_multiple_of(workers.max(1));
    let mut builder = OperatorBuilder::new("WatermarkTimeline".to_owned(), scope);
    let mut input = builder.new_input(sources, Pipeline);
    builder.build(move |_| {
        move |frontiers| {
            input.for_each(|_, data| data.clear());
            if notes {
                let frontier = frontiers[0].frontier();
                metrics.note_watermark(frontier.first().copied().unwrap_or(u64::MAX));
            }
        }
    });
}
