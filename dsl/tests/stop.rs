//! Stopping a running job: SIGTERM or SIGINT to `weir run` (one process and
//! two), a second signal, and a `StopHandle` in the DSL. With checkpoints
//! the job stops at a checkpoint, exits 0 and a rerun resumes with nothing
//! lost or repeated; without, its sources end where they are, what they
//! read goes through, and the run says its output is partial.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weir::RunError;
use weir::prelude::*;

mod processes;
use processes::{free_hostfile, wait};

/// Sends `signal` (`TERM`, `INT`) to `child`.
fn signal(child: &Child, signal: &str) {
    let status = Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn weir(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_weir"));
    command
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    command
}

/// The lines of `path`, sorted, without a CSV header.
fn sorted_rows(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().skip(1).map(String::from).collect();
    lines.sort();
    lines
}

/// `n` events, out of order by up to 300 ms, as a CSV file in `dir`.
fn write_events(dir: &Path, n: u64) {
    let mut csv = String::from("ts,user,amount\n");
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut t = 1_700_000_000_000u64;
    for _ in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t += x % 3;
        writeln!(csv, "{},u{},{}", t - x % 300, x % 500, x % 100).unwrap();
    }
    std::fs::write(dir.join("events.csv"), csv).unwrap();
}

fn spec(out: &str, checkpoint: &str) -> String {
    format!(
        r#"
name = "stopped"
[source]
type = "csv"
path = "events.csv"
event_time = {{ field = "ts", max_out_of_orderness_ms = 400 }}
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
{checkpoint}
"#
    )
}

/// Complete checkpoints in `dir/checkpoints`.
fn committed(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("checkpoints"))
        .into_iter()
        .flatten()
        .filter(|e| e.as_ref().unwrap().path().join("MANIFEST.json").exists())
        .count()
}

