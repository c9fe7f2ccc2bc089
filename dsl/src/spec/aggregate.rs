//! The spec's aggregates: `count(*)`, `sum`, `min`, `max` and `avg` over
//! dynamic values, all of a window's at once.

use std::cmp::Ordering;
use std::sync::Arc;

use super::value::{Row, Value, Values};

/// The accumulators of a window, one per aggregate.
pub(super) type Cells = smallvec::SmallVec<[Cell; 2]>;
use super::Spec;
use crate::aggregate::Aggregator;

/// An aggregate function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Func {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

/// One aggregate of the spec: its function and which row value it reads.
#[derive(Debug, Clone)]
pub(super) struct AggSpec {
    pub(super) name: String,
    pub(super) func: Func,
    /// Index into the row's aggregated values; `None` for `count(*)`.
    pub(super) column: Option<usize>,
}

/// The accumulator of one aggregate.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(super) enum Cell {
    Count(u64),
    SumInt(i64),
    SumFloat(f64),
    Extreme(Option<Value>),
    Avg(f64, u64),
}

pub(super) struct SpecAggregator(pub(super) Arc<Spec>);

impl Aggregator<Row> for SpecAggregator {
    type Acc = Cells;
    type Out = Values;

    // `init` and `finish` run once per key and window: plain pushes, which
    // compile to less than collecting an iterator into a `SmallVec`.
    fn init(&self) -> Cells {
        let mut cells = Cells::new();
        for a in &self.0.aggs {
            cells.push(match a.func {
                Func::Count => Cell::Count(0),
                Func::Sum => Cell::SumInt(0),
                Func::Min | Func::Max => Cell::Extreme(None),
                Func::Avg => Cell::Avg(0.0, 0),
            });
        }
        cells
    }

    fn add(&self, acc: &mut Cells, row: &Row) {
        for (cell, agg) in acc.iter_mut().zip(&self.0.aggs) {
            let v = agg.column.map(|c| &row.values[c]);
            match (cell, v) {
                (Cell::Count(n), _) => *n += 1,
                (_, Some(Value::Null)) => {}
                (c @ Cell::SumInt(_), Some(Value::Float(f))) => {
                    *c = Cell::SumFloat(sum_of(c) + f);
                }
                (c @ Cell::SumInt(_), Some(Value::Int(i))) => add_int(c, *i),
                (Cell::SumFloat(s), Some(v)) => *s += v.as_f64().unwrap_or(0.0),
                (Cell::Avg(s, n), Some(v)) => {
                    *s += v.as_f64().unwrap_or(0.0);
                    *n += 1;
                }
                (Cell::Extreme(best), Some(v)) => keep_extreme(agg.func, best, v),
                _ => {}
            }
        }
    }

    fn merge(&self, acc: &mut Cells, other: &Cells) {
        for ((cell, o), agg) in acc.iter_mut().zip(other).zip(&self.0.aggs) {
            match (cell, o) {
                (Cell::Count(a), Cell::Count(b)) => *a += b,
                (c @ Cell::SumInt(_), Cell::SumInt(b)) => add_int(c, *b),
                (c @ (Cell::SumInt(_) | Cell::SumFloat(_)), o) => {
                    let total = sum_of(c) + sum_of(o);
                    *c = Cell::SumFloat(total);
                }
                (Cell::Avg(s, n), Cell::Avg(s2, n2)) => {
                    *s += s2;
                    *n += n2;
                }
                (Cell::Extreme(best), Cell::Extreme(Some(v))) => keep_extreme(agg.func, best, v),
                _ => {}
            }
        }
    }

    fn finish(&self, acc: Cells) -> Values {
        let mut values = Values::new();
        for c in acc {
            values.push(match c {
                Cell::Count(n) => Value::Int(n as i64),
                Cell::SumInt(s) => Value::Int(s),
                Cell::SumFloat(s) => Value::Float(s),
                Cell::Extreme(v) => v.unwrap_or(Value::Null),
                Cell::Avg(_, 0) => Value::Null,
                Cell::Avg(s, n) => Value::Float(s / n as f64),
            });
        }
        values
    }
}

