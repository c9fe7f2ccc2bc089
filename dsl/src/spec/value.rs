//! Dynamic values and rows of the spec runner.

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};

use serde::{Deserialize, Serialize};

/// A dynamic value of a row.
///
/// Equality and hashing agree, so values can be keys: floats compare by
/// value with every NaN equal to every other and `-0.0` equal to `0.0`; an
/// integer never equals a float.
///
/// # Examples
///
/// ```
/// use weir::spec::Value;
///
/// assert_eq!(Value::Float(f64::NAN), Value::Float(-f64::NAN));
/// assert_eq!(Value::Float(-0.0), Value::Float(0.0));
/// assert_ne!(Value::Int(1), Value::Float(1.0));
/// ```
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Value {
    /// Missing or empty.
    Null,
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// Text.
    Str(String),
    /// A boolean.
    Bool(bool),
}

/// The bits that identify a float for equality and hashing: one NaN, one
/// zero.
fn float_key(f: f64) -> u64 {
    if f.is_nan() {
        f64::NAN.to_bits()
    } else if f == 0.0 {
        0
    } else {
        f.to_bits()
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Value) -> bool {
        match (self, other) {
            (Value::Null, Value::Null) => true,
            (Value::Int(a), Value::Int(b)) => a == b,
            (Value::Float(a), Value::Float(b)) => float_key(*a) == float_key(*b),
            (Value::Str(a), Value::Str(b)) => a == b,
            (Value::Bool(a), Value::Bool(b)) => a == b,
            _ => false,
        }
    }
}

impl Eq for Value {}

impl Hash for Value {
    fn hash<H: Hasher>(&self, state: &mut H) {
        match self {
            Value::Null => 0u8.hash(state),
            Value::Int(i) => (1u8, i).hash(state),
            Value::Float(f) => (2u8, float_key(*f)).hash(state),
            Value::Str(s) => (3u8, s).hash(state),
            Value::Bool(b) => (4u8, b).hash(state),
        }
    }
}

impl Value {
    pub(super) fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => None,
        }
    }

    /// A total order: null < booleans < numbers < text.
    pub(super) fn total_cmp(&self, other: &Value) -> Ordering {
        fn rank(v: &Value) -> u8 {
            match v {
                Value::Null => 0,
                Value::Bool(_) => 1,
                Value::Int(_) | Value::Float(_) => 2,
                Value::Str(_) => 3,
            }
        }
        match (self, other) {
            (Value::Int(a), Value::Int(b)) => a.cmp(b),
            (Value::Str(a), Value::Str(b)) => a.cmp(b),
            (Value::Bool(a), Value::Bool(b)) => a.cmp(b),
            (a, b) if rank(a) == 2 && rank(b) == 2 => a
                .as_f64()
                .unwrap_or(0.0)
                .total_cmp(&b.as_f64().unwrap_or(0.0)),
            (a, b) => rank(a).cmp(&rank(b)),
        }
    }

    /// Appends the value as JSON (non-finite floats as `null`).
    pub(super) fn json(&self, out: &mut String) {
        match self {
            Value::Null => out.push_str("null"),
            Value::Int(i) => out.push_str(itoa::Buffer::new().format(*i)),
            Value::Float(f) => match serde_json::Number::from_f64(*f) {
                Some(n) => {
                    let _ = write!(out, "{n}");
                }
                None => out.push_str("null"),
            },
            Value::Str(s) => json_string(s, out),
            Value::Bool(b) => {
                let _ = write!(out, "{b}");
            }
        }
    }

    /// The value as CSV cell text.
    pub(super) fn text(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("{f:?}"),
            Value::Str(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
        }
    }
}

/// Appends `s` as a JSON string (serializing a string cannot fail).
pub(super) fn json_string(s: &str, out: &mut String) {
    out.push_str(&serde_json::to_string(s).unwrap_or_default());
}

/// A few values, inline up to two (most keys and aggregates).
pub type Values = smallvec::SmallVec<[Value; 2]>;

/// A row of the spec runner without its key: its event time and the values
/// the aggregates read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    pub(super) ts: u64,
    pub(super) values: Values,
}

/// A row with its key values, as sources make it: the key moves into the
/// keyed stream as it is (`Stream::keyed`), not cloned out of the row.
pub type KeyedRow = (Values, Row);

#[cfg(test)]
mod tests {
    use std::hash::BuildHasher;

    use proptest::prelude::*;
    use weir_operators::KeyGroups;

    use super::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::Int),
            // Floats biased towards the troublesome ones.
            prop_oneof![
                Just(f64::NAN),
                Just(-f64::NAN),
                Just(0.0),
                Just(-0.0),
                Just(f64::INFINITY),
                any::<f64>(),
                (-3i32..3).prop_map(f64::from),
            ]
            .prop_map(Value::Float),
            "[ab]{0,2}".prop_map(Value::Str),
            any::<bool>().prop_map(Value::Bool),
        ]
    }

    proptest! {
        /// Equal values hash equally and go to the same key group, and
        /// equality is reflexive and symmetric (NaN included).
        #[test]
        fn equality_and_hashing_agree(a in value(), b in value()) {
            prop_assert_eq!(&a, &a.clone());
            prop_assert_eq!(a == b, b == a);
            if a == b {
                let hasher = rustc_hash::FxBuildHasher;
                prop_assert_eq!(hasher.hash_one(&a), hasher.hash_one(&b));
                prop_assert_eq!(KeyGroups::group_of(&a), KeyGroups::group_of(&b));
            }
        }
    }

    #[test]
    fn nan_and_signed_zero_keys_meet_in_one_hash_map_entry() {
        let mut counts: std::collections::HashMap<Value, u32> = Default::default();
        for v in [f64::NAN, -f64::NAN, 0.0, -0.0, 1.5] {
            *counts.entry(Value::Float(v)).or_default() += 1;
        }
        assert_eq!(counts.len(), 3);
        assert_eq!(counts[&Value::Float(f64::NAN)], 2);
        assert_eq!(counts[&Value::Float(0.0)], 2);
    }
}
