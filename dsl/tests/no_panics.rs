//! No input reaches a panic: the spec parser and the row parsers (the
//! spec's dynamic CSV and JSON rows, the typed `Csv` and `JsonLines`
//! sources) on arbitrary bytes and on near-valid input, mutations of the
//! corpus in `tests/corpus/`. Each either works or returns an error; under
//! the dead-letter policy a run over rows whose header is right never
//! fails, and every data line ends up a record or a dead letter. (The
//! coverage-guided targets in `fuzz/` run the same entry points longer.)

use std::path::Path;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use weir::RunSummary;
use weir::prelude::*;
use weir::spec::Spec;

const FULL: &str = include_str!("corpus/full.toml");
const QUEUES: &str = include_str!("corpus/queues.toml");
const ROWS_CSV: &[u8] = include_bytes!("corpus/rows.csv");
const ROWS_JSONL: &[u8] = include_bytes!("corpus/rows.jsonl");

/// Values a mutation puts in place of a TOML value or a row's field.
fn odd_value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("\"\"".to_string()),
        Just("-1".to_string()),
        Just("0".to_string()),
        Just("18446744073709551616".to_string()),
        Just("-9223372036854775809".to_string()),
        Just("1e309".to_string()),
        Just("NaN".to_string()),
        Just("inf".to_string()),
        Just("[]".to_string()),
        Just("{}".to_string()),
        Just("true".to_string()),
        Just("\"x\"".to_string()),
        Just("\"".to_string()),
        Just("é\u{0}\u{feff}".to_string()),
        Just("2024-02-30T25:61:61Z".to_string()),
        "[a-z0-9_\".,:{}\\[\\] -]{0,12}",
    ]
}

/// One edit of a text: drop, repeat or cut a line, change a value, or
/// insert, delete or replace bytes.
#[derive(Debug, Clone)]
enum Edit {
    DropLine(usize),
    RepeatLine(usize),
    CutAt(usize),
    SetValue(usize, String),
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Replace(usize, u8),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<usize>().prop_map(Edit::DropLine),
        any::<usize>().prop_map(Edit::RepeatLine),
        any::<usize>().prop_map(Edit::CutAt),
        (any::<usize>(), odd_value()).prop_map(|(i, v)| Edit::SetValue(i, v)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..6))
            .prop_map(|(i, b)| Edit::Insert(i, b)),
        (any::<usize>(), 1usize..8).prop_map(|(i, n)| Edit::Delete(i, n)),
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Edit::Replace(i, b)),
    ]
}

/// `text` with `edits` applied; `sep` separates values (`=` in TOML, `,`
/// in CSV, `:` in JSON).
fn mutate(text: &[u8], edits: &[Edit], sep: u8) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = text.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    let mut bytes;
    for e in edits {
        let n = lines.len().max(1);
        match e {
            Edit::DropLine(i) if !lines.is_empty() => {
                lines.remove(i % n);
            }
            Edit::RepeatLine(i) if !lines.is_empty() => {
                let line = lines[i % n].clone();
                lines.insert(i % n, line);
            }
            Edit::SetValue(i, v) if !lines.is_empty() => {
                let line = &mut lines[i % n];
                if let Some(at) = line.iter().position(|&b| b == sep) {
                    line.truncate(at + 1);
                    line.extend_from_slice(v.as_bytes());
                }
            }
            _ => {
                bytes = lines.join(&b'\n');
                let len = bytes.len().max(1);
                match e {
                    Edit::CutAt(i) => bytes.truncate(i % len),
                    Edit::Insert(i, b) => {
                        let at = (i % len).min(bytes.len());
                        bytes.splice(at..at, b.iter().copied());
                    }
                    Edit::Delete(i, k) => {
                        let at = (i % len).min(bytes.len());
                        let end = (at + k).min(bytes.len());
                        bytes.drain(at..end);
                    }
                    Edit::Replace(i, b) if !bytes.is_empty() => {
                        let at = i % bytes.len();
                        bytes[at] = *b;
                    }
                    _ => {}
                }
                lines = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
            }
        }
    }
    lines.join(&b'\n')
}

/// Runs `pipeline` on one worker, failing the test if a worker panicked.
fn run_without_panic(pipeline: &Pipeline) -> Result<RunSummary, String> {
    match pipeline.run(Cluster::threads(1).quiet(true)) {
        Ok(summary) => Ok(summary),
        Err(e) => {
            let text = e.to_string();
            assert!(!text.contains("panicked"), "a panic: {text}");
            Err(text)
        }
    }
}

