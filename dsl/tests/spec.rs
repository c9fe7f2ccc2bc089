//! `weir run SPEC.toml` end to end: CSV in, JSON lines out, on 1 worker, 2
//! workers and 2 processes, checked against a straightforward reference;
//! and the errors a user sees for mistakes in the spec or the data.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Output};

mod processes;

fn weir(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "weir failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `(user, region, window start)` → `(count, sum, min, max)`.
type Windows = BTreeMap<(String, String, u64), (i64, i64, i64, i64)>;

const SPEC: &str = r#"
name = "amount-per-user"

[source]
type = "csv"
path = "events*.csv"
event_time = { field = "ts", max_out_of_orderness_ms = 5000 }

[window]
key = ["user", "region"]
type = "tumbling"
size_ms = 1000

[aggregate]
n = "count(*)"
total = "sum(amount)"
low = "min(amount)"
high = "max(amount)"

[sink]
type = "jsonl"
path = "out.jsonl"
"#;

/// Events over two files, shuffled within a few seconds of event time.
fn write_events(dir: &Path) -> Windows {
    let mut expected: Windows = BTreeMap::new();
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for file in 0..2 {
        let mut csv = String::from("region,ts,user,amount\n");
        for i in 0..2_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let ts = 1_700_000_000_000 + i * 7 + x % 3_000;
            let user = format!("u{}", x % 7);
            let region = ["eu", "us"][(x >> 8) as usize % 2].to_string();
            let amount = (x >> 16) as i64 % 100 - 20;
            writeln!(csv, "{region},{ts},{user},{amount}").unwrap();
            let e = expected.entry((user, region, ts - ts % 1000)).or_insert((
                0,
                0,
                i64::MAX,
                i64::MIN,
            ));
            e.0 += 1;
            e.1 += amount;
            e.2 = e.2.min(amount);
            e.3 = e.3.max(amount);
        }
        std::fs::write(dir.join(format!("events{file}.csv")), csv).unwrap();
    }
    expected
}

fn read_results(path: &Path) -> Windows {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            // Fields come in spec order, integers as integers.
            let names = [
                "user",
                "region",
                "window_start",
                "window_end",
                "n",
                "total",
                "low",
                "high",
            ];
            let at: Vec<usize> = names
                .iter()
                .map(|n| l.find(&format!("\"{n}\":")).unwrap())
                .collect();
            assert!(at.windows(2).all(|w| w[0] < w[1]), "{l}");
            assert!(!l.contains(".0"), "integers stay integers: {l}");
            assert_eq!(
                v["window_end"].as_u64().unwrap() - v["window_start"].as_u64().unwrap(),
                1000
            );
            (
                (
                    v["user"].as_str().unwrap().to_string(),
                    v["region"].as_str().unwrap().to_string(),
                    v["window_start"].as_u64().unwrap(),
                ),
                (
                    v["n"].as_i64().unwrap(),
                    v["total"].as_i64().unwrap(),
                    v["low"].as_i64().unwrap(),
                    v["high"].as_i64().unwrap(),
                ),
            )
        })
        .collect()
}

#[test]
fn csv_in_jsonl_out_on_one_and_two_workers_and_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let expected = write_events(dir.path());
    std::fs::write(dir.path().join("spec.toml"), SPEC).unwrap();

    ok(&weir(&["run", "spec.toml", "-q"], dir.path()));
    assert_eq!(read_results(&dir.path().join("out.jsonl")), expected);

    ok(&weir(&["run", "spec.toml", "-q", "-w", "2"], dir.path()));
    assert_eq!(read_results(&dir.path().join("out.jsonl")), expected);

    let mut hosts = String::new();
    for _ in 0..2 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        writeln!(hosts, "{}", l.local_addr().unwrap()).unwrap();
    }
    std::fs::write(dir.path().join("hosts"), hosts).unwrap();
    let children: Vec<_> = (0..2)
        .map(|p| {
            Command::new(env!("CARGO_BIN_EXE_weir"))
                .args([
                    "run",
                    "spec.toml",
                    "-q",
                    "-w",
                    "2",
                    "-n",
                    "2",
                    "-H",
                    "hosts",
                    "-p",
                    &p.to_string(),
                ])
                .current_dir(dir.path())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        ok(&c.wait_with_output().unwrap());
    }
    // One `path`: one file holding every result, written by process 0.
    assert_eq!(read_results(&dir.path().join("out.jsonl")), expected);
}

