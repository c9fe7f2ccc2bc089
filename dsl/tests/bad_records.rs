//! Error policies of sources on random, out-of-order input with bad lines
//! mixed in: with `dead_letter` every bad line comes out once as a dead
//! letter naming its file and line, with `skip` it is counted and left out,
//! and either way the windowed results are those of the good lines alone
//! (a naive reference), on 1 and several workers and any split size.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use weir::RunSummary;
use weir::prelude::*;
use weir::sources::{DeadLetter, OnError, Origin};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Click {
    ts: u64,
    user: String,
    amount: i64,
}

/// One line of input: a good click, or a bad line of some kind.
#[derive(Clone, Debug)]
enum Line {
    Good(Click),
    /// `amount` is not a number.
    NotANumber(u64),
    /// A field is missing.
    Short(u64),
    /// Bytes that are not UTF-8 in the user.
    NotText(u64),
}

fn line() -> impl Strategy<Value = Line> {
    // Event times within 2 s of each other, out of order; bad lines about
    // one in eight.
    let click = (0u64..2_000, 0u32..5, -50i64..50).prop_map(|(ts, u, amount)| Click {
        ts: 10_000 + ts,
        user: format!("u{u}"),
        amount,
    });
    prop_oneof![
        14 => click.prop_map(Line::Good),
        1 => (0u64..2_000).prop_map(Line::NotANumber),
        1 => (0u64..2_000).prop_map(Line::Short),
        1 => (0u64..2_000).prop_map(Line::NotText),
    ]
}