/// Waits until `dir` has a complete checkpoint (or `child` ended).
fn await_checkpoint(dir: &Path, child: &mut Child) {
    let start = Instant::now();
    while committed(dir) == 0 && start.elapsed() < Duration::from_secs(60) {
        if child.try_wait().unwrap().is_some() {
            panic!("the job ended before its first checkpoint");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(committed(dir) > 0, "no checkpoint within a minute");
}

/// SIGTERM to a checkpointed job: it stops at the next checkpoint and
/// exits 0 saying so; run again, it resumes there, and its output is that
/// of a run never stopped. On two processes, SIGTERM to one stops both.
#[test]
fn a_checkpointed_job_stops_at_a_checkpoint_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 2_000_000);
    std::fs::write(dir.path().join("plain.toml"), spec("plain.csv", "")).unwrap();
    let checkpoint = "[checkpoint]\ndir = \"checkpoints\"\ninterval_ms = 100\n";
    std::fs::write(dir.path().join("ck.toml"), spec("out.csv", checkpoint)).unwrap();
    let out = weir(dir.path(), &["run", "plain.toml", "-q"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let want = sorted_rows(&dir.path().join("plain.csv"));

    let mut child = weir(dir.path(), &["run", "ck.toml", "-w", "2"])
        .spawn()
        .unwrap();
    await_checkpoint(dir.path(), &mut child);
    signal(&child, "TERM");
    let (code, err) = wait(child, Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("stopping at the next checkpoint"), "{err}");
    assert!(err.contains("stopped at the checkpoint at"), "{err}");
    assert!(
        committed(dir.path()) > 0,
        "the checkpoint stopped at is kept"
    );

    let hosts = free_hostfile(dir.path(), 2);
    let hosts = hosts.to_str().unwrap();
    let mut children: Vec<Child> = (0..2)
        .map(|p| {
            weir(
                dir.path(),
                &[
                    "run",
                    "ck.toml",
                    "-q",
                    "-n",
                    "2",
                    "-p",
                    &p.to_string(),
                    "-H",
                    hosts,
                ],
            )
            .spawn()
            .unwrap()
        })
        .collect();
    // Past the checkpoint it resumed from.
    let before = committed(dir.path());
    let start = Instant::now();
    while committed(dir.path()) <= before && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(&children[1], "TERM");
    let ended: Vec<(i32, String)> = children
        .drain(..)
        .map(|c| wait(c, Duration::from_secs(60)))
        .collect();
    for (p, (code, err)) in ended.iter().enumerate() {
        assert_eq!(*code, 0, "process {p}: {err}");
        assert!(
            err.contains("stopped at the checkpoint at"),
            "process {p}: {err}"
        );
    }

    let out = weir(dir.path(), &["run", "ck.toml", "-w", "2"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("restored from the checkpoint at"), "{err}");
    let got = sorted_rows(&dir.path().join("out.csv"));
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the output differs from a run never stopped");
}

/// SIGTERM to a job without checkpoints reading a pipe that stays open:
/// its sources end, what was read goes through, the output (published)
/// is that of a run whose input ended there, and it exits 143 saying the
/// output is partial.
#[test]
fn a_job_without_checkpoints_drains_and_says_its_output_is_partial() {
    let dir = tempfile::tempdir().unwrap();
    let lines: String = (0..500u64)
        .map(|i| format!("{},u{},{}\n", 1_000 + i * 37, i % 7, i % 10))
        .collect();
    let stdin_spec = |out: &str| {
        spec(out, "").replace(
            "type = \"csv\"\npath = \"events.csv\"",
            "type = \"stdin\"\nformat = \"csv\"",
        )
    };
    std::fs::write(dir.path().join("stdin.toml"), stdin_spec("out.csv")).unwrap();
    std::fs::write(dir.path().join("ended.toml"), stdin_spec("want.csv")).unwrap();
    let mut ended = weir(dir.path(), &["run", "ended.toml", "-q"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = ended.stdin.take().unwrap();
    write!(input, "ts,user,amount\n{lines}").unwrap();
    drop(input);
    let (code, err) = wait(ended, Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");

    let mut child = weir(dir.path(), &["run", "stdin.toml", "-w", "2"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    write!(input, "ts,user,amount\n{lines}").unwrap();
    input.flush().unwrap();
    // The pipe stays open: the job would wait for more forever.
    let start = Instant::now();
    while !dir.path().join(".out.csv.weir-partial").exists() && start.elapsed().as_secs() < 30 {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(500));
    signal(&child, "TERM");
    let (code, err) = wait(child, Duration::from_secs(60));
    drop(input);
    assert_eq!(code, 143, "{err}");
    assert!(err.contains("stopped by SIGTERM"), "{err}");
    assert!(err.contains("partial"), "{err}");
    assert!(err.contains("500 events read"), "{err}");
    assert_eq!(
        sorted_rows(&dir.path().join("out.csv")),
        sorted_rows(&dir.path().join("want.csv"))
    );
}

/// A second SIGINT stops at once: the first waits for a checkpoint that
/// is a long way off.
#[test]
fn a_second_sigint_stops_at_once() {
    let dir = tempfile::tempdir().unwrap();
    write_events(dir.path(), 3_000_000);
    let checkpoint = "[checkpoint]\ndir = \"checkpoints\"\ninterval_ms = 600000\n";
    std::fs::write(dir.path().join("ck.toml"), spec("out.csv", checkpoint)).unwrap();
    let mut child = weir(dir.path(), &["run", "ck.toml"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the job ended too soon"
    );
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().unwrap().is_none(),
        "one SIGINT ended a job whose next checkpoint is far off"
    );
    signal(&child, "INT");
    let (code, err) = wait(child, Duration::from_secs(5));
    assert_eq!(code, 130, "{err}");
}

/// `Cluster::stop_handle` stops a DSL job from another thread: the run is
/// `RunError::Stopped`, and what it read went through to the sink.
#[test]
fn a_stop_handle_stops_a_dsl_job() {
    let cluster = Cluster::threads(2).quiet(true);
    let stop = cluster.stop_handle();
    let out = Collect::new();
    let job = Pipeline::new("endless")
        .source(Generator::new(u64::MAX / 2, |i| i))
        .map(|i: u64| i % 10)
        .sink(out.clone());
    let asker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        stop.request();
    });
    let started = Instant::now();
    let err = job.run(cluster).unwrap_err();
    asker.join().unwrap();
    assert!(started.elapsed() < Duration::from_secs(30));
    let RunError::Stopped { signal, summary } = err else {
        panic!("not a stop: {err}");
    };
    assert_eq!(signal, None);
    assert!(summary.events() > 0);
    assert_eq!(out.take().len() as u64, summary.events());
    assert_eq!(summary.stopped, Some(weir::Stopped::Drained));
}