/// Runs `weir run spec.toml -q` with `input` on standard input.
fn weir_with_stdin(dir: &Path, input: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "spec.toml", "-q", "-w", "2"])
        .current_dir(dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// The same events as JSON lines files, and as CSV and JSON lines on
/// standard input, give the same windows.
#[test]
fn jsonl_files_and_stdin_give_the_same_results_as_csv() {
    let dir = tempfile::tempdir().unwrap();
    let expected = write_events(dir.path());
    // JSON lines: fields in another order, a field the spec does not read,
    // numbers as numbers and (for the amount) sometimes as strings.
    let mut jsonl = String::new();
    let mut csv = String::from("region,ts,user,amount\n");
    // The two files' rows interleaved, so that one stream stays within the
    // spec's bound of out-of-orderness.
    let files: Vec<String> = (0..2)
        .map(|f| std::fs::read_to_string(dir.path().join(format!("events{f}.csv"))).unwrap())
        .collect();
    let rows: Vec<Vec<&str>> = files.iter().map(|t| t.lines().skip(1).collect()).collect();
    for i in 0..rows[0].len() {
        for (file, file_rows) in rows.iter().enumerate() {
            let line = file_rows[i];
            let f: Vec<&str> = line.split(',').collect();
            let amount = if (i + file) % 3 == 0 {
                format!("\"{}\"", f[3])
            } else {
                f[3].to_string()
            };
            writeln!(
                jsonl,
                r#"{{"user":"{}","extra":{{"a":[1,2]}},"amount":{amount},"ts":{},"region":"{}"}}"#,
                f[2], f[1], f[0]
            )
            .unwrap();
            writeln!(csv, "{line}").unwrap();
        }
    }
    std::fs::write(dir.path().join("events.jsonl"), &jsonl).unwrap();

    let jsonl_spec = SPEC.replace(
        "type = \"csv\"\npath = \"events*.csv\"",
        "type = \"jsonl\"\npath = \"events.jsonl\"",
    );
    std::fs::write(dir.path().join("spec.toml"), &jsonl_spec).unwrap();
    ok(&weir(&["run", "spec.toml", "-q", "-w", "2"], dir.path()));
    assert_eq!(read_results(&dir.path().join("out.jsonl")), expected);

    let stdin_csv = SPEC.replace(
        "type = \"csv\"\npath = \"events*.csv\"",
        "type = \"stdin\"\nformat = \"csv\"",
    );
    std::fs::write(dir.path().join("spec.toml"), &stdin_csv).unwrap();
    ok(&weir_with_stdin(dir.path(), &csv));
    assert_eq!(read_results(&dir.path().join("out.jsonl")), expected);

    let stdin_jsonl = SPEC.replace(
        "type = \"csv\"\npath = \"events*.csv\"",
        "type = \"stdin\"\nformat = \"jsonl\"",
    );
    std::fs::write(dir.path().join("spec.toml"), &stdin_jsonl).unwrap();
    ok(&weir_with_stdin(dir.path(), &jsonl));
    assert_eq!(read_results(&dir.path().join("out.jsonl")), expected);

    // Quoted CSV fields with commas split as CSV does.
    let quoted = csv.replacen("region,ts,user,amount", "region,ts,\"user\",amount", 1);
    std::fs::write(dir.path().join("spec.toml"), &stdin_csv).unwrap();
    ok(&weir_with_stdin(dir.path(), &quoted));
    assert_eq!(read_results(&dir.path().join("out.jsonl")), expected);

    // A bad line on standard input names its line, byte offset and reason.
    std::fs::write(dir.path().join("spec.toml"), &stdin_csv).unwrap();
    let out = weir_with_stdin(
        dir.path(),
        "region,ts,user,amount\r\neu,1700000000000,u1,5\neu,soon,u2,7\n",
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("<stdin>:3 (byte 45)") && err.contains("field `ts`: expected the event time"),
        "{err}"
    );

    // A bad JSON line names the line and the reason.
    let bad = jsonl.replacen("\"ts\":", "\"ts\":\"soon\",\"x\":", 1);
    std::fs::write(dir.path().join("events.jsonl"), bad).unwrap();
    std::fs::write(dir.path().join("spec.toml"), &jsonl_spec).unwrap();
    let out = weir(&["run", "spec.toml", "-q"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("events.jsonl:1") && err.contains("field `ts`: expected the event time"),
        "{err}"
    );
}

#[test]
fn csv_sink_and_session_windows() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("events.csv"),
        "ts,user,amount\n1000,ann,10\n2000,bob,5.5\n3000,ann,7\n40000,ann,1\n39000,bob,2\n",
    )
    .unwrap();
    let spec = r#"
name = "sessions"
[source]
type = "csv"
path = "events.csv"
event_time = { field = "ts", max_out_of_orderness_ms = 2000 }
[window]
key = "user"
type = "session"
gap_ms = 30000
[aggregate]
count = "count(*)"
total = "sum(amount)"
mean = "avg(amount)"
[sink]
type = "csv"
path = "out.csv"
"#;
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    ok(&weir(&["run", "spec.toml", "-q", "-w", "2"], dir.path()));
    let text = std::fs::read_to_string(dir.path().join("out.csv")).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.remove(0),
        "user,window_start,window_end,count,total,mean"
    );
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "ann,1000,33000,2,17,8.5",
            "ann,40000,70000,1,1,1.0",
            "bob,2000,32000,1,5.5,5.5",
            "bob,39000,69000,1,2,2.0",
        ]
    );
}

fn spec_error(spec: &str, csv: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.csv"), csv).unwrap();
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    let out = weir(&["run", "spec.toml", "-q"], dir.path());
    assert!(!out.status.success());
    String::from_utf8(out.stderr).unwrap()
}

const GOOD_CSV: &str = "ts,user,amount\n1000,ann,10\n";

#[test]
fn mistakes_name_the_field_and_what_is_expected() {
    let unknown = SPEC.replace("size_ms = 1000", "size_ms = 1000\nsise_ms = 5");
    let err = spec_error(&unknown, GOOD_CSV);
    assert!(err.contains("unknown field `sise_ms`"), "{err}");

    let zero = SPEC.replace("size_ms = 1000", "size_ms = 0");
    let err = spec_error(&zero, GOOD_CSV);
    assert!(
        err.contains("`window.size_ms`: expected the window size in milliseconds, above 0"),
        "{err}"
    );

    let slide = SPEC.replace(
        "type = \"tumbling\"\nsize_ms = 1000",
        "type = \"sliding\"\nsize_ms = 1000\nslide_ms = 2000",
    );
    let err = spec_error(&slide, GOOD_CSV);
    assert!(
        err.contains("`window.slide_ms`: expected a slide no longer than size_ms (1000), got 2000"),
        "{err}"
    );

    let bad_agg = SPEC.replace("\"sum(amount)\"", "\"median(amount)\"");
    let err = spec_error(&bad_agg, GOOD_CSV);
    assert!(
        err.contains("`aggregate.total`") && err.contains("got `median(amount)`"),
        "{err}"
    );

    let wrong_type = SPEC.replace("size_ms = 1000", "size_ms = \"1s\"");
    let err = spec_error(&wrong_type, GOOD_CSV);
    assert!(
        err.contains("size_ms") && err.contains("invalid type"),
        "{err}"
    );

    // A field the data does not have.
    let err = spec_error(&SPEC.replace("events*.csv", "events.csv"), GOOD_CSV);
    assert!(
        err.contains("`window.key`") && err.contains("`region` is not among ts, user, amount"),
        "{err}"
    );
}

