//! Record-by-record maps that build each output batch in one pass.

use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use crate::VecStream;

/// Maps every record of a stream, batch by batch: each output batch is
/// collected in one pass and sent whole, rather than pushed record by record
/// into an output buffer (timely's `map`), which checks the buffer's
/// capacity at every record.
///
/// # Examples
///
/// ```
/// use timely::dataflow::operators::capture::{Capture, Extract};
/// use timely::dataflow::operators::ToStream;
/// use weir_operators::MapBatches;
///
/// let captured = timely::example(|scope| {
///     (1..=3u64).to_stream(scope).container::<Vec<_>>().map_batches("double", |x| x * 2).capture()
/// });
/// let got: Vec<u64> = captured.extract().into_iter().flat_map(|(_, d)| d).collect();
/// assert_eq!(got, vec![2, 4, 6]);
/// ```
pub trait MapBatches<'scope, D> {
    /// The stream of `f` applied to each record.
    fn map_batches<U: 'static, F: FnMut(D) -> U + 'static>(
        self,
        name: &str,
        f: F,
    ) -> VecStream<'scope, U>;
}

impl<'scope, D: 'static> MapBatches<'scope, D> for VecStream<'scope, D> {
    fn map_batches<U: 'static, F: FnMut(D) -> U + 'static>(
        self,
        name: &str,
        mut f: F,
    ) -> VecStream<'scope, U> {
        self.unary(Pipeline, name, move |_, _| {
            move |input, output| {
                input.for_each(|cap, data| {
                    let mut out: Vec<U> = data.drain(..).map(&mut f).collect();
                    output.session(&cap).give_container(&mut out);
                });
            }
        })
    }
}
