//! Window results as JSON object lines or CSV lines.

use super::value::{Value, Values};
use super::Spec;
use crate::WindowResult;

/// Appends one result as a JSON object line or a CSV line (without its line
/// end), fields in spec order.
pub(super) fn render(spec: &Spec, r: WindowResult<Values, Values>, json: bool, out: &mut String) {
    let values = r
        .key
        .into_iter()
        .chain([
            Value::Int(r.window_start as i64),
            Value::Int(r.window_end as i64),
        ])
        .chain(r.value);
    if json {
        out.push('{');
        for (i, (key, v)) in spec.json_keys.iter().zip(values).enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            v.json(out);
        }
        out.push('}');
    } else {
        out.push_str(&csv_line(values.map(|v| v.text())));
    }
}

/// Cells as one CSV line (without its line end), quoted where needed.
fn csv_line(cells: impl Iterator<Item = String>) -> String {
    let mut line = Vec::with_capacity(96);
    let mut writer = csv_core::Writer::new();
    for (i, text) in cells.enumerate() {
        if i > 0 {
            csv_write(&mut line, |buf| writer.delimiter(buf));
        }
        let mut input = text.as_bytes();
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
    csv_write(&mut line, |buf| writer.finish(buf));
    String::from_utf8(line).unwrap_or_default()
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
        let cells = ["plain", "with,comma", "with \"quote\"", "", "line\nbreak"];
        let long = "x,".repeat(300);
        let cells = cells.iter().map(|c| c.to_string()).chain([long.clone()]);
        let mut expected = csv::WriterBuilder::new()
            .has_headers(false)
            .from_writer(Vec::new());
        expected.write_record(cells.clone()).unwrap();
        let expected = String::from_utf8(expected.into_inner().unwrap()).unwrap();
        let line = csv_line(cells);
        assert_eq!(line, expected.trim_end());
    }
}