#[test]
fn bad_rows_stop_the_job_naming_file_line_and_field() {
    let spec = SPEC
        .replace("events*.csv", "events.csv")
        .replace("key = [\"user\", \"region\"]", "key = \"user\"");
    let err = spec_error(&spec, "ts,user,amount\n1000,ann,10\n2000,bob,lots\n");
    assert!(
        err.contains("events.csv:3") && err.contains("field `amount`: expected a number"),
        "{err}"
    );
    let err = spec_error(&spec, "ts,user,amount\n1000,ann,10\nsoon,bob,1\n");
    assert!(
        err.contains("events.csv:3") && err.contains("field `ts`: expected the event time"),
        "{err}"
    );
}

#[test]
fn nexmark_bids_per_auction_match_a_direct_count() {
    let dir = tempfile::tempdir().unwrap();
    let spec = r#"
name = "bids-per-auction"
[source]
type = "nexmark"
events = 20000
event_time = { field = "date_time", max_out_of_orderness_ms = 0 }
[window]
key = "auction"
type = "tumbling"
size_ms = 500
[aggregate]
bids = "count(*)"
top = "max(price)"
[sink]
type = "jsonl"
path = "out.jsonl"
"#;
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    ok(&weir(&["run", "spec.toml", "-q", "-w", "2"], dir.path()));

    // The reference: the same generator, read in order on one thread.
    let config = weir::sources::NexmarkConfig::default();
    let mut expected: BTreeMap<(u64, u64), (u64, u64)> = BTreeMap::new();
    for event in weir::sources::EventGenerator::new(config).take(20_000) {
        if let weir::sources::Event::Bid(b) = event {
            let e = expected
                .entry((b.auction as u64, b.date_time - b.date_time % 500))
                .or_insert((0, 0));
            e.0 += 1;
            e.1 = e.1.max(b.price as u64);
        }
    }
    let text = std::fs::read_to_string(dir.path().join("out.jsonl")).unwrap();
    let got: BTreeMap<(u64, u64), (u64, u64)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let key = (
                v["auction"].as_u64().unwrap(),
                v["window_start"].as_u64().unwrap(),
            );
            (
                key,
                (v["bids"].as_u64().unwrap(), v["top"].as_u64().unwrap()),
            )
        })
        .collect();
    assert!(expected.len() > 50);
    assert_eq!(got, expected);

    let bad = spec.replace("key = \"auction\"", "key = \"seller\"");
    let err = spec_error(&bad, GOOD_CSV);
    assert!(
        err.contains("`window.key`") && err.contains("`seller` is not among auction, bidder"),
        "{err}"
    );
}

/// A Nexmark spec over bids, with `from` replaced by `to`.
fn nexmark_spec(from: &str, to: &str) -> String {
    r#"
    name = "bids"
    [source]
    type = "nexmark"
    events = 100
    event_time = { field = "date_time", max_out_of_orderness_ms = 0 }
    [window]
    key = "auction"
    type = "tumbling"
    size_ms = 1000
    [aggregate]
    total = "sum(price)"
    [sink]
    type = "stdout"
    "#
    .replace(from, to)
}

/// Whether the Nexmark spec with `from` replaced by `to` parses.
fn nexmark_parses(from: &str, to: &str) -> bool {
    weir::spec::Spec::parse(&nexmark_spec(from, to)).is_ok()
}

