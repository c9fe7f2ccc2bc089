//! Window results as JSON object lines or CSV lines.

use super::value::{json_string, Value};
use super::Spec;
use crate::WindowResult;

/// One result as a JSON object line or a CSV line, fields in spec order.
pub(super) fn render(spec: &Spec, r: WindowResult<Vec<Value>, Vec<Value>>, json: bool) -> String {
    let values = r
        .key
        .into_iter()
        .chain([
            Value::Int(r.window_start as i64),
            Value::Int(r.window_end as i64),
        ])
        .chain(r.value);
    let mut out = String::new();
    if json {
        out.push('{');
        for (i, (name, v)) in spec.header().iter().zip(values).enumerate() {
            if i > 0 {
                out.push(',');
            }
            json_string(name, &mut out);
            out.push(':');
            v.json(&mut out);
        }
        out.push('}');
    } else {
        let mut w = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        let cells: Vec<String> = values.map(|v| v.text()).collect();
        let _ = w.write_record(&cells);
        out = String::from_utf8(w.into_inner().unwrap_or_default()).unwrap_or_default();
        out.truncate(out.trim_end_matches(['\n', '\r']).len());
    }
    out
}
