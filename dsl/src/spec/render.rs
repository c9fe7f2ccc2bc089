//! Window results as JSON object lines or CSV lines.

use super::Spec;
use super::value::{Value, Values};
use crate::WindowResult;

/// Appends one result as a JSON object line or a CSV line (without its line
/// end), fields in spec order: key values, window start and end, aggregates.
pub(super) fn render(spec: &Spec, r: WindowResult<Values, Values>, json: bool, out: &mut String) {
    if json {
        json_line(&spec.json_keys, &r, out);
    } else {
        csv_line(&r, out);
    }
}

/// Appends a result as a JSON object; `keys` are the escaped field names
/// with their colons, the first after `{`, the others after `,`.
fn json_line(keys: &[String], r: &WindowResult<Values, Values>, out: &mut String) {
    let mut keys = keys.iter();
    cells(r, |v| {
        if let Some(key) = keys.next() {
            out.push_str(key);
            v.json(out);
        }
    });
    out.push('}');
}

/// Appends a result as a CSV line, quoted where needed.
fn csv_line(r: &WindowResult<Values, Values>, out: &mut String) {
    let mut line = Vec::with_capacity(96);
    let mut writer = csv_core::Writer::new();
    let mut first = true;
    cells(r, |v| {
        if !first {
            csv_write(&mut line, |buf| writer.delimiter(buf));
        }
        first = false;
        let mut int = itoa::Buffer::new();
        let text: std::borrow::Cow<'_, str> = match v {
            Value::Int(i) => int.format(*i).into(),
            Value::Str(s) => s.as_str().into(),
            other => other.text().into(),
        };
        csv_field(&mut writer, &mut line, text.as_bytes());
    });
    csv_write(&mut line, |buf| writer.finish(buf));
    // Valid UTF-8: the cells' text and ASCII quotes and commas.
    out.push_str(std::str::from_utf8(&line).unwrap_or_default());
}

/// Calls `f` on each cell of a result in output order, without moving them.
fn cells(r: &WindowResult<Values, Values>, mut f: impl FnMut(&Value)) {
    r.key.iter().for_each(&mut f);
    f(&Value::Int(r.window_start as i64));
    f(&Value::Int(r.window_end as i64));
    r.value.iter().for_each(f);
}

/// Writes one CSV field's text, quoted where needed.
fn csv_field(writer: &mut csv_core::Writer, line: &mut Vec<u8>, mut input: &[u8]) {
    loop {
        let mut buf = [0u8; 256];
        let (result, read, written) = writer.field(input, &mut buf);
        line.extend_from_slice(&buf[..written]);
        input = &input[read..];
        if matches!(result, csv_core::WriteResult::InputEmpty) {
            break;
        }
    }
}

/// Appends what a `csv_core` writer call writes (a delimiter, or the closing
/// quote of a field), retrying with room until it is all written.
fn csv_write(
    line: &mut Vec<u8>,
    mut write: impl FnMut(&mut [u8]) -> (csv_core::WriteResult, usize),
) {
    loop {
        let mut buf = [0u8; 8];
        let (result, written) = write(&mut buf);
        line.extend_from_slice(&buf[..written]);
        if matches!(result, csv_core::WriteResult::InputEmpty) {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CSV cells are quoted as the csv crate quotes them.
    #[test]
    fn csv_lines_quote_like_the_csv_crate() {
        let long = "x,".repeat(300);
        let key: Values = ["plain", "with,comma", "with \"quote\"", "", "line\nbreak"]
            .iter()
            .map(|c| Value::Str(c.to_string()))
            .collect();
        let value: Values = [Value::Str(long.clone()), Value::Int(-7), Value::Null]
            .into_iter()
            .collect();
        let r = WindowResult {
            key,
            window_start: 10,
            window_end: 20,
            value,
        };
        let mut expected = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        let cells = ["plain", "with,comma", "with \"quote\"", "", "line\nbreak"];
        let tail = ["10", "20", long.as_str(), "-7", ""];
        expected.write_record(cells.iter().chain(&tail)).unwrap();
        let expected = String::from_utf8(expected.into_inner().unwrap()).unwrap();
        let mut line = "before\n".to_string();
        csv_line(&r, &mut line);
        assert_eq!(line, format!("before\n{}", expected.trim_end()));
    }

    /// JSON lines name every cell with its key, in order.
    #[test]
    fn json_lines_name_key_window_and_aggregates() {
        let keys: Vec<String> = [
            "{\"k\":",
            ",\"window_start\":",
            ",\"window_end\":",
            ",\"s\":",
        ]
        .map(String::from)
        .to_vec();
        let r = WindowResult {
            key: [Value::Str("a\"b".into())].into_iter().collect(),
            window_start: 0,
            window_end: 1000,
            value: [Value::Float(1.5)].into_iter().collect(),
        };
        let mut line = String::new();
        json_line(&keys, &r, &mut line);
        assert_eq!(
            line,
            r#"{"k":"a\"b","window_start":0,"window_end":1000,"s":1.5}"#
        );
    }
}