/// The error parsing the Nexmark spec with `from` replaced by `to`.
fn nexmark_error(from: &str, to: &str) -> String {
    match weir::spec::Spec::parse(&nexmark_spec(from, to)) {
        Ok(_) => panic!("`{to}` in place of `{from}` parsed"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn nexmark_field_types_are_checked_when_the_spec_is_parsed() {
    assert!(nexmark_parses("", ""));
    let err = nexmark_error("sum(price)", "sum(url)");
    assert!(
        err.contains("`aggregate.total`") && err.contains("got `url`, which is text"),
        "{err}"
    );
    let err = nexmark_error("sum(price)", "avg(channel)");
    assert!(err.contains("`aggregate.total`"), "{err}");
    let err = nexmark_error("field = \"date_time\"", "field = \"channel\"");
    assert!(
        err.contains("`source.event_time.field`")
            && err.contains("an integer field of Nexmark bids")
            && err.contains("`channel`"),
        "{err}"
    );
    // min and max of text are fine.
    assert!(nexmark_parses("sum(price)", "max(url)"));
}

#[test]
fn kinds_are_checked_with_the_accepted_list_and_their_own_fields() {
    let err = nexmark_error("type = \"nexmark\"", "type = \"pulsar\"");
    assert!(
        err.contains("unknown variant `pulsar`")
            && err.contains("`csv`, `jsonl`, `stdin`, `nexmark`, `kafka`"),
        "{err}"
    );
    let err = nexmark_error("type = \"stdout\"", "type = \"stdrr\"");
    assert!(
        err.contains("unknown variant `stdrr`") && err.contains("`jsonl`, `csv`, `stdout`"),
        "{err}"
    );
    // A field of another window kind.
    let err = nexmark_error("size_ms = 1000", "size_ms = 1000\ngap_ms = 5");
    assert!(
        err.contains(
            "`window.gap_ms`: expected no `gap_ms` for a tumbling window, which takes `size_ms`"
        ),
        "{err}"
    );
    // A path on stdout.
    let err = nexmark_error("type = \"stdout\"", "type = \"stdout\"\npath = \"x\"");
    assert!(err.contains("`sink.path`: expected no `path`"), "{err}");
    // A path on a Nexmark source.
    let err = nexmark_error("events = 100", "events = 100\npath = \"x\"");
    assert!(
        err.contains("`source.path`: expected no `path` for a source of type `nexmark`"),
        "{err}"
    );
}

/// A sink whose writes fail (the file sink writes on a thread of its own)
/// stops the job with an error naming the sink and the reason.
#[test]
fn a_failing_sink_write_stops_the_job_naming_the_sink() {
    if !Path::new("/dev/full").exists() {
        panic!("this test needs /dev/full (Linux)");
    }
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path());
    let spec = SPEC.replace("path = \"out.jsonl\"", "path = \"/dev/full\"");
    std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
    for workers in ["1", "2"] {
        let out = weir(&["run", "spec.toml", "-q", "-w", workers], dir.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("/dev/full") && stderr.contains("No space left on device"),
            "{stderr}"
        );
    }
}

/// `weir run` with a `[checkpoint]` table, killed with SIGKILL three times
/// once it has committed a checkpoint and run again each time: its CSV
/// output (header once) equals a run without checkpoints.
#[test]
fn a_spec_with_checkpoints_killed_and_run_again_writes_its_output_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("ts,user,amount\n");
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut t = 1_700_000_000_000u64;
    for _ in 0..300_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t += x % 3;
        csv.push_str(&format!("{},u{},{}\n", t - x % 300, x % 500, x % 100));
    }
    std::fs::write(dir.path().join("events.csv"), csv).unwrap();
    let spec = |out: &str, checkpoint: &str| {
        format!(
            r#"
name = "resumed"
[source]
type = "csv"
path = "events.csv"
event_time = {{ field = "ts", max_out_of_orderness_ms = 200 }}
[window]
key = "user"
type = "session"
gap_ms = 1500
[aggregate]
n = "count(*)"
total = "sum(amount)"
[sink]
type = "csv"
path = "{out}"
{checkpoint}
"#
        )
    };
    std::fs::write(dir.path().join("plain.toml"), spec("plain.csv", "")).unwrap();
    let checkpoint = "[checkpoint]\ndir = \"checkpoints\"\ninterval_ms = 50\nkeep = 3\n";
    std::fs::write(dir.path().join("ck.toml"), spec("out.csv", checkpoint)).unwrap();
    ok(&weir(&["run", "plain.toml", "-q", "-w", "2"], dir.path()));
    let committed = |dir: &Path| {
        std::fs::read_dir(dir.join("checkpoints"))
            .into_iter()
            .flatten()
            .filter(|e| e.as_ref().unwrap().path().join("MANIFEST.json").exists())
            .count()
    };
    let kill_after_a_checkpoint = |workers: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "ck.toml", "-q", "-w", workers])
            .current_dir(dir.path())
            .spawn()
            .unwrap();
        let before = committed(dir.path());
        let start = std::time::Instant::now();
        while committed(dir.path()) <= before && start.elapsed().as_secs() < 60 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let _ = child.kill();
        let _ = child.wait();
    };
    for workers in ["1", "3", "2"] {
        kill_after_a_checkpoint(workers);
    }
    let out = weir(&["run", "ck.toml", "-w", "2"], dir.path());
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("restored from the checkpoint at"), "{err}");
    assert!(err.contains("checkpoints:"), "{err}");
    let lines = |name: &str| {
        let text = std::fs::read_to_string(dir.path().join(name)).unwrap();
        let mut lines: Vec<String> = text.lines().map(String::from).collect();
        let header = lines.remove(0);
        lines.sort();
        (header, lines)
    };
    let (header, got) = lines("out.csv");
    let (_, want) = lines("plain.csv");
    assert_eq!(header, "user,window_start,window_end,n,total");
    assert!(!got.contains(&header), "the header is written once");
    assert_eq!(got.len(), want.len());
    assert!(
        got == want,
        "the output differs from a run without checkpoints"
    );

    // `--fresh` starts over on purpose: killed past a checkpoint, then run
    // fresh, the job restores nothing and writes its output once.
    kill_after_a_checkpoint("2");
    assert!(committed(dir.path()) > 0);
    let out = weir(&["run", "ck.toml", "--fresh", "-w", "2"], dir.path());
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("starting fresh"), "{err}");
    assert!(!err.contains("restored from"), "{err}");
    let (header, got) = lines("out.csv");
    assert_eq!(header, "user,window_start,window_end,n,total");
    assert!(got == want, "the fresh run's output differs");
    let out = weir(&["run", "plain.toml", "--fresh", "-q"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[checkpoint]"), "{err}");
}

#[test]
fn checkpoint_mistakes_name_the_field() {
    let with = |table: &str| format!("{SPEC}\n[checkpoint]\n{table}\n");
    let err = spec_error(&with("dir = \"c\"\ninterval_ms = 0"), GOOD_CSV);
    assert!(err.contains("checkpoint.interval_ms"), "{err}");
    let err = spec_error(&with("dir = \"c\"\ninterval_ms = 10\nkeep = 0"), GOOD_CSV);
    assert!(err.contains("checkpoint.keep"), "{err}");
    let err = spec_error(&with("interval_ms = 10"), GOOD_CSV);
    assert!(err.contains("missing field `dir`"), "{err}");
    let stdout = SPEC.replace(
        "type = \"jsonl\"\npath = \"out.jsonl\"",
        "type = \"stdout\"",
    );
    let csv = "region,ts,user,amount\neu,1000,ann,10\n";
    let err = spec_error(
        &format!("{stdout}\n[checkpoint]\ndir = \"c\"\ninterval_ms = 10\n"),
        csv,
    );
    assert!(
        err.contains("checkpoint") && err.contains("stdout"),
        "{err}"
    );
}

/// Kafka source mistakes name the field (or, in a `weir` built without the
/// `kafka` feature, say that the feature is needed).
#[test]
fn kafka_source_mistakes_name_the_field() {
    let spec = |source: &str| {
        format!(
            r#"
name = "k"
[source]
type = "kafka"
{source}
event_time = {{ field = "ts", max_out_of_orderness_ms = 0 }}
[window]
key = "user"
type = "tumbling"
size_ms = 1000
[aggregate]
n = "count(*)"
[sink]
type = "stdout"
"#
        )
    };
    let err = spec_error(&spec("topic = \"t\""), GOOD_CSV);
    if !cfg!(feature = "kafka") {
        assert!(
            err.contains("source.type") && err.contains("`kafka` feature"),
            "{err}"
        );
        return;
    }
    assert!(err.contains("source.brokers"), "{err}");
    let with = |rest: &str| spec_error(&spec(&format!("brokers = \"b:1\"\n{rest}")), GOOD_CSV);
    let err = with("");
    assert!(err.contains("source.topic"), "{err}");
    let err = with("topic = \"t\"\nformat = \"csv\"");
    assert!(
        err.contains("source.fields") && err.contains("columns"),
        "{err}"
    );
    let err = with("topic = \"t\"\nformat = \"csv\"\nfields = [\"ts\", \"amount\"]");
    assert!(
        err.contains("source.fields") && err.contains("user"),
        "{err}"
    );
    let err = with("topic = \"t\"\nstart = \"yesterday\"");
    assert!(err.contains("source.start"), "{err}");
    let err = with("topic = \"t\"\nstart = \"committed\"");
    assert!(err.contains("source.group"), "{err}");
    let err = with("topic = \"t\"\npath = \"x\"");
    assert!(err.contains("source.path"), "{err}");
    let csv = SPEC.replace("type = \"csv\"", "type = \"csv\"\ntopic = \"t\"");
    let err = spec_error(&csv, GOOD_CSV);
    assert!(err.contains("source.topic"), "{err}");

    // The Kafka sink's mistakes.
    let sink = |table: &str| {
        SPEC.replace(
            "type = \"jsonl\"\npath = \"out.jsonl\"",
            &format!("type = \"kafka\"\n{table}"),
        )
    };
    let csv = "region,ts,user,amount\neu,1000,ann,10\n";
    let err = spec_error(&sink("topic = \"t\""), csv);
    assert!(err.contains("sink.brokers"), "{err}");
    let err = spec_error(&sink("brokers = \"b:1\""), csv);
    assert!(err.contains("sink.topic"), "{err}");
    let err = spec_error(
        &sink("brokers = \"b:1\"\ntopic = \"t\"\nkey = \"amount\""),
        csv,
    );
    assert!(
        err.contains("sink.key") && err.contains("user, region"),
        "{err}"
    );
    let err = spec_error(
        &SPEC.replace(
            "path = \"out.jsonl\"",
            "path = \"out.jsonl\"\ntopic = \"t\"",
        ),
        csv,
    );
    assert!(err.contains("sink.topic"), "{err}");
}

/// Mistakes a new user makes, found when the spec is checked rather than
/// at the first row or never: a schema entry for a column the input does
/// not have, a sum over a text column (from the schema, or from the first
/// rows of the file), an empty CSV file, standard input without a format
/// (it was read as JSON lines without a word). With `RUST_BACKTRACE=1` (set in
/// many shells and CI) the error is still a message, not a backtrace.
#[test]
fn spec_mistakes_are_found_before_the_job_runs() {
    let csv = "region,ts,user,amount\neu,1000,ann,10\nus,2000,bob,7\n";
    let typo = SPEC.replace(
        "event_time = {",
        "schema = { amont = \"int\" }\nevent_time = {",
    );
    let err = spec_error(&typo, csv);
    assert!(
        err.contains("`source.schema.amont`: expected a column of events.csv; `amont` is not among region, ts, user, amount"),
        "{err}"
    );

    let sum_text = SPEC.replace("sum(amount)", "sum(user)");
    let err = spec_error(&sum_text, csv);
    assert!(
        err.contains("`aggregate.total`: expected a number field to sum or average; `user` holds text in events.csv (line 2: `ann`)"),
        "{err}"
    );
    let typed = sum_text.replace(
        "event_time = {",
        "schema = { user = \"string\" }\nevent_time = {",
    );
    let err = spec_error(&typed, csv);
    assert!(
        err.contains("`aggregate.total`: expected a number field to sum or average; the schema makes `user` text"),
        "{err}"
    );

    let stdin = SPEC.replace("type = \"csv\"\npath = \"events*.csv\"", "type = \"stdin\"");
    let err = spec_error(&stdin, csv);
    assert!(
        err.contains("`source.format`: expected the format of standard input: `jsonl`"),
        "{err}"
    );

    let err = spec_error(SPEC, "");
    assert!(
        err.contains("`source.path`: expected a CSV file with a header row; events.csv is empty"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("events.csv"), csv).unwrap();
    std::fs::write(dir.path().join("spec.toml"), &typo).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "spec.toml", "-q"])
        .env("RUST_BACKTRACE", "1")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("Error: spec field `source.schema.amont`"),
        "{err}"
    );
    assert!(
        !err.contains("backtrace"),
        "a backtrace for a spec mistake: {err}"
    );
}