/// Keeps `v` in `best` if it is the new minimum (or maximum).
fn keep_extreme(func: Func, best: &mut Option<Value>, v: &Value) {
    let better = match best {
        None => true,
        Some(b) if func == Func::Min => v.total_cmp(b) == Ordering::Less,
        Some(b) => v.total_cmp(b) == Ordering::Greater,
    };
    if better {
        *best = Some(v.clone());
    }
}

/// Adds an integer to an integer sum, turning it into a float sum rather
/// than overflowing.
fn add_int(cell: &mut Cell, i: i64) {
    if let Cell::SumInt(s) = cell {
        *cell = match s.checked_add(i) {
            Some(total) => Cell::SumInt(total),
            None => Cell::SumFloat(*s as f64 + i as f64),
        };
    }
}

fn sum_of(c: &Cell) -> f64 {
    match c {
        Cell::SumInt(i) => *i as f64,
        Cell::SumFloat(f) => *f,
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{Row, Spec};

    fn spec(aggregate: &str) -> Arc<Spec> {
        let text = format!(
            r#"
            name = "t"
            [source]
            type = "nexmark"
            events = 10
            event_time = {{ field = "date_time", max_out_of_orderness_ms = 0 }}
            [window]
            key = "auction"
            type = "tumbling"
            size_ms = 10
            [aggregate]
            {aggregate}
            [sink]
            type = "stdout"
            "#
        );
        Arc::new(Spec::parse(&text).unwrap())
    }

    fn row(values: Vec<Value>) -> Row {
        Row {
            ts: 0,
            values: values.into_iter().collect(),
        }
    }

    #[test]
    fn sums_stay_integers_until_a_float_or_an_overflow() {
        let agg = SpecAggregator(spec(r#"s = "sum(price)""#));
        let mut acc = agg.init();
        agg.add(&mut acc, &row(vec![Value::Int(2)]));
        agg.add(&mut acc, &row(vec![Value::Null]));
        agg.add(&mut acc, &row(vec![Value::Int(3)]));
        assert_eq!(agg.finish(acc.clone()).to_vec(), vec![Value::Int(5)]);
        agg.add(&mut acc, &row(vec![Value::Float(0.5)]));
        assert_eq!(agg.finish(acc).to_vec(), vec![Value::Float(5.5)]);

        let mut acc = agg.init();
        agg.add(&mut acc, &row(vec![Value::Int(i64::MAX)]));
        agg.add(&mut acc, &row(vec![Value::Int(1)]));
        assert_eq!(
            agg.finish(acc).to_vec(),
            vec![Value::Float(i64::MAX as f64 + 1.0)]
        );
    }

    #[test]
    fn min_max_avg_count_merge_like_one_pass() {
        let agg = SpecAggregator(spec(
            r#"lo = "min(price)"
            hi = "max(price)"
            mean = "avg(price)"
            n = "count(*)""#,
        ));
        let values = [
            Value::Int(4),
            Value::Float(-1.5),
            Value::Int(10),
            Value::Null,
        ];
        let mut one = agg.init();
        for v in &values {
            agg.add(&mut one, &row(vec![v.clone()]));
        }
        let (mut left, mut right) = (agg.init(), agg.init());
        for v in &values[..2] {
            agg.add(&mut left, &row(vec![v.clone()]));
        }
        for v in &values[2..] {
            agg.add(&mut right, &row(vec![v.clone()]));
        }
        agg.merge(&mut left, &right);
        let expected = vec![
            Value::Float(-1.5),
            Value::Int(10),
            Value::Float(12.5 / 3.0),
            Value::Int(4),
        ];
        assert_eq!(agg.finish(one).to_vec(), expected);
        assert_eq!(agg.finish(left).to_vec(), expected);
    }
}
