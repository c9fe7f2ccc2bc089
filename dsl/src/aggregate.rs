//! Built-in aggregations for windows: [`Count`], [`Sum`], [`Min`], [`Max`],
//! [`Avg`], [`MaxBy`] (the records with the greatest key), tuples of them (several at once), and the adapters behind
//! `reduce`, `fold` and `process`. Implement [`Aggregator`] for your own.

use std::marker::PhantomData;
use std::ops::Add;

pub use crate::named::{NameFields, Named};
pub use weir_operators::Aggregator;

/// Number of records.
///
/// # Examples
///
/// ```
/// use weir::aggregate::{Aggregator, Count};
///
/// let mut acc = Aggregator::<&str>::init(&Count);
/// Count.add(&mut acc, &"x");
/// Count.add(&mut acc, &"y");
/// assert_eq!(Aggregator::<&str>::finish(&Count, acc), 2);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Count;

impl<V> Aggregator<V> for Count {
    type Acc = u64;
    type Out = u64;
    fn init(&self) -> u64 {
        0
    }
    fn add(&self, acc: &mut u64, _: &V) {
        *acc += 1;
    }
    fn merge(&self, acc: &mut u64, other: &u64) {
        *acc += other;
    }
    fn finish(&self, acc: u64) -> u64 {
        acc
    }
}

/// Sum of a field.
///
/// # Examples
///
/// ```
/// use weir::aggregate::{Aggregator, Sum};
///
/// let sum = Sum::of(|x: &(i64, &str)| x.0);
/// let mut acc = sum.init();
/// sum.add(&mut acc, &(5, "a"));
/// sum.add(&mut acc, &(-2, "b"));
/// assert_eq!(sum.finish(acc), 3);
/// ```
pub struct Sum<F, N>(F, PhantomData<fn() -> N>);

impl<F, N> Sum<F, N> {
    /// The sum of `field(record)`.
    pub fn of(field: F) -> Self {
        Sum(field, PhantomData)
    }
}

impl<V, N, F> Aggregator<V> for Sum<F, N>
where
    F: Fn(&V) -> N + Send + Sync + 'static,
    N: crate::Data + Copy + Default + Add<Output = N>,
{
    type Acc = N;
    type Out = N;
    fn init(&self) -> N {
        N::default()
    }
    fn add(&self, acc: &mut N, v: &V) {
        *acc = *acc + (self.0)(v);
    }
    fn merge(&self, acc: &mut N, other: &N) {
        *acc = *acc + *other;
    }
    fn finish(&self, acc: N) -> N {
        acc
    }
}

/// Least value of a field.
pub struct Min<F, N>(F, PhantomData<fn() -> N>);

impl<F, N> Min<F, N> {
    /// The least `field(record)`.
    pub fn of(field: F) -> Self {
        Min(field, PhantomData)
    }
}

/// Greatest value of a field.
///
/// # Examples
///
/// ```
/// use weir::aggregate::{Aggregator, Max};
///
/// let max = Max::of(|x: &f64| *x);
/// let mut acc = max.init();
/// max.add(&mut acc, &1.5);
/// max.add(&mut acc, &-3.0);
/// assert_eq!(max.finish(acc), 1.5);
/// ```
pub struct Max<F, N>(F, PhantomData<fn() -> N>);

impl<F, N> Max<F, N> {
    /// The greatest `field(record)`.
    pub fn of(field: F) -> Self {
        Max(field, PhantomData)
    }
}

macro_rules! extreme {
    ($name:ident, $keep:expr) => {
        impl<V, N, F> Aggregator<V> for $name<F, N>
        where
            F: Fn(&V) -> N + Send + Sync + 'static,
            N: crate::Data + Copy + Default + PartialOrd,
        {
            type Acc = Option<N>;
            type Out = N;
            fn init(&self) -> Option<N> {
                None
            }
            fn add(&self, acc: &mut Option<N>, v: &V) {
                let x = (self.0)(v);
                self.merge(acc, &Some(x));
            }
            fn merge(&self, acc: &mut Option<N>, other: &Option<N>) {
                if let Some(x) = *other {
                    match acc {
                        Some(a) if !$keep(x, *a) => {}
                        _ => *acc = Some(x),
                    }
                }
            }
            // A window holds at least one record, so the value is always there.
            fn finish(&self, acc: Option<N>) -> N {
                acc.unwrap_or_default()
            }
        }
    };
}

extreme!(Min, |new: N, old: N| new < old);
extreme!(Max, |new: N, old: N| new > old);

/// Mean of a field, as `f64`.
///
/// # Examples
///
/// ```
/// use weir::aggregate::{Aggregator, Avg};
///
/// let avg = Avg::of(|x: &u32| f64::from(*x));
/// let mut acc = avg.init();
/// for x in [1, 2, 6] { avg.add(&mut acc, &x); }
/// assert_eq!(avg.finish(acc), 3.0);
/// ```
pub struct Avg<F>(F);

impl<F> Avg<F> {
    /// The mean of `field(record)`.
    pub fn of(field: F) -> Self {
        Avg(field)
    }
}

