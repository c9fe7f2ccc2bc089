//! timely dataflow operators for weir.
//!
//! Each operator family is an extension trait on timely's `Stream`, in a file
//! of its own:
//!
//! - [`lifecycle`]: the one skeleton of every stateful operator (stash,
//!   capabilities, frontier) and the [`Lifecycle`] hooks each implements;
//! - [`aggregator`]: incremental aggregations ([`Aggregator`]);
//! - [`key_groups`]: routing keys to a fixed number of key groups, and key
//!   groups to workers by range ([`KeyByGroup`], [`ExchangeByKey`]);
//! - [`source`]: the partitioned source operator, holding one capability per
//!   source partition ([`partitioned_source`]);
//! - [`updating`]: keyed aggregation without windows, as a changelog
//!   ([`UpdatingFold`]; count, join and reduce on differential dataflow);
//! - [`keep`]: checkpoints of the differential stages (their input
//!   collection, kept on a side branch);
//! - [`checkpoint`]: checkpoint times, committing, source cuts;
//! - [`window`]: keyed event-time windows with incremental aggregation
//!   ([`WindowAggregate`](window::WindowAggregate));
//! - [`join`]: interval joins of keyed streams
//!   ([`IntervalJoin`](join::IntervalJoin));
//! - [`sink`]: the sink operator that writes batches and closes its writer
//!   when the input is complete ([`SinkOp`]).
#![deny(missing_docs)]

pub mod aggregator;
pub mod checkpoint;
pub mod join;
pub mod keep;
pub mod key_groups;
pub mod lifecycle;
pub mod map;
pub mod sink;
pub mod source;
pub mod updating;
pub mod window;

pub use aggregator::Aggregator;
pub use key_groups::{ExchangeByKey, KeyByGroup, KeyGroups};
pub use lifecycle::{Checkpoints, Emit, GroupStates, Lifecycle, Side, Start, Stateful};
pub use map::MapBatches;
pub use sink::{SinkOp, SinkWriter};
pub use source::{
    EventTime, PartitionCut, PartitionReader, ReadStatus, SourceCheckpoints, partitioned_source,
    partitioned_source_with_cuts, partitioned_source_with_time,
};
pub use updating::{ReduceChanges, Update, UpdatingCount, UpdatingFold, UpdatingJoin};

/// The timely timestamp of weir dataflows: the watermark, in milliseconds
/// since the Unix epoch (see DESIGN.md, "Time").
pub type Time = u64;

/// A timely stream of `D` records batched in vectors, timestamped by [`Time`].
pub type VecStream<'scope, D> = timely::dataflow::Stream<'scope, Time, Vec<D>>;
