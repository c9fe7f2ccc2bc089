//! The same job on 1 worker, 2 workers and 2 real OS processes; failures in
//! one worker or one process stop the whole cluster with a clear error.
//!
//! The multi-process tests start this test binary again as child processes
//! (running the ignored `child` test, which reads its job from the
//! environment), connected through a host file on free loopback ports.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weir::prelude::*;

mod processes;
use processes::{free_hostfile, wait};

const CHILD_JOB: &str = "WEIR_TEST_JOB";
const CHILD_PROCESS: &str = "WEIR_TEST_PROCESS";
const CHILD_HOSTS: &str = "WEIR_TEST_HOSTS";
const CHILD_OUT: &str = "WEIR_TEST_OUT";

fn words(i: u64) -> String {
    // Deterministic text with a skewed vocabulary of a few hundred words.
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..6)
        .map(|k| format!("w{}", ((x >> (k * 9)) % 512) % (1 + (x >> 50) % 300)))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The job under test: words of generated lines, counted per word.
fn wordcount(events: u64, out: &Path) -> Pipeline {
    Pipeline::new("wordcount")
        .source(Generator::new(events, words))
        .flat_map(|line: String| line.split(' ').map(String::from).collect::<Vec<_>>())
        .key_by(|w: &String| w.clone())
        .count()
        .sink(JsonLinesFile::to(out))
}

/// A job that never ends on its own.
/// A job that never ends on its own; once records cross the exchange (so
/// the processes are connected), it creates the file `marker`.
fn endless(marker: std::path::PathBuf) -> Pipeline {
    let marked = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    Pipeline::new("endless")
        .source(Generator::new(u64::MAX / 4, |i| i))
        .key_by(|i: &u64| i % 1000)
        .values()
        .inspect(move |_| {
            if !marked.swap(true, std::sync::atomic::Ordering::Relaxed) {
                std::fs::write(&marker, b"running").unwrap();
            }
        })
        .filter(|_| false)
        .sink(Collect::new())
}

/// Records of [`slow_sink`].
const SLOW_RECORDS: u64 = 3_000_000;