impl<V, F> Aggregator<V> for Avg<F>
where
    F: Fn(&V) -> f64 + Send + Sync + 'static,
{
    type Acc = (f64, u64);
    type Out = f64;
    fn init(&self) -> (f64, u64) {
        (0.0, 0)
    }
    fn add(&self, acc: &mut (f64, u64), v: &V) {
        acc.0 += (self.0)(v);
        acc.1 += 1;
    }
    fn merge(&self, acc: &mut (f64, u64), other: &(f64, u64)) {
        acc.0 += other.0;
        acc.1 += other.1;
    }
    fn finish(&self, acc: (f64, u64)) -> f64 {
        if acc.1 == 0 {
            0.0
        } else {
            acc.0 / acc.1 as f64
        }
    }
}

/// Combines records pairwise with `f` (`reduce`): the result has the record type.
///
/// # Panics
///
/// `finish` panics on an accumulator that never saw a record (`init()`):
/// a window operator only finishes windows that hold records.
pub struct Reduce<F>(pub(crate) F);

impl<V, F> Aggregator<V> for Reduce<F>
where
    V: crate::Data,
    F: Fn(&V, &V) -> V + Send + Sync + 'static,
{
    type Acc = Option<V>;
    type Out = V;
    fn init(&self) -> Option<V> {
        None
    }
    fn add(&self, acc: &mut Option<V>, v: &V) {
        *acc = Some(match acc.take() {
            None => v.clone(),
            Some(a) => (self.0)(&a, v),
        });
    }
    fn merge(&self, acc: &mut Option<V>, other: &Option<V>) {
        if let Some(o) = other {
            self.add(acc, o);
        }
    }
    fn finish(&self, acc: Option<V>) -> V {
        acc.expect("a fired window holds at least one record")
    }
}

/// Keeps a window's records and hands them to `f` when it fires (`process`,
/// and `fold`, which cannot merge partial results). Records come in no
/// particular order.
pub struct Collected<F>(pub(crate) F);

impl<V, O, F> Aggregator<V> for Collected<F>
where
    V: crate::Data,
    O: 'static,
    F: Fn(Vec<V>) -> O + Send + Sync + 'static,
{
    type Acc = Vec<V>;
    type Out = O;
    fn init(&self) -> Vec<V> {
        Vec::new()
    }
    fn add(&self, acc: &mut Vec<V>, v: &V) {
        acc.push(v.clone());
    }
    fn merge(&self, acc: &mut Vec<V>, other: &Vec<V>) {
        acc.extend_from_slice(other);
    }
    fn add_owned(&self, acc: &mut Vec<V>, v: V) {
        acc.push(v);
    }
    fn merge_owned(&self, acc: &mut Vec<V>, mut other: Vec<V>) {
        if acc.is_empty() {
            *acc = other;
        } else {
            acc.append(&mut other);
        }
    }
    fn finish(&self, acc: Vec<V>) -> O {
        (self.0)(acc)
    }
}

/// The records with the greatest `key(record)`: all of them on a tie, in no
/// particular order. Only those are kept while the window is open.
///
/// # Examples
///
/// ```
/// use weir::aggregate::{Aggregator, MaxBy};
///
/// let top = MaxBy::of(|bid: &(char, u32)| bid.1);
/// let mut acc = top.init();
/// for bid in [('a', 3), ('b', 7), ('c', 7), ('d', 5)] {
///     top.add(&mut acc, &bid);
/// }
/// assert_eq!(top.finish(acc), vec![('b', 7), ('c', 7)]);
/// ```
pub struct MaxBy<F>(F);

impl<F> MaxBy<F> {
    /// The records with the greatest `key(record)`.
    pub fn of(key: F) -> Self {
        MaxBy(key)
    }
}

impl<V, B, F> Aggregator<V> for MaxBy<F>
where
    V: crate::Data,
    B: Ord,
    F: Fn(&V) -> B + Send + Sync + 'static,
{
    type Acc = Vec<V>;
    type Out = Vec<V>;
    fn init(&self) -> Vec<V> {
        Vec::new()
    }
    fn add(&self, acc: &mut Vec<V>, v: &V) {
        if self.wins(acc, v) {
            acc.push(v.clone());
        }
    }
    fn merge(&self, acc: &mut Vec<V>, other: &Vec<V>) {
        for v in other {
            self.add(acc, v);
        }
    }
    fn add_owned(&self, acc: &mut Vec<V>, v: V) {
        if self.wins(acc, &v) {
            acc.push(v);
        }
    }
    fn merge_owned(&self, acc: &mut Vec<V>, other: Vec<V>) {
        for v in other {
            self.add_owned(acc, v);
        }
    }
    fn finish(&self, acc: Vec<V>) -> Vec<V> {
        acc
    }
}

impl<F> MaxBy<F> {
    /// Whether `v` belongs among the greatest: clears `acc` if `v` beats them.
    fn wins<V, B: Ord>(&self, acc: &mut Vec<V>, v: &V) -> bool
    where
        F: Fn(&V) -> B,
    {
        match acc.first().map(|top| (self.0)(top).cmp(&(self.0)(v))) {
            None | Some(std::cmp::Ordering::Equal) => true,
            Some(std::cmp::Ordering::Less) => {
                acc.clear();
                true
            }
            Some(std::cmp::Ordering::Greater) => false,
        }
    }
}
