//! # weir
//!
//! Stream processing pipelines in Rust, compiled onto
//! [timely dataflow](https://docs.rs/timely): one program runs on one thread,
//! many threads, or many processes.
//!
//! A [`Pipeline`] is a value: sources, transformations and sinks described
//! with a builder, checked, and compiled on every worker when it
//! [`run`](Pipeline::run)s. Records are ordinary Rust types with serde
//! derives; the per-record path is monomorphised and batch-at-a-time.
//!
//! ```
//! use weir::prelude::*;
//!
//! let counts = Collect::new();
//! let job = Pipeline::new("wordcount")
//!     .source(Iter::new(vec!["a rose is a rose".to_string()]))
//!     .flat_map(|line: String| line.split(' ').map(String::from).collect::<Vec<_>>())
//!     .key_by(|word: &String| word.clone())
//!     .count()
//!     .sink(counts.clone());
//! println!("{}", job.explain());
//! job.run(Cluster::threads(2).quiet(true)).unwrap();
//!
//! let mut got: Vec<(String, u64)> = counts.take().into_iter().map(|u| (u.key, u.value)).collect();
//! got.sort();
//! assert_eq!(got, vec![("a".into(), 2), ("is".into(), 1), ("rose".into(), 2)]);
//! ```
#![deny(missing_docs)]

pub mod aggregate;
mod checkpoint;
pub mod error;
mod join;
mod named;
mod plan;
pub mod sinks;
pub mod sources;
#[cfg(feature = "cli")]
pub mod spec;
mod stream;
mod time;
pub mod timestamp;
mod window;

use std::hash::Hash;

use serde::Serialize;
use serde::de::DeserializeOwned;

pub use aggregate::Aggregator;
pub use checkpoint::Checkpointing;
pub use error::{BoxError, PlanError, RunError, SinkError, SourceError};
pub use join::{Joined, Side};
pub use plan::Pipeline;
pub use sinks::{Collect, CsvFile, ForEach, JsonLinesFile, Sink, Stdout, StdoutLines, TextFile};
pub use sources::{Csv, Generator, Iter, JsonLines, Source, Stdin, TextLines};
pub use stream::{KeyedStream, Stream};
pub use time::Watermark;
pub use weir_engine::{Cluster, EngineError, RunSummary, StopHandle, Stopped, Usage};
pub use weir_operators::Update;
pub use window::{Session, Sliding, Tumbling, WindowResult, WindowSpec, WindowedStream};

/// What a record must be: cloneable, shareable between worker threads, and
/// serializable with serde so that it can cross process boundaries.
/// Implemented for every such type.
pub trait Data: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {}

impl<T: Clone + Send + Sync + Serialize + DeserializeOwned + 'static> Data for T {}

/// What a key must be: a record that can be hashed and compared.
pub trait Key: Data + Hash + Eq {}

impl<T: Data + Hash + Eq> Key for T {}

/// Everything a pipeline author needs: `use weir::prelude::*;`.
pub mod prelude {
    pub use crate::{
        Aggregator, Cluster, Collect, Csv, CsvFile, Data, ForEach, Generator, Iter, Joined,
        JsonLines, JsonLinesFile, Key, KeyedStream, Pipeline, PlanError, RunError, Session, Sink,
        Sliding, Source, Stdin, Stdout, StdoutLines, Stream, TextFile, TextLines, Tumbling, Update,
        Watermark, WindowResult, WindowedStream,
    };
}

/// The README's examples, compiled as doctests so they stay true.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
