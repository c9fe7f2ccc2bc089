//! What the metrics learn from the dataflow itself: when the job's
//! watermark moved (for result latencies), and process 0's view of the
//! whole cluster: once a second, the first worker of every other process
//! sends its process's dashboard state (what `GET /api/state` shows there)
//! to worker 0, through the dataflow, while the job's sources run; process
//! 0's dashboard adds them up ([`Metrics::set_peer`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use timely::container::CapacityContainerBuilder;
use timely::dataflow::Scope;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Concatenate;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use weir_engine::Metrics;
use weir_operators::{PartitionCut, Time, VecStream};

/// How often a process reports.
const EVERY: Duration = Duration::from_secs(1);

/// Builds, on this worker, the metrics' watch of the job: one operator
/// whose input frontier is the sources' (their cuts'), the least watermark
/// of every partition of the cluster. On the first worker of each process
/// it notes each move of that watermark in the process's [`Metrics`]
/// ([`Metrics::note_watermark`], for the sinks' result latencies) and, with
/// `share` (several processes) and on a process other than 0, sends its
/// process's state to worker 0 once a second while the sources run, which
/// keeps it ([`Metrics::set_peer`]). `workers`: worker threads per process.
pub(crate) fn watch<'s>(
    scope: Scope<'s, Time>,
    cuts: Vec<VecStream<'s, PartitionCut>>,
    metrics: Arc<Metrics>,
    workers: usize,
    share: bool,
) {
    let sources = scope.concatenate(cuts);
    let mut builder = OperatorBuilder::new("MetricsWatch".to_owned(), scope);
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
    let first_here = worker.is_multiple_of(workers.max(1));
    let reports_here = share && first_here && process > 0;
    let watching = Arc::clone(&metrics);
    builder.build(move |mut initial| {
        let activator = scope.activator_for(address);
        // Held only while this worker reports.
        let mut cap = initial.pop().filter(|_| reports_here);
        let mut last: Option<Instant> = None;
        move |frontiers| {
            input.for_each(|_, data| data.clear());
            let frontier = frontiers[0].frontier();
            if first_here {
                watching.note_watermark(frontier.first().copied().unwrap_or(u64::MAX));
            }
            if frontier.is_empty() {
                cap = None; // the sources are done: nothing more to report
            }
            let Some(at) = &cap else {
                return;
            };
            if last.is_none_or(|sent| sent.elapsed() >= EVERY) {
                last = Some(Instant::now());
                let state = weir_engine::process_state(&watching).to_string();
                output.activate().session(at).give((process, state));
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