/// The event time as epoch seconds (integer or fractional) and as RFC 3339
/// timestamps (with offsets) gives the windows of the same times in
/// milliseconds; a value not in the format names the field, the format and
/// the value.
#[test]
fn event_time_formats_ms_s_and_rfc3339_agree() {
    let spec = |format: &str| {
        SPEC.replace("events*.csv", "events.csv").replace(
            "event_time = { field = \"ts\",",
            &format!("event_time = {{ field = \"ts\", format = \"{format}\","),
        )
    };
    let rows = [
        (1_700_000_000_250u64, "ann", "eu", 3),
        (1_700_000_000_900, "bob", "us", 4),
        (1_700_000_001_000, "ann", "eu", 5),
        (1_700_000_003_500, "ann", "eu", 6),
    ];
    let csv = |ts: &dyn Fn(u64) -> String| {
        let mut text = String::from("region,ts,user,amount\n");
        for (t, user, region, amount) in rows {
            writeln!(text, "{region},{},{user},{amount}", ts(t)).unwrap();
        }
        text
    };
    let run = |spec: &str, csv: &str| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("events.csv"), csv).unwrap();
        std::fs::write(dir.path().join("spec.toml"), spec).unwrap();
        ok(&weir(&["run", "spec.toml", "-q"], dir.path()));
        read_results(&dir.path().join("out.jsonl"))
    };
    let ms = run(&spec("ms"), &csv(&|t| t.to_string()));
    assert_eq!(ms.len(), 4);
    let seconds = run(&spec("s"), &csv(&|t| format!("{}", t as f64 / 1000.0)));
    assert_eq!(seconds, ms);
    // 1_700_000_000_000 ms is 2023-11-14T22:13:20Z; the same instants at +01:00.
    let rfc3339 = run(
        &spec("rfc3339"),
        &csv(&|t| {
            format!(
                "2023-11-14T23:13:{:06.3}+01:00",
                (t - 1_700_000_000_000) as f64 / 1000.0 + 20.0
            )
        }),
    );
    assert_eq!(rfc3339, ms);

    let err = spec_error(
        &spec("rfc3339"),
        "region,ts,user,amount\neu,yesterday,ann,1\n",
    );
    assert!(
        err.contains("events.csv:2")
            && err.contains("field `ts`: expected the event time as an RFC 3339 timestamp")
            && err.contains("got `yesterday`"),
        "{err}"
    );
    let err = spec_error(&spec("ms"), "region,ts,user,amount\neu,1.5,ann,1\n");
    assert!(
        err.contains(
            "field `ts`: expected the event time as integer milliseconds since the epoch, got `1.5`"
        ),
        "{err}"
    );
}

