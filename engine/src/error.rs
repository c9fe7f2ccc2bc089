use std::fmt;

/// A boxed error raised inside a worker (a source that cannot parse a row, a
/// sink that cannot write, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Errors from configuring or running a cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// A cluster setting is wrong; names the flag and what is expected.
    #[error("invalid cluster setting `{field}`: {expected}")]
    Config {
        /// The flag or field at fault, e.g. `--process`.
        field: &'static str,
        /// What was expected instead.
        expected: String,
    },
    /// timely could not set up communication (bind, connect).
    #[error("could not start the cluster: {0}")]
    Startup(String),
    /// A worker failed: an operator raised an error or the worker panicked.
    #[error("worker {worker} (process {process}) failed: {cause}")]
    Worker {
        /// Global index of the failed worker.
        worker: usize,
        /// Index of the process that ran it.
        process: usize,
        /// What went wrong.
        #[source]
        cause: WorkerFailure,
    },
}

/// Why a worker failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum WorkerFailure {
    /// An operator reported an error.
    Error(BoxError),
    /// The worker panicked with this message.
    Panic(String),
    /// A peer process went away (its connection closed or failed).
    PeerLost(String),
}

impl fmt::Display for WorkerFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerFailure::Error(e) => write!(f, "{e}"),
            WorkerFailure::Panic(msg) => write!(f, "panicked: {msg}"),
            WorkerFailure::PeerLost(msg) => {
                write!(f, "lost connection to a peer process ({msg})")
            }
        }
    }
}

impl std::error::Error for WorkerFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WorkerFailure::Error(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl EngineError {
    /// The error an operator raised, if this is a worker failure caused by one.
    pub fn operator_error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match self {
            EngineError::Worker {
                cause: WorkerFailure::Error(e),
                ..
            } => Some(e.as_ref()),
            _ => None,
        }
    }

    /// True if this error reports that a peer process disappeared.
    pub fn is_peer_lost(&self) -> bool {
        matches!(
            self,
            EngineError::Worker {
                cause: WorkerFailure::PeerLost(_),
                ..
            }
        )
    }
}
