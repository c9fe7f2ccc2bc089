//! The pipeline as a graph of stages ([`graph`]), and its compilation onto
//! timely on each worker ([`compile`]).
//!
//! A stage is a node of the graph with one or more output ports (a window
//! stage has its results and its late records); a [`Stream`](crate::Stream)
//! names one port. Each node carries a [`NodeBuild`]: a closure that, on a
//! worker, builds the node's timely operators from the streams of its inputs
//! and provides a stream for each of its ports. Compiling a pipeline builds
//! every sink; a node is built the first time one of its ports is asked for,
//! and only once.

mod compile;
mod erased;
mod graph;
mod share;
pub(crate) mod stop;

pub(crate) use compile::{Builder, Ctx, NodeBuild, Timed, builder};
pub use graph::Pipeline;
pub(crate) use graph::{CommitHook, NodeId, Port, SharedPublisher};
