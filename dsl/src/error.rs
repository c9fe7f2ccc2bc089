//! Errors of building and running pipelines.

use std::path::PathBuf;

pub use weir_engine::{BoxError, EngineError, WorkerFailure};

/// A mistake in the pipeline found before it runs; names the stage at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The pipeline has no sink, so it would compute nothing.
    #[error("pipeline `{pipeline}` has no sink: end at least one stream with `.sink(...)`")]
    NoSink {
        /// The pipeline name.
        pipeline: String,
    },
    /// A stage's output goes nowhere.
    #[error(
        "stage {stage} is not consumed by any later stage or sink; end it with `.sink(...)` or remove it"
    )]
    Dangling {
        /// The stage, as `kind #id (label)`.
        stage: String,
    },
    /// Two streams of different pipelines were combined.
    #[error("stage {stage} combines streams of different pipelines (`{left}` and `{right}`)")]
    ForeignStream {
        /// The combining stage.
        stage: String,
        /// The pipeline of the left stream.
        left: String,
        /// The pipeline of the right stream.
        right: String,
    },
    /// A stage was given an impossible parameter.
    #[error("stage {stage}: invalid `{field}`: {expected}")]
    InvalidParameter {
        /// The stage.
        stage: String,
        /// The parameter at fault.
        field: String,
        /// What is expected.
        expected: String,
    },
    /// The job's latest checkpoint was taken with another plan: restoring
    /// it into this one would be wrong.
    #[error(
        "the plan changed since the checkpoint {checkpoint}: {change}; run the plan it was taken with, or delete {dir} to start over"
    )]
    PlanChanged {
        /// The checkpoint's directory.
        checkpoint: String,
        /// The first stage that differs.
        change: String,
        /// The job's checkpoint directory.
        dir: String,
    },
}

/// A source could not be opened or a record could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// A path, glob or directory matched no file.
    #[error("source `{source_name}`: no input file matches `{pattern}`")]
    NoFiles {
        /// The source.
        source_name: String,
        /// The path, glob or directory given.
        pattern: String,
    },
    /// An I/O error opening or reading a file.
    #[error("source `{source_name}`: cannot read {}: {error}", path.display())]
    Io {
        /// The source.
        source_name: String,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        error: std::io::Error,
    },
    /// A message broker cannot be reached, or does not have what the
    /// source reads (a topic, a queue).
    #[error("source `{source_name}`: {reason}")]
    Broker {
        /// The source.
        source_name: String,
        /// What was tried, and what went wrong.
        reason: String,
    },
    /// A row that does not parse.
    #[error("source `{source_name}`: {}:{line} (byte {offset}): {reason}", path.display())]
    BadRecord {
        /// The source.
        source_name: String,
        /// The file (or `<stdin>`).
        path: PathBuf,
        /// 1-based line number of the row.
        line: u64,
        /// Byte offset of the row in the file.
        offset: u64,
        /// Why it does not parse.
        reason: String,
    },
}

/// A sink could not be opened or written.
#[derive(Debug, thiserror::Error)]
#[error("sink `{sink}`: {}: {error}", path.display())]
pub struct SinkError {
    /// The sink.
    pub sink: String,
    /// The file or directory (or `<stdout>`).
    pub path: PathBuf,
    /// What went wrong.
    #[source]
    pub error: std::io::Error,
}

/// Why [`Pipeline::run`](crate::Pipeline::run) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The pipeline is not valid; nothing ran.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The cluster could not start, or a worker failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The job's checkpoints could not be read, or restoring one failed.
    #[error("checkpoints: {0}")]
    Checkpoint(#[from] weir_engine::checkpoint::StoreError),
    /// The output a queue sink staged in the restored checkpoint could not
    /// be published (see [`Publisher`](crate::sinks::Publisher)); nothing
    /// ran.
    #[error("publishing the restored checkpoint's output: {0}")]
    Publish(crate::BoxError),
    /// The job was asked to stop (SIGINT, SIGTERM, a
    /// [`StopHandle`](weir_engine::StopHandle)) and has no checkpoints: its
    /// sources stopped reading and what they had read went through, so its
    /// output is that of the input read until then, partial. (With
    /// checkpoints a stop ends the run at a checkpoint and is not an error:
    /// see [`RunSummary::stopped`](weir_engine::RunSummary).)
    #[error("stopped{} before the end of its input: the output holds the results of what was read until then, partial", signal_name(*signal))]
    Stopped {
        /// The signal that asked (2: SIGINT, 15: SIGTERM), if one did.
        signal: Option<i32>,
        /// What the run did until it stopped.
        summary: Box<weir_engine::RunSummary>,
    },
}

/// ` by SIGINT` and the like, for messages.
fn signal_name(signal: Option<i32>) -> String {
    match signal {
        Some(2) => " by SIGINT".into(),
        Some(15) => " by SIGTERM".into(),
        Some(s) => format!(" by signal {s}"),
        None => String::new(),
    }
}

impl RunError {
    /// The source error that stopped the job, if one did.
    pub fn source_error(&self) -> Option<&SourceError> {
        match self {
            RunError::Engine(e) => e.operator_error()?.downcast_ref(),
            RunError::Plan(_)
            | RunError::Checkpoint(_)
            | RunError::Publish(_)
            | RunError::Stopped { .. } => None,
        }
    }

    /// The sink error that stopped the job, if one did.
    pub fn sink_error(&self) -> Option<&SinkError> {
        match self {
            RunError::Engine(e) => e.operator_error()?.downcast_ref(),
            RunError::Plan(_)
            | RunError::Checkpoint(_)
            | RunError::Publish(_)
            | RunError::Stopped { .. } => None,
        }
    }
}