/// The run summary names the sink as the spec does (`jsonl(out.jsonl)`,
/// not the text sink that writes it) and counts in words.
#[test]
fn the_run_summary_names_the_sink_as_the_spec_does() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("events.csv"),
        "region,ts,user,amount\neu,1000,ann,3\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        SPEC.replace("events*.csv", "events.csv"),
    )
    .unwrap();
    let out = weir(&["run", "spec.toml"], dir.path());
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("  source csv(events.csv): 1 event read\n"),
        "{err}"
    );
    assert!(
        err.contains("  sink jsonl(out.jsonl): 1 record written\n"),
        "{err}"
    );
    let explain = weir(&["explain", "spec.toml"], dir.path());
    let plan = String::from_utf8_lossy(&explain.stdout);
    assert!(plan.contains("sink jsonl(out.jsonl)"), "{plan}");
}

/// Starts process `process` of 2 of the spec job in `dir` with host file
/// `hosts`, waiting at most `timeout_s` for the other, and returns its exit
/// code, stdout and stderr (it must end within 30 s).
fn start_alone(dir: &Path, hosts: &Path, process: usize, timeout_s: u64) -> (i32, String, String) {
    let child = start_process(dir, hosts, process, timeout_s, None);
    let started = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Process `process` of 2 of the spec job in `dir`, with host file `hosts`,
/// waiting at most `timeout_s` for the other, with the cluster secret
/// `secret` in the environment (none if `None`).
fn start_process(
    dir: &Path,
    hosts: &Path,
    process: usize,
    timeout_s: u64,
    secret: Option<&str>,
) -> std::process::Child {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .args([
            "run",
            "spec.toml",
            "-q",
            "-n",
            "2",
            "-p",
            &process.to_string(),
        ])
        .args(["-H", &hosts.display().to_string()])
        .args(["--connect-timeout", &timeout_s.to_string()])
        .env_remove("WEIR_CLUSTER_SECRET")
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    if let Some(secret) = secret {
        command.env("WEIR_CLUSTER_SECRET", secret);
    }
    command.spawn().unwrap()
}

/// Starting a cluster goes right or says why not, on stderr, within the
/// connect timeout: a process whose peer never comes names the missing
/// process and its address (and prints nothing on stdout, where timely
/// used to print `awaiting connections`); a port in use, a port that does
/// not exist and another program listening at a peer's address are errors
/// naming the address and its line of the host file.
#[test]
fn a_cluster_that_cannot_start_says_why() {
    use std::net::TcpListener;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("events.csv"),
        "region,ts,user,amount\neu,1000,ann,3\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("spec.toml"),
        SPEC.replace("events*.csv", "events.csv"),
    )
    .unwrap();
    let free = || {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().to_string()
    };
    let (a, b) = (free(), free());
    let hosts = dir.path().join("hosts.txt");
    std::fs::write(&hosts, format!("{a}\n{b}\n")).unwrap();

    let (code, stdout, stderr) = start_alone(dir.path(), &hosts, 0, 2);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "stdout: {stdout}");
    assert!(
        stderr.contains(&format!("waited for process 1 ({b}) to connect")),
        "{stderr}"
    );

    let (code, stdout, stderr) = start_alone(dir.path(), &hosts, 1, 2);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty(), "stdout: {stdout}");
    assert!(
        stderr.contains(&format!("could not reach process 0 at {a}")),
        "{stderr}"
    );

    // Process 0's port taken by another program, which answers like a web
    // server: process 0 cannot listen, process 1 finds a stranger.
    let busy = TcpListener::bind(&a).unwrap();
    let (code, _, stderr) = start_alone(dir.path(), &hosts, 0, 2);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "process 0 cannot listen on {a} (line 1 of the host file)"
        )),
        "{stderr}"
    );
    let stranger = std::thread::spawn(move || {
        use std::io::Write;
        let (mut conn, _) = busy.accept().unwrap();
        let _ = conn.write_all(b"HTTP/1.0 400 Bad Request\r\n\r\n");
    });
    let (code, _, stderr) = start_alone(dir.path(), &hosts, 1, 5);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{a} (line 1 of the host file) answered, but not as process 0"
        )),
        "{stderr}"
    );
    stranger.join().unwrap();

    std::fs::write(&hosts, format!("127.0.0.1:99999\n{b}\n")).unwrap();
    let (code, _, stderr) = start_alone(dir.path(), &hosts, 1, 2);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("--hostfile") && stderr.contains("line 1 (process 0) is `127.0.0.1:99999`"),
        "{stderr}"
    );
}

