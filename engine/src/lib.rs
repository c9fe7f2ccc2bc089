//! The weir engine: cluster configuration, launching timely workers, error
//! propagation out of workers, and run metrics.
//!
//! Users normally reach this crate through `weir` (the DSL), which re-exports
//! [`Cluster`]. The DSL compiles a pipeline into a closure that builds a timely
//! dataflow on one worker; [`Cluster::execute`] runs that closure on every worker
//! of every process and turns any worker failure into an [`EngineError`].
//!
//! # Examples
//!
//! ```
//! use weir_engine::Cluster;
//!
//! let cluster = Cluster::try_parse_from(["job", "--workers", "2"]).unwrap();
//! assert_eq!(cluster.workers(), 2);
//! assert_eq!(cluster.total_workers(), 2);
//! let results = cluster
//!     .execute(|worker, _ctx| Ok(worker.index() * 10))
//!     .unwrap();
//! let mut results = results;
//! results.sort();
//! assert_eq!(results, vec![0, 10]);
//! ```
#![deny(missing_docs)]

pub mod checkpoint;
mod cluster;
mod connect;
mod error;
mod execute;
pub mod failpoint;
mod metrics;
mod process;
mod serve;
mod stages;
mod stop;

pub use cluster::{Cluster, SECRET_ENV};
pub use error::{BoxError, EngineError, WorkerFailure};
pub use execute::{Failure, WorkerContext};
pub use metrics::{
    CheckpointStats, CounterKind, Gauge, LATENCY_BUCKETS, Latencies, Metrics, NO_WATERMARK,
    Progress, RunSummary, Stopped,
};
pub use process::Usage;
pub use serve::{MetricsServer, process_state};
pub use stages::{QueueFigures, StageFigures, StageOf, StageSnapshot, Stages, log_stages};
pub use stop::StopHandle;

/// The timely crate weir runs on, re-exported for the operator and DSL crates.
pub use timely;
