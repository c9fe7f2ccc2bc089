//! The [`Aggregator`] trait: incremental aggregation of a window's (or a
//! pane's) records, and aggregators of several aggregations at once (tuples).

/// An incremental aggregation: an accumulator per window (or pane), records
/// added one by one, accumulators merged, and a result at the end.
///
/// # Examples
///
/// ```
/// use weir_operators::Aggregator;
///
/// /// The longest string.
/// struct Longest;
/// impl Aggregator<String> for Longest {
///     type Acc = String;
///     type Out = String;
///     fn init(&self) -> String { String::new() }
///     fn add(&self, acc: &mut String, v: &String) {
///         if v.len() > acc.len() { *acc = v.clone(); }
///     }
///     fn merge(&self, acc: &mut String, other: &String) { self.add(acc, other) }
///     fn finish(&self, acc: String) -> String { acc }
/// }
///
/// let mut acc = Longest.init();
/// Longest.add(&mut acc, &"ab".to_string());
/// Longest.add(&mut acc, &"abc".to_string());
/// assert_eq!(Longest.finish(acc), "abc");
/// ```
pub trait Aggregator<V>: Send + Sync + 'static {
    /// The running state of one window or pane. It is serializable so that
    /// window state can be saved and restored (checkpoints).
    type Acc: Clone + serde::Serialize + serde::de::DeserializeOwned + 'static;
    /// The result of a window.
    type Out: 'static;
    /// A fresh accumulator.
    fn init(&self) -> Self::Acc;
    /// Adds one record.
    fn add(&self, acc: &mut Self::Acc, value: &V);
    /// Adds everything `other` holds to `acc`.
    fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc);
    /// Adds one record the operator no longer needs: override it to move
    /// the record instead of cloning it (the default calls [`add`](Self::add)).
    fn add_owned(&self, acc: &mut Self::Acc, value: V) {
        self.add(acc, &value)
    }
    /// Merges an accumulator the operator no longer needs: override it to
    /// move instead of clone (the default calls [`merge`](Self::merge)).
    fn merge_owned(&self, acc: &mut Self::Acc, other: Self::Acc) {
        self.merge(acc, &other)
    }
    /// The window's result.
    fn finish(&self, acc: Self::Acc) -> Self::Out;
}

macro_rules! tuple_aggregator {
    ($($a:ident $i:tt),+) => {
        /// Several aggregations at once; the result is the tuple of results.
        impl<V, $($a: Aggregator<V>),+> Aggregator<V> for ($($a,)+) {
            type Acc = ($($a::Acc,)+);
            type Out = ($($a::Out,)+);
            fn init(&self) -> Self::Acc {
                ($(self.$i.init(),)+)
            }
            fn add(&self, acc: &mut Self::Acc, v: &V) {
                $(self.$i.add(&mut acc.$i, v);)+
            }
            fn merge(&self, acc: &mut Self::Acc, other: &Self::Acc) {
                $(self.$i.merge(&mut acc.$i, &other.$i);)+
            }
            fn finish(&self, acc: Self::Acc) -> Self::Out {
                ($(self.$i.finish(acc.$i),)+)
            }
        }
    };
}

tuple_aggregator!(A 0, B 1);
tuple_aggregator!(A 0, B 1, C 2);
tuple_aggregator!(A 0, B 1, C 2, D 3);
tuple_aggregator!(A 0, B 1, C 2, D 3, E 4);
tuple_aggregator!(A 0, B 1, C 2, D 3, E 4, F 5);