/// Waits for `child` (at most 30 s): its exit code and stderr.
fn ended(child: std::process::Child) -> (i32, String) {
    processes::wait(child, std::time::Duration::from_secs(30))
}

/// With a cluster secret, processes that know it run together; a process
/// with another secret or none is refused, with an error on the side that
/// dialled and a refusal on the side that listened (which then times out
/// waiting for the right peer). The secret shows nowhere.
#[test]
fn a_cluster_secret_lets_in_only_processes_that_know_it() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path());
    std::fs::write(dir.path().join("spec.toml"), SPEC).unwrap();
    let hosts = processes::free_hostfile(dir.path(), 2);

    let both: Vec<_> = (0..2)
        .map(|p| start_process(dir.path(), &hosts, p, 4, Some("s3cret-one")))
        .collect();
    for child in both {
        let (code, err) = ended(child);
        assert_eq!(code, 0, "{err}");
    }

    for (theirs, says) in [
        (Some("s3cret-two"), "does not know this cluster's secret"),
        (None, "requires a cluster secret"),
    ] {
        let listener = start_process(dir.path(), &hosts, 0, 4, Some("s3cret-one"));
        let dialler = start_process(dir.path(), &hosts, 1, 4, theirs);
        let (code, err) = ended(dialler);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains("process 0 at 127.0.0.1:") && err.contains(says),
            "{err}"
        );
        let (code, refused) = ended(listener);
        assert_eq!(code, 1, "{refused}");
        assert!(
            refused.contains("process 0 refused a connection from 127.0.0.1:"),
            "{refused}"
        );
        assert!(refused.contains("waited for process 1"), "{refused}");
        for text in [&err, &refused] {
            assert!(!text.contains("s3cret"), "the secret shows: {text}");
        }
    }
}

/// A job that fails on a bad row leaves the previous run's output as it
/// was, and says where its partial output is; a job that completes
/// replaces it.
#[test]
fn a_failed_run_leaves_the_previous_output_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let expected = write_events(dir.path());
    std::fs::write(dir.path().join("spec.toml"), SPEC).unwrap();
    ok(&weir(&["run", "spec.toml", "-q"], dir.path()));
    let good = std::fs::read(dir.path().join("out.jsonl")).unwrap();
    assert_eq!(read_results(&dir.path().join("out.jsonl")), expected);

    // The same events, a bad row at the end of the second file: windows
    // fire before the job fails.
    let mut csv = std::fs::read_to_string(dir.path().join("events1.csv")).unwrap();
    csv.push_str("eu,1700000099000,u1,lots\n");
    std::fs::write(dir.path().join("events1.csv"), csv).unwrap();
    let out = weir(&["run", "spec.toml", "-q"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("field `amount`"), "{err}");
    assert!(
        err.contains("out.jsonl is left as it was; the partial output is in")
            && err.contains(".out.jsonl.weir-partial"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.path().join("out.jsonl")).unwrap(), good);
    assert!(dir.path().join(".out.jsonl.weir-partial").exists());
}

/// Events with bad rows mixed in (a word for a number, a missing field, an
/// event time that is not one): `(csv, bad lines as (line, raw))`.
fn events_with_bad_rows(n: u64) -> (String, Vec<(u64, String)>) {
    let mut csv = String::from("ts,user,amount\n");
    let mut bad = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut t = 1_700_000_000_000u64;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t += x % 3;
        let row = match i % 997 {
            13 => format!("{t},u{},lots", x % 50),
            500 => format!("{t},u{}", x % 50),
            900 => format!("soon,u{},{}", x % 50, x % 100),
            _ => format!("{},u{},{}", t - x % 300, x % 50, x % 100),
        };
        if matches!(i % 997, 13 | 500 | 900) {
            bad.push((i + 2, row.clone()));
        }
        csv.push_str(&row);
        csv.push('\n');
    }
    (csv, bad)
}

/// A spec counting per user in tumbling windows of the events in
/// `events.csv` into `out`, with `extra` added to `[source]` and `tail` at
/// the end.
fn policy_spec(out: &str, extra: &str, tail: &str) -> String {
    format!(
        r#"
name = "policies"
[source]
type = "csv"
path = "events.csv"
event_time = {{ field = "ts", max_out_of_orderness_ms = 400 }}
{extra}
[window]
key = "user"
type = "tumbling"
size_ms = 1000
[aggregate]
n = "count(*)"
total = "sum(amount)"
[sink]
type = "csv"
path = "{out}"
{tail}
"#
    )
}

