//! Jobs behind the weir examples, as a library so that tests and benchmarks
//! run the same pipelines as the example binaries.
#![deny(missing_docs)]

pub mod amqp;
pub mod nexmark;
pub mod queue_clicks;
