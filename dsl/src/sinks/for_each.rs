use std::sync::Arc;

use super::{ByRef, Sink, SinkContext, SinkWriter, WriteRefs};
use crate::error::SinkError;
use crate::{BoxError, Data};

/// Calls a function on every record, on the worker that holds it.
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use std::sync::Arc;
/// use weir::prelude::*;
///
/// let total = Arc::new(AtomicU64::new(0));
/// let t = total.clone();
/// Pipeline::new("p")
///     .source(Generator::new(100, |i| i))
///     .sink(ForEach::new(move |x: &u64| { t.fetch_add(*x, Ordering::Relaxed); }))
///     .run(Cluster::threads(2).quiet(true))
///     .unwrap();
/// assert_eq!(total.load(Ordering::Relaxed), 4950);
/// ```
pub struct ForEach<F> {
    f: Arc<F>,
}

impl<F> ForEach<F> {
    /// A sink calling `f` on each record.
    pub fn new(f: F) -> Self {
        ForEach { f: Arc::new(f) }
    }
}

impl<T: Data, F: Fn(&T) + Send + Sync + 'static> Sink<T> for ForEach<F> {
    fn describe(&self) -> String {
        "for_each".to_string()
    }

    fn open(&self, _: &SinkContext) -> Result<Box<dyn SinkWriter<T>>, SinkError> {
        Ok(Box::new(ByRef(ForEachWriter(Arc::clone(&self.f)))))
    }
}

struct ForEachWriter<F>(Arc<F>);

impl<T, F: Fn(&T) + 'static> WriteRefs<T> for ForEachWriter<F> {
    fn write_refs<'a>(&mut self, records: impl Iterator<Item = &'a T>) -> Result<(), BoxError>
    where
        T: 'a,
    {
        records.for_each(|x| (self.0)(x));
        Ok(())
    }
}