/// The dead letters in `path`, as sorted `(line, raw)`, each checked to
/// name the file and a reason.
fn dead_letter_lines(path: &Path) -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut got: Vec<(u64, String)> = text
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            assert!(v["file"].as_str().unwrap().ends_with("events.csv"), "{l}");
            assert_eq!(v["source"], "csv(events.csv)", "{l}");
            assert!(!v["reason"].as_str().unwrap().is_empty(), "{l}");
            (
                v["line"].as_u64().unwrap(),
                v["raw"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    got.sort();
    got
}

/// `on_error = "dead_letter"` sends every bad row once to the
/// `[dead_letter]` file and counts the rest as a run without them would,
/// on 1 and 2 workers and 2 processes; `skip` counts them in the summary;
/// the default names the first.
#[test]
fn bad_rows_go_to_the_dead_letters_or_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, bad) = events_with_bad_rows(40_000);
    std::fs::write(dir.path().join("events.csv"), &csv).unwrap();
    let good: String = csv
        .lines()
        .enumerate()
        .filter(|(i, _)| !bad.iter().any(|(line, _)| *line == *i as u64 + 1))
        .map(|(_, l)| format!("{l}\n"))
        .collect();
    let clean = tempfile::tempdir().unwrap();
    std::fs::write(clean.path().join("events.csv"), good).unwrap();
    std::fs::write(
        clean.path().join("spec.toml"),
        policy_spec("want.csv", "", ""),
    )
    .unwrap();
    ok(&weir(&["run", "spec.toml", "-q"], clean.path()));
    let sorted = |path: &Path| {
        let mut lines: Vec<String> = std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    let want = sorted(&clean.path().join("want.csv"));

    let letters = "[dead_letter]\ntype = \"jsonl\"\npath = \"bad.jsonl\"\n";
    std::fs::write(
        dir.path().join("dead.toml"),
        policy_spec("out.csv", "on_error = \"dead_letter\"", letters),
    )
    .unwrap();
    for workers in ["1", "2"] {
        let out = weir(&["run", "dead.toml", "-w", workers], dir.path());
        ok(&out);
        assert!(
            sorted(&dir.path().join("out.csv")) == want,
            "{workers} workers"
        );
        assert_eq!(dead_letter_lines(&dir.path().join("bad.jsonl")), bad);
        let err = String::from_utf8_lossy(&out.stderr);
        let said = format!("{} bad records sent to its dead letters", bad.len());
        assert!(err.contains(&said), "{err}");
    }
    let hosts = processes::free_hostfile(dir.path(), 2);
    let children: Vec<_> = (0..2)
        .map(|p| {
            Command::new(env!("CARGO_BIN_EXE_weir"))
                .args([
                    "run",
                    "dead.toml",
                    "-q",
                    "-w",
                    "2",
                    "-n",
                    "2",
                    "-p",
                    &p.to_string(),
                ])
                .arg("-H")
                .arg(&hosts)
                .current_dir(dir.path())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        ok(&c.wait_with_output().unwrap());
    }
    assert!(sorted(&dir.path().join("out.csv")) == want, "2 processes");
    assert_eq!(dead_letter_lines(&dir.path().join("bad.jsonl")), bad);

    std::fs::write(
        dir.path().join("skip.toml"),
        policy_spec("out.csv", "on_error = \"skip\"", ""),
    )
    .unwrap();
    let out = weir(&["run", "skip.toml", "-w", "2"], dir.path());
    ok(&out);
    assert!(sorted(&dir.path().join("out.csv")) == want, "skipped");
    let err = String::from_utf8_lossy(&out.stderr);
    let said = format!("{} bad records skipped", bad.len());
    assert!(err.contains(&said), "{err}");

    std::fs::write(dir.path().join("fail.toml"), policy_spec("out.csv", "", "")).unwrap();
    let out = weir(&["run", "fail.toml", "-q"], dir.path());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("events.csv:{} ", bad[0].0)), "{err}");
}

/// With checkpoints, a job killed and run again writes each dead letter
/// once, as its results.
#[test]
fn dead_letters_are_written_once_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let (csv, bad) = events_with_bad_rows(300_000);
    std::fs::write(dir.path().join("events.csv"), &csv).unwrap();
    let letters = "[dead_letter]\ntype = \"jsonl\"\npath = \"bad.jsonl\"\n";
    let checkpoint = "[checkpoint]\ndir = \"checkpoints\"\ninterval_ms = 50\n";
    std::fs::write(
        dir.path().join("ck.toml"),
        policy_spec(
            "out.csv",
            "on_error = \"dead_letter\"",
            &format!("{letters}{checkpoint}"),
        ),
    )
    .unwrap();
    let committed = || {
        std::fs::read_dir(dir.path().join("checkpoints"))
            .into_iter()
            .flatten()
            .filter(|e| e.as_ref().unwrap().path().join("MANIFEST.json").exists())
            .count()
    };
    for workers in ["2", "1"] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", "ck.toml", "-q", "-w", workers])
            .current_dir(dir.path())
            .spawn()
            .unwrap();
        let before = committed();
        let start = std::time::Instant::now();
        while committed() <= before && start.elapsed().as_secs() < 60 {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    let out = weir(&["run", "ck.toml", "-w", "2"], dir.path());
    ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("restored from the checkpoint at"), "{err}");
    assert_eq!(dead_letter_lines(&dir.path().join("bad.jsonl")), bad);
}

/// Policy mistakes in a spec name the field and what is expected.
#[test]
fn policy_mistakes_name_the_field() {
    let letters = "[dead_letter]\ntype = \"jsonl\"\npath = \"bad.jsonl\"\n";
    let cases = [
        (policy_spec("o.csv", "on_error = \"ignore\"", ""), "fail"),
        (
            policy_spec("o.csv", "on_error = \"dead_letter\"", ""),
            "`dead_letter`",
        ),
        (policy_spec("o.csv", "", letters), "`source.on_error`"),
        (
            policy_spec(
                "o.csv",
                "on_error = \"dead_letter\"",
                "[dead_letter]\ntype = \"csv\"\npath = \"b.csv\"\n",
            ),
            "`dead_letter.type`",
        ),
        (
            policy_spec(
                "o.csv",
                "on_error = \"dead_letter\"",
                "[dead_letter]\ntype = \"jsonl\"\n",
            ),
            "`dead_letter.path`",
        ),
    ];
    for (spec, names) in cases {
        let err = spec_error(&spec, GOOD_CSV);
        assert!(err.contains(names), "{names}: {err}");
    }
}
