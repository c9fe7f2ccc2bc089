//! Names for the values of several aggregates at once: a window aggregated
//! with a tuple (`(Count, Sum::of(..))`) gives a tuple, which JSON shows as
//! an array (`"value":[2,12]`); [`Stream::with_names`] gives each value a name
//! (`"value":{"clicks":2,"total":12}`), as the spec does.

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use serde::{Deserialize, Serialize};

use crate::{Data, Key, Stream, WindowResult};

/// Values with their names, in the order given. In JSON (and any other
/// human-readable format) a map from name to value; between workers and
/// processes a list of (name, JSON text) pairs.
///
/// # Examples
///
/// ```
/// use weir::aggregate::Named;
///
/// let named: Named = serde_json::from_str(r#"{"clicks":2,"total":12}"#).unwrap();
/// assert_eq!(named.get("total"), Some(&serde_json::json!(12)));
/// assert_eq!(named.names().collect::<Vec<_>>(), vec!["clicks", "total"]);
/// assert_eq!(serde_json::to_string(&named).unwrap(), r#"{"clicks":2,"total":12}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Named {
    fields: Vec<(String, serde_json::Value)>,
}

impl Named {
    /// The value named `name`, if there is one.
    pub fn get(&self, name: &str) -> Option<&serde_json::Value> {
        self.fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// The names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.fields.iter().map(|(n, _)| n.as_str())
    }

    /// Each name with its value, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &serde_json::Value)> {
        self.fields.iter().map(|(n, v)| (n.as_str(), v))
    }
}

impl Serialize for Named {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            let mut map = serializer.serialize_map(Some(self.fields.len()))?;
            for (name, value) in &self.fields {
                map.serialize_entry(name, value)?;
            }
            return map.end();
        }
        // Formats such as bincode cannot carry a JSON value as it is.
        let pairs: Vec<(&str, String)> = self
            .fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.to_string()))
            .collect();
        pairs.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Named {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        if deserializer.is_human_readable() {
            return deserializer.deserialize_map(NamedVisitor);
        }
        let pairs: Vec<(String, String)> = Vec::deserialize(deserializer)?;
        let fields = pairs
            .into_iter()
            .map(|(name, text)| {
                serde_json::from_str(&text)
                    .map(|value| (name, value))
                    .map_err(de::Error::custom)
            })
            .collect::<Result<_, _>>()?;
        Ok(Named { fields })
    }
}

struct NamedVisitor;

impl<'de> Visitor<'de> for NamedVisitor {
    type Value = Named;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a map from names to values")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Named, A::Error> {
        let mut fields = Vec::new();
        while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
            fields.push(entry);
        }
        Ok(Named { fields })
    }
}

/// A tuple of `N` aggregate values that [`Stream::with_names`] can name.
pub trait NameFields<const N: usize> {
    /// The values, named by `names` in order. A value JSON cannot hold (a
    /// map whose keys are not strings) becomes `null`.
    fn name_fields(&self, names: &[&str; N]) -> Named;
}

fn json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

macro_rules! name_fields {
    ($n:literal: $($t:ident $i:tt),+) => {
        impl<$($t: Serialize),+> NameFields<$n> for ($($t,)+) {
            fn name_fields(&self, names: &[&str; $n]) -> Named {
                Named {
                    fields: vec![$((names[$i].to_string(), json(&self.$i))),+],
                }
            }
        }
    };
}

name_fields!(1: A 0);
name_fields!(2: A 0, B 1);
name_fields!(3: A 0, B 1, C 2);
name_fields!(4: A 0, B 1, C 2, D 3);
name_fields!(5: A 0, B 1, C 2, D 3, E 4);
name_fields!(6: A 0, B 1, C 2, D 3, E 4, F 5);
name_fields!(7: A 0, B 1, C 2, D 3, E 4, F 5, G 6);
name_fields!(8: A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);

impl<K: Key, V: Data> Stream<WindowResult<K, V>> {
    /// Names the values of window results aggregated with a tuple of
    /// aggregates (one name per aggregate, checked at compile time), so
    /// that their JSON says what each is: `"value":{"clicks":2,"total":12}`
    /// instead of `"value":[2,12]`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use weir::aggregate::{Count, Sum};
    /// use weir::prelude::*;
    ///
    /// let out = Collect::new();
    /// Pipeline::new("p")
    ///     .source(Iter::new(vec![(1u64, 5i64), (2, 7)]))
    ///     .event_time(|e: &(u64, i64)| e.0, Watermark::ascending())
    ///     .key_by(|_| "all".to_string())
    ///     .window(Tumbling::of(Duration::from_millis(10)))
    ///     .aggregate((Count, Sum::of(|e: &(u64, i64)| e.1)))
    ///     .with_names(["clicks", "total"])
    ///     .sink(out.clone())
    ///     .run(Cluster::threads(2).quiet(true))
    ///     .unwrap();
    /// let got = out.take();
    /// assert_eq!(
    ///     serde_json::to_string(&got[0]).unwrap(),
    ///     r#"{"key":"all","window_start":0,"window_end":10,"value":{"clicks":2,"total":12}}"#
    /// );
    /// ```
    ///
    /// A name for each aggregate, no more and no fewer:
    ///
    /// ```compile_fail
    /// use std::time::Duration;
    /// use weir::aggregate::{Count, Sum};
    /// use weir::prelude::*;
    ///
    /// Pipeline::new("p")
    ///     .source(Iter::new(vec![(1u64, 5i64)]))
    ///     .event_time(|e: &(u64, i64)| e.0, Watermark::ascending())
    ///     .key_by(|_| 0u8)
    ///     .window(Tumbling::of(Duration::from_millis(10)))
    ///     .aggregate((Count, Sum::of(|e: &(u64, i64)| e.1)))
    ///     .with_names(["clicks"]);
    /// ```
    pub fn with_names<const N: usize>(
        self,
        names: [&'static str; N],
    ) -> Stream<WindowResult<K, Named>>
    where
        V: NameFields<N>,
    {
        self.map(move |r: WindowResult<K, V>| WindowResult {
            key: r.key,
            window_start: r.window_start,
            window_end: r.window_end,
            value: r.value.name_fields(&names),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_values_cross_workers_through_bincode() {
        let named = (3u64, -1.5f64, "x".to_string()).name_fields(&["n", "avg", "last"]);
        let bytes = bincode::serialize(&named).unwrap();
        let back: Named = bincode::deserialize(&bytes).unwrap();
        assert_eq!(back, named);
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            r#"{"n":3,"avg":-1.5,"last":"x"}"#
        );
    }
}