/// The line's bytes as CSV (`ts,user,amount`) or JSON.
fn bytes(line: &Line, json: bool) -> Vec<u8> {
    match (line, json) {
        (Line::Good(c), false) => format!("{},{},{}", c.ts, c.user, c.amount).into_bytes(),
        (Line::Good(c), true) => serde_json::to_vec(c).unwrap(),
        (Line::NotANumber(ts), false) => format!("{ts},u1,lots").into_bytes(),
        (Line::NotANumber(ts), true) => {
            format!(r#"{{"ts":{ts},"user":"u1","amount":"lots"}}"#).into_bytes()
        }
        (Line::Short(ts), false) => format!("{ts},u1").into_bytes(),
        (Line::Short(ts), true) => format!(r#"{{"ts":{ts},"user":"u1"}}"#).into_bytes(),
        (Line::NotText(ts), false) => [format!("{ts},u").as_bytes(), &[0xff, 0xfe], b",1"].concat(),
        (Line::NotText(ts), true) => [
            format!(r#"{{"ts":{ts},"user":"u"#).as_bytes(),
            &[0xff, 0xfe],
            br#"","amount":1}"#,
        ]
        .concat(),
    }
}

/// A bad line: its file, 1-based line number and bytes.
type BadLine = (PathBuf, u64, Vec<u8>);

/// Writes `files` as CSV (with a header) or JSON lines under `dir`; returns
/// the bad lines.
fn write(dir: &Path, files: &[Vec<Line>], json: bool) -> Vec<BadLine> {
    let mut bad = Vec::new();
    for (i, lines) in files.iter().enumerate() {
        let path = dir.join(format!("in-{i}.{}", if json { "jsonl" } else { "csv" }));
        let mut text = Vec::new();
        let mut number = 0;
        if !json {
            text.extend_from_slice(b"ts,user,amount\n");
            number += 1;
        }
        for line in lines {
            let b = bytes(line, json);
            number += 1;
            if !matches!(line, Line::Good(_)) {
                bad.push((path.clone(), number, b.clone()));
            }
            text.extend_from_slice(&b);
            text.push(b'\n');
        }
        std::fs::write(&path, text).unwrap();
    }
    bad.sort();
    bad
}

/// Counts and sums per user in 1 s windows, naively: `(user, start)` →
/// `(count, sum)`.
fn reference(files: &[Vec<Line>]) -> BTreeMap<(String, u64), (u64, i64)> {
    let mut out = BTreeMap::new();
    for line in files.iter().flatten() {
        if let Line::Good(c) = line {
            let e = out
                .entry((c.user.clone(), c.ts - c.ts % 1000))
                .or_insert((0, 0));
            e.0 += 1;
            e.1 += c.amount;
        }
    }
    out
}

/// What a run gave: its windows, its dead letters, its summary.
struct Ran {
    windows: BTreeMap<(String, u64), (u64, i64)>,
    letters: Vec<DeadLetter>,
    summary: RunSummary,
}

/// Runs the windowed job over `dir`'s input with `policy` on `workers`.
fn run(
    dir: &Path,
    json: bool,
    split: u64,
    policy: OnError,
    workers: usize,
) -> Result<Ran, RunError> {
    let p = Pipeline::new("bad-records");
    let glob = dir.join(if json { "in-*.jsonl" } else { "in-*.csv" });
    let clicks = match json {
        true => p.source(JsonLines::<Click>::new(&glob).split_size(split)),
        false => p.source(Csv::<Click>::new(&glob).split_size(split)),
    };
    let letters = Collect::new();
    let clicks = match policy {
        OnError::DeadLetter => {
            clicks.dead_letters().sink(letters.clone());
            clicks
        }
        policy => clicks.on_error(policy),
    };
    let windows = Collect::new();
    let summary = clicks
        .event_time(|c: &Click| c.ts, Watermark::bounded(Duration::from_secs(3)))
        .key_by(|c: &Click| c.user.clone())
        .window(Tumbling::of(Duration::from_secs(1)))
        .aggregate((
            weir::aggregate::Count,
            weir::aggregate::Sum::of(|c: &Click| c.amount),
        ))
        .sink(windows.clone())
        .run(Cluster::threads(workers).quiet(true))?;
    let windows = windows
        .take()
        .into_iter()
        .map(|w| ((w.key, w.window_start), w.value))
        .collect();
    let mut letters = letters.take();
    letters.sort_by(|a, b| format!("{:?}", a.origin).cmp(&format!("{:?}", b.origin)));
    Ok(Ran {
        windows,
        letters,
        summary,
    })
}

/// The dead letters as `(file, line, bytes)`, each checked to name the
/// source and a reason.
fn letter_lines(letters: &[DeadLetter]) -> Vec<BadLine> {
    let mut got: Vec<_> = letters
        .iter()
        .map(|d| {
            assert!(
                d.source.starts_with("csv(") || d.source.starts_with("jsonl("),
                "{d:?}"
            );
            assert!(!d.reason.is_empty());
            match &d.origin {
                Origin::File { path, line, .. } => (path.clone(), *line, d.raw.clone()),
                other => panic!("a file source's dead letter at {other:?}"),
            }
        })
        .collect();
    got.sort();
    got
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn bad_lines_are_dead_lettered_or_skipped_and_the_rest_counted(
        files in prop::collection::vec(prop::collection::vec(line(), 1..400), 1..4),
        json in any::<bool>(),
        split in prop_oneof![Just(1u64 << 20), 200u64..3_000],
    ) {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(dir.path(), &files, json);
        let want = reference(&files);
        for workers in [1, 3] {
            let ran = run(dir.path(), json, split, OnError::DeadLetter, workers).unwrap();
            prop_assert!(ran.windows == want, "{} workers: the windows differ", workers);
            prop_assert_eq!(letter_lines(&ran.letters), bad.clone(), "{} workers", workers);
            let counted: u64 = ran.summary.dead_letters.iter().map(|(_, n)| n).sum();
            prop_assert_eq!(counted, bad.len() as u64);
            let late: u64 = ran.summary.late.iter().map(|(_, n)| n).sum();
            prop_assert_eq!(late, 0);

            let ran = run(dir.path(), json, split, OnError::Skip, workers).unwrap();
            prop_assert!(ran.windows == want, "{} workers: the windows differ", workers);
            let skipped: u64 = ran.summary.skipped.iter().map(|(_, n)| n).sum();
            prop_assert_eq!(skipped, bad.len() as u64);
            prop_assert!(ran.summary.dead_letters.is_empty());
        }
        // The default stops at a bad line, naming its file and line.
        match run(dir.path(), json, split, OnError::Fail, 2) {
            Ok(_) => prop_assert!(bad.is_empty(), "bad lines, yet the job succeeded"),
            Err(e) => {
                let text = e.to_string();
                prop_assert!(
                    bad.iter().any(|(path, line, _)| text.contains(&format!("{}:{line} ", path.display()))),
                    "{}", text
                );
            }
        }
    }
}

/// A dead letter of a bad line, as JSON in a file, names the source, file,
/// line, offset, the line itself and the reason; bytes that are not UTF-8
/// come as base64.
#[test]
fn dead_letters_written_as_json_lines_name_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let files = vec![vec![
        Line::Good(Click {
            ts: 10_000,
            user: "u1".into(),
            amount: 3,
        }),
        Line::NotANumber(10_500),
        Line::NotText(10_600),
    ]];
    write(dir.path(), &files, false);
    let p = Pipeline::new("letters");
    let clicks = p.source(Csv::<Click>::new(dir.path().join("in-0.csv")));
    let out = dir.path().join("bad.jsonl");
    clicks.dead_letters().sink(JsonLinesFile::to(&out));
    clicks
        .sink(Collect::new())
        .run(Cluster::threads(1).quiet(true))
        .unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let first = &lines[0];
    assert_eq!(first["line"], 3, "{text}");
    assert_eq!(first["offset"], 26, "{text}");
    assert_eq!(first["raw"], "10500,u1,lots", "{text}");
    assert!(first["file"].as_str().unwrap().ends_with("in-0.csv"));
    assert!(first["source"].as_str().unwrap().starts_with("csv("));
    assert!(
        first["reason"].as_str().unwrap().contains("amount"),
        "{text}"
    );
    assert_eq!(lines[1]["line"], 4);
    assert!(lines[1].get("raw").is_none(), "{text}");
    assert!(lines[1]["raw_base64"].as_str().is_some(), "{text}");
    // And they read back.
    let back: Vec<DeadLetter> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(back[0].raw, b"10500,u1,lots");
}

/// Mistakes with policies are plan errors naming the stage: dead letters
/// nobody reads, two policies for one source, a policy on a stream that is
/// not a source's.
#[test]
fn policy_mistakes_are_plan_errors() {
    let p = Pipeline::new("unread");
    let clicks = p
        .source(Iter::new(vec![1u64]))
        .on_error(OnError::DeadLetter);
    let err = clicks.sink(Collect::new()).validate().unwrap_err();
    assert!(err.to_string().contains("#0.dead_letters"), "{err}");

    let p = Pipeline::new("twice");
    let clicks = p
        .source(Iter::new(vec![1u64]))
        .on_error(OnError::Skip)
        .on_error(OnError::Fail);
    let err = clicks.sink(Collect::new()).validate().unwrap_err();
    assert!(
        err.to_string().contains("one error policy per source"),
        "{err}"
    );

    let p = Pipeline::new("mapped");
    let err = p
        .source(Iter::new(vec![1u64]))
        .map(|x| x + 1)
        .on_error(OnError::Skip)
        .sink(Collect::new())
        .validate()
        .unwrap_err();
    assert!(err.to_string().contains("on_error"), "{err}");
}
