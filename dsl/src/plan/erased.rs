//! Timely streams with their scope lifetime erased, so that the streams a
//! worker has built can be kept in one type-indexed map.
//!
//! # Invariant
//!
//! An [`Erased`] is made from a stream of scope lifetime `'s` only by
//! [`Ctx`](super::Ctx) of that same `'s`, kept in that `Ctx`'s private map,
//! and turned back into a stream only as a stream of that same `'s` (by
//! [`Erased::get`], which `Ctx::port` calls with its own `'s`). The `Ctx` is
//! created and dropped inside the worker's dataflow closure, while `'s`
//! holds, so no erased stream outlives its scope.

use std::mem::ManuallyDrop;

use super::Timed;

/// A stage's stream with its scope lifetime erased; see the module
/// invariant.
pub(super) struct Erased<T: 'static>(Timed<'static, T>);

impl<T: Clone + 'static> Erased<T> {
    /// Erases the lifetime of `stream`.
    pub(super) fn new(stream: Timed<'_, T>) -> Self {
        let stream = ManuallyDrop::new(stream);
        // SAFETY: only the lifetime changes (same type, same layout), the
        // original is not dropped, and by the module invariant the erased
        // lifetime is never outlived.
        Erased(unsafe {
            std::ptr::read(&*stream as *const Timed<'_, T> as *const Timed<'static, T>)
        })
    }

    /// The stream again, at the scope lifetime `'s` it was made with.
    pub(super) fn get<'s>(&self) -> Timed<'s, T> {
        // `'static` outlives `'s`: shortening is a covariant coercion.
        let s: &Timed<'s, T> = &self.0;
        s.clone()
    }
}