/// A spec over `input` (a `csv` or `jsonl` file) counting per user with
/// every aggregate, sending bad rows to the dead letters.
fn rows_spec(dir: &Path, kind: &str) -> String {
    format!(
        r#"
name = "rows"
[source]
type = "{kind}"
path = "{input}"
event_time = {{ field = "ts", max_out_of_orderness_ms = 5000 }}
on_error = "dead_letter"
[window]
key = ["user", "region"]
type = "tumbling"
size_ms = 1000
[aggregate]
n = "count(*)"
total = "sum(amount)"
low = "min(amount)"
mean = "avg(amount)"
[sink]
type = "jsonl"
path = "{out}"
[dead_letter]
type = "jsonl"
path = "{bad}"
"#,
        input = dir.join(format!("rows.{kind}")).display(),
        out = dir.join("out.jsonl").display(),
        bad = dir.join("bad.jsonl").display(),
    )
}

/// Runs the rows spec over `bytes`; with a right header (CSV) it must
/// succeed, and events read plus dead letters cover every data line that
/// is not blank.
fn check_rows(kind: &str, bytes: &[u8]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(format!("rows.{kind}")), bytes).unwrap();
    let spec = match Spec::parse(&rows_spec(dir.path(), kind)) {
        Ok(spec) => spec,
        Err(e) => panic!("the rows spec does not parse: {e}"),
    };
    let pipeline = match spec.pipeline() {
        Ok(p) => p,
        // A header without the fields, an empty file, a text column summed.
        Err(_) => return Ok(()),
    };
    let header_ok = kind == "jsonl"
        || bytes
            .split(|&b| b == b'\n')
            .next()
            .is_some_and(|h| h == b"ts,user,region,amount");
    match run_without_panic(&pipeline) {
        Ok(summary) => {
            // CSV records end at `\n`, `\r` or `\r\n`; JSON lines at `\n`.
            let csv = kind == "csv";
            let lines = bytes
                .split(|&b| b == b'\n' || (csv && b == b'\r'))
                .skip(usize::from(csv))
                .filter(|l| !l.trim_ascii().is_empty())
                .count() as u64;
            let taken = summary.events() + summary.dead_letters.iter().map(|(_, n)| n).sum::<u64>();
            // A quoted CSV field may hold line breaks: fewer records than
            // lines then, never more.
            prop_assert!(taken <= lines, "{taken} taken from {lines} lines");
            if kind == "jsonl" || !bytes.contains(&b'"') {
                prop_assert_eq!(taken, lines);
            }
        }
        Err(e) => prop_assert!(!header_ok || kind == "jsonl", "{}", e),
    }
    Ok(())
}

#[derive(Clone, Debug, Serialize, Deserialize)]
struct Row {
    ts: u64,
    user: String,
    region: String,
    amount: Option<f64>,
}

proptest! {
    // 64 cases in the suite; PROPTEST_CASES=N for a longer run by hand.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64),
        ..ProptestConfig::default()
    })]

    #[test]
    fn any_spec_text_parses_or_is_an_error(text in "\\PC{0,400}") {
        let _ = Spec::parse(&text);
    }

    #[test]
    fn near_valid_specs_parse_or_are_errors(
        edits in prop::collection::vec(edit(), 1..5),
        queues in any::<bool>(),
    ) {
        let base = if queues { QUEUES } else { FULL };
        let text = mutate(base.as_bytes(), &edits, b'=');
        let text = String::from_utf8_lossy(&text);
        if let Ok(spec) = Spec::parse(&text) {
            // Building reads the (missing) input files: an error, never a panic.
            let _ = spec.pipeline();
        }
    }

    #[test]
    fn spec_rows_never_panic(
        edits in prop::collection::vec(edit(), 0..6),
        json in any::<bool>(),
    ) {
        let (kind, base, sep) = match json {
            true => ("jsonl", ROWS_JSONL, b':'),
            false => ("csv", ROWS_CSV, b','),
        };
        check_rows(kind, &mutate(base, &edits, sep))?;
    }

    #[test]
    fn arbitrary_bytes_as_spec_rows_never_panic(
        bytes in prop::collection::vec(any::<u8>(), 0..300),
        json in any::<bool>(),
    ) {
        let (kind, mut input) = match json {
            true => ("jsonl", Vec::new()),
            false => ("csv", b"ts,user,region,amount\n".to_vec()),
        };
        input.extend_from_slice(&bytes);
        check_rows(kind, &input)?;
    }

    #[test]
    fn typed_sources_never_panic(
        edits in prop::collection::vec(edit(), 0..6),
        json in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = Pipeline::new("typed");
        let rows = match json {
            true => {
                let path = dir.path().join("rows.jsonl");
                std::fs::write(&path, mutate(ROWS_JSONL, &edits, b':')).unwrap();
                p.source(JsonLines::<Row>::new(&path))
            }
            false => {
                let path = dir.path().join("rows.csv");
                std::fs::write(&path, mutate(ROWS_CSV, &edits, b',')).unwrap();
                p.source(Csv::<Row>::new(&path))
            }
        };
        rows.dead_letters().sink(Collect::new());
        let job = rows.sink(Collect::new());
        let _ = run_without_panic(&job);
    }
}