/// An aligned generator whose records all go to one worker, whose sink
/// sleeps 1 ms per 512 records; this process's records read and written
/// are sampled every 5 ms into `samples` as `millis read written` lines,
/// written when the job ends.
fn slow_sink(samples: std::path::PathBuf) -> (Pipeline, Box<dyn FnOnce()>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let (read, written) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let counting = Arc::clone(&read);
    let source = weir::sources::Mapped::new(Generator::new(SLOW_RECORDS, |i| i), move |i: u64| {
        counting.fetch_add(1, Ordering::Relaxed);
        i
    });
    let w = Arc::clone(&written);
    let job = Pipeline::new("slow-sink")
        .source(source)
        .event_time(|i: &u64| *i, Watermark::ascending())
        .key_by(|_| 0u8)
        .values()
        .sink(ForEach::new(move |_: &u64| {
            if w.fetch_add(1, Ordering::Relaxed).is_multiple_of(512) {
                std::thread::sleep(Duration::from_millis(1));
            }
        }));
    let done = Arc::new(AtomicBool::new(false));
    let stop = Arc::clone(&done);
    let sampler = std::thread::spawn(move || {
        let mut lines = String::new();
        loop {
            // The last sample is taken after the job ended: its totals.
            let ended = done.load(Ordering::SeqCst);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis();
            let (r, w) = (read.load(Ordering::SeqCst), written.load(Ordering::SeqCst));
            lines.push_str(&format!("{now} {r} {w}\n"));
            if ended {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::fs::write(samples, lines).unwrap();
    });
    let finish = move || {
        stop.store(true, Ordering::SeqCst);
        sampler.join().unwrap();
    };
    (job, Box::new(finish))
}

/// A job whose map panics on one record.
fn panicking() -> Pipeline {
    Pipeline::new("panicking")
        .source(Generator::new(100_000, |i| i))
        .map(|i: u64| {
            if i == 77_777 {
                panic!("boom at {i}");
            }
            i
        })
        .key_by(|i: &u64| i % 10)
        .count()
        .sink(Collect::new())
}

fn sorted_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

/// Runs as a cluster process when the environment says so.
#[test]
#[ignore = "helper: started as a child process by the multi-process tests"]
fn child() {
    let (Ok(job), Ok(process), Ok(hosts)) = (
        std::env::var(CHILD_JOB),
        std::env::var(CHILD_PROCESS),
        std::env::var(CHILD_HOSTS),
    ) else {
        return;
    };
    let process: usize = process.parse().unwrap();
    let mut cluster = Cluster::multi_process(2, 2, process, hosts).quiet(true);
    let mut finish: Option<Box<dyn FnOnce()>> = None;
    let pipeline = match job.as_str() {
        "stdin" => {
            cluster = Cluster::threads(2).quiet(true);
            Pipeline::new("stdin")
                .source(Stdin::lines())
                .map(|line: String| line.to_uppercase())
                .sink(JsonLinesFile::to(std::env::var(CHILD_OUT).unwrap()))
        }
        "wordcount" => wordcount(20_000, Path::new(&std::env::var(CHILD_OUT).unwrap())),
        "endless" => endless(
            Path::new(&std::env::var(CHILD_OUT).unwrap()).with_extension(format!("p{process}")),
        ),
        "panicking" => panicking(),
        "slow-sink" => {
            let samples =
                Path::new(&std::env::var(CHILD_OUT).unwrap()).with_extension(format!("p{process}"));
            let (job, done) = slow_sink(samples);
            finish = Some(done);
            job
        }
        other => panic!("unknown job {other}"),
    };
    let result = pipeline.run(cluster);
    if let Some(finish) = finish {
        finish();
    }
    match result {
        Ok(_) => std::process::exit(0),
        Err(e) => {
            eprintln!("child error: {e}");
            std::process::exit(3);
        }
    }
}

fn spawn(job: &str, process: usize, hosts: &Path, out: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_JOB, job)
        .env(CHILD_PROCESS, process.to_string())
        .env(CHILD_HOSTS, hosts)
        .env(CHILD_OUT, out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn stdin_lines_are_read_until_end_of_input() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("upper.jsonl");
    let mut child = spawn("stdin", 0, Path::new("unused"), &out);
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..5_000 {
        writeln!(stdin, "line {i}").unwrap();
    }
    drop(stdin); // end of input ends the job
    let (code, err) = wait(child, Duration::from_secs(60));
    assert_eq!(code, 0, "{err}");
    let got = sorted_lines(&out);
    let mut expected: Vec<String> = (0..5_000).map(|i| format!("\"LINE {i}\"")).collect();
    expected.sort();
    assert_eq!(got, expected);
}

#[test]
fn same_results_on_one_worker_two_workers_and_two_processes() {
    let dir = tempfile::tempdir().unwrap();
    let one = dir.path().join("one.jsonl");
    let two = dir.path().join("two.jsonl");
    let procs = dir.path().join("procs.jsonl");
    wordcount(20_000, &one)
        .run(Cluster::threads(1).quiet(true))
        .unwrap();
    wordcount(20_000, &two)
        .run(Cluster::threads(2).quiet(true))
        .unwrap();

    let hosts = free_hostfile(dir.path(), 2);
    let children = [
        spawn("wordcount", 0, &hosts, &procs),
        spawn("wordcount", 1, &hosts, &procs),
    ];
    for child in children {
        let (code, err) = wait(child, Duration::from_secs(120));
        assert_eq!(code, 0, "child failed: {err}");
    }

    let expected = sorted_lines(&one);
    // A few hundred distinct words, each with its final count.
    assert!(expected.len() > 100, "{}", expected.len());
    let total: u64 = expected
        .iter()
        .map(|l| {
            serde_json::from_str::<Update<String, u64>>(l)
                .unwrap()
                .value
        })
        .sum();
    assert_eq!(total, 6 * 20_000);
    assert_eq!(sorted_lines(&two), expected);
    assert_eq!(sorted_lines(&procs), expected);
}

/// Backpressure across processes: an aligned source on each of 2
/// processes of 2 workers, every record keyed to one worker whose sink is
/// slow. The records read by both processes and not yet written, merged
/// from each process's samples by time, stay under the bound: 4 workers'
/// sources, 64 batches of 1024 beyond the sinks each, and the one each is
/// reading, plus what 5 ms of sampling lag can add.
#[test]
fn a_slow_sink_holds_back_the_sources_of_every_process() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = free_hostfile(dir.path(), 2);
    let out = dir.path().join("samples");
    let children = [
        spawn("slow-sink", 0, &hosts, &out),
        spawn("slow-sink", 1, &hosts, &out),
    ];
    for child in children {
        let (code, err) = wait(child, Duration::from_secs(300));
        assert_eq!(code, 0, "child failed: {err}");
    }
    // Per process, (millis, read, written), in time order.
    let samples: Vec<Vec<(u128, u64, u64)>> = (0..2)
        .map(|p| {
            std::fs::read_to_string(out.with_extension(format!("p{p}")))
                .unwrap()
                .lines()
                .map(|l| {
                    let f: Vec<&str> = l.split(' ').collect();
                    (
                        f[0].parse().unwrap(),
                        f[1].parse().unwrap(),
                        f[2].parse().unwrap(),
                    )
                })
                .collect()
        })
        .collect();
    let last = |p: usize, t: u128| {
        samples[p]
            .iter()
            .take_while(|s| s.0 <= t)
            .last()
            .map_or((0, 0), |s| (s.1, s.2))
    };
    let mut most = 0;
    for &(t, _, _) in samples.iter().flatten() {
        let (r0, w0) = last(0, t);
        let (r1, w1) = last(1, t);
        most = most.max((r0 + r1).saturating_sub(w0 + w1));
    }
    let total = |p: usize| samples[p].last().map_or((0, 0), |s| (s.1, s.2));
    assert_eq!(total(0).0 + total(1).0, SLOW_RECORDS);
    assert_eq!(total(0).1 + total(1).1, SLOW_RECORDS);
    let bound = 4 * 66 * 1024 + 20_000;
    assert!(most <= bound, "{most} records in flight, bound {bound}");
}

#[test]
fn killing_a_process_stops_the_other_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = free_hostfile(dir.path(), 2);
    let out = dir.path().join("unused");
    let survivor = spawn("endless", 0, &hosts, &out);
    let mut victim = spawn("endless", 1, &hosts, &out);
    // Wait until both processes are connected and exchanging records.
    let start = Instant::now();
    while !(out.with_extension("p0").exists() && out.with_extension("p1").exists()) {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "the cluster did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    victim.kill().unwrap(); // SIGKILL
    victim.wait().unwrap();
    let (code, err) = wait(survivor, Duration::from_secs(30));
    assert_ne!(code, 0);
    assert!(
        err.contains("lost its connection to a peer process"),
        "{err}"
    );
}

#[test]
fn a_panic_in_one_process_stops_the_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let hosts = free_hostfile(dir.path(), 2);
    let out = dir.path().join("unused");
    let children = [
        spawn("panicking", 0, &hosts, &out),
        spawn("panicking", 1, &hosts, &out),
    ];
    let results: Vec<(i32, String)> = children
        .into_iter()
        .map(|c| wait(c, Duration::from_secs(60)))
        .collect();
    assert!(results.iter().all(|(code, _)| *code != 0), "{results:?}");
    let all_err: String = results.iter().map(|(_, e)| e.as_str()).collect();
    assert!(all_err.contains("panicked: boom at 77777"), "{all_err}");
}

#[test]
fn a_panic_in_one_worker_stops_all_workers_and_names_it() {
    let err = panicking()
        .run(Cluster::threads(2).quiet(true))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("worker ") && msg.contains("panicked: boom at 77777"),
        "{msg}"
    );
}
