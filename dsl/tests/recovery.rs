//! Exactly-once recovery from checkpoints, on real OS processes.
//!
//! A checkpointed job (tumbling and session windows over out-of-order CSV
//! input, a window join, an interval join, an updating fold, and the
//! differential stages: an updating count, a join and a `reduce_updates` of
//! it, each into a file sink) runs as child processes (this test binary again, running the
//! ignored `child` test). Each round starts it with a random number of
//! worker threads (1–3) and processes (1 or 2) and kills a random process
//! with SIGKILL at a random moment (at start, during a restore, while
//! checkpoints are written); the last round runs to completion. Every
//! output file must then equal that of a run without checkpoints and
//! without failure, line for line as a multiset: nothing lost, nothing
//! repeated.
//!
//! Rounds are seeded; the seed is printed, and `WEIR_RECOVERY_SEED` replays
//! one. `WEIR_RECOVERY_ROUNDS` sets the number of killed rounds (default 6;
//! run many more by hand: `WEIR_RECOVERY_ROUNDS=100 cargo test --test
//! recovery`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use weir::Checkpointing;
use weir::prelude::*;

mod processes;
use processes::{free_hostfile, wait};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Click {
    ts: u64,
    user: u32,
    page: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    ts: u64,
    user: u32,
    amount: u64,
}

/// A pair of the differential join: `(user, click time)` and `(user, order
/// time, amount)`.
type ClickOrder = ((u32, u64), (u32, u64, u64));

/// The outputs of the job, in `out`.
const OUTPUTS: [&str; 8] = [
    "tumbling",
    "sessions.jsonl",
    "window_join.jsonl",
    "interval_join.jsonl",
    "fold.jsonl",
    "count.jsonl",
    "join.jsonl",
    "reduce.jsonl",
];

/// Writes out-of-order clicks and orders (event times up to 400 ms behind
/// the highest so far) into `dir`.
fn write_input(dir: &Path, seed: u64) {
    let mut state = seed | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut clicks = String::from("ts,user,page\n");
    let mut orders = String::from("ts,user,amount\n");
    let mut t = 1_700_000_000_000u64;
    for i in 0..150_000u64 {
        t += next() % 4;
        let ts = t - next() % 400;
        clicks.push_str(&format!("{ts},{},{}\n", next() % 300, next() % 50));
        if i % 4 == 0 {
            let ts = t - next() % 400;
            orders.push_str(&format!("{ts},{},{}\n", next() % 300, next() % 1000));
        }
    }
    std::fs::write(dir.join("clicks.csv"), clicks).unwrap();
    std::fs::write(dir.join("orders.csv"), orders).unwrap();
}

/// The job: reads `input`, writes into `out`, checkpoints into
/// `checkpoints` if given.
fn job(input: &Path, out: &Path, checkpoints: Option<&Path>) -> Pipeline {
    let p = Pipeline::new("recovery");
    let wm = Watermark::bounded(Duration::from_millis(300));
    let clicks = p
        .source(Csv::<Click>::new(input.join("clicks.csv")).split_size(256 * 1024))
        .event_time(|c: &Click| c.ts, wm)
        .key_by(|c: &Click| c.user);
    let orders = p
        .source(Csv::<Order>::new(input.join("orders.csv")).split_size(128 * 1024))
        .event_time(|o: &Order| o.ts, wm)
        .key_by(|o: &Order| o.user);
    clicks
        .clone()
        .window(Tumbling::of(Duration::from_secs(1)))
        .count()
        .sink(JsonLinesFile::parts(out.join(OUTPUTS[0])));
    clicks
        .clone()
        .window(Session::with_gap(Duration::from_millis(700)))
        .allowed_lateness(Duration::from_millis(200))
        .count()
        .sink(JsonLinesFile::to(out.join(OUTPUTS[1])));
    clicks
        .clone()
        .window_join(orders.clone(), Tumbling::of(Duration::from_millis(500)))
        .map(|j| (j.key, j.left.ts, j.left.page, j.right.ts, j.right.amount))
        .sink(JsonLinesFile::to(out.join(OUTPUTS[2])));
    clicks
        .clone()
        .interval_join(orders.clone(), 0, 300)
        .map(|j| (j.key, j.left.ts, j.left.page, j.right.ts, j.right.amount))
        .sink(JsonLinesFile::to(out.join(OUTPUTS[3])));
    orders
        .clone()
        .fold(|| 0u64, |sum, o: Order| *sum += o.amount)
        .sink(JsonLinesFile::to(out.join(OUTPUTS[4])));
    // The differential stages: a count per user, and a join (of a few
    // clicks and orders) whose highest amount per user is kept updated.
    clicks
        .clone()
        .count()
        .sink(JsonLinesFile::to(out.join(OUTPUTS[5])));
    let few_clicks = clicks
        .into_stream()
        .filter(|(_, c)| c.page == 0)
        .map(|(user, c)| (user, c.ts))
        .key_by(|(user, _)| *user);
    let few_orders = orders
        .into_stream()
        .filter(|(_, o)| o.amount < 20)
        .map(|(user, o)| (user, o.ts, o.amount))
        .key_by(|(user, _, _)| *user);
    let joined = few_clicks.join(few_orders);
    joined
        .clone()
        .map(|u| (u.key, u.value, u.diff))
        .sink(JsonLinesFile::to(out.join(OUTPUTS[6])));
    joined
        .reduce_updates(|_user, pairs: &[(&ClickOrder, isize)]| {
            pairs.iter().map(|(p, _)| p.1.2).max()
        })
        .sink(JsonLinesFile::to(out.join(OUTPUTS[7])));
    match checkpoints {
        Some(dir) => p.checkpoint(Checkpointing::to(dir).every(Duration::from_millis(100))),
        None => p,
    }
}

/// Every output's lines, sorted (a directory of part files is one output).
fn outputs(out: &Path) -> Vec<(String, Vec<String>)> {
    OUTPUTS
        .iter()
        .map(|name| {
            let path = out.join(name);
            let mut files = vec![path.clone()];
            if path.is_dir() {
                files = std::fs::read_dir(&path)
                    .unwrap()
                    .map(|e| e.unwrap().path())
                    .collect();
            }
            let mut lines: Vec<String> = files
                .iter()
                .flat_map(|f| {
                    let text = std::fs::read_to_string(f).unwrap_or_default();
                    text.lines().map(String::from).collect::<Vec<_>>()
                })
                .collect();
            lines.sort();
            (name.to_string(), lines)
        })
        .collect()
}

const ENV_DIR: &str = "WEIR_RECOVERY_DIR";
const ENV_WORKERS: &str = "WEIR_RECOVERY_WORKERS";
const ENV_PROCESSES: &str = "WEIR_RECOVERY_PROCESSES";
const ENV_PROCESS: &str = "WEIR_RECOVERY_PROCESS";
const ENV_HOSTS: &str = "WEIR_RECOVERY_HOSTS";

/// Runs the job as one process of a cluster when the environment says so.
#[test]
#[ignore = "helper: started as a child process by the recovery tests"]
fn child() {
    let Ok(dir) = std::env::var(ENV_DIR) else {
        return;
    };
    let dir = PathBuf::from(dir);
    let var = |name| std::env::var(name).unwrap().parse::<usize>().unwrap();
    let (workers, processes) = (var(ENV_WORKERS), var(ENV_PROCESSES));
    let cluster = if processes == 1 {
        Cluster::threads(workers)
    } else {
        let hosts = std::env::var(ENV_HOSTS).unwrap();
        Cluster::multi_process(workers, processes, var(ENV_PROCESS), hosts)
    };
    // `WEIR_RECOVERY_PLAIN`: without checkpoints (to compare by hand).
    let checkpoints = dir.join("checkpoints");
    let plain = std::env::var("WEIR_RECOVERY_PLAIN").is_ok();
    let job = job(
        &dir.join("input"),
        &dir.join("out"),
        (!plain).then_some(&*checkpoints),
    );
    // Not quiet: the run summary on stderr says what was restored.
    match job.run(cluster) {
        Ok(_) => std::process::exit(0),
        Err(e) => {
            eprintln!("child error: {e}");
            std::process::exit(3);
        }
    }
}

/// Starts the job on `workers` threads in each of `processes` processes.
fn start(dir: &Path, workers: usize, processes: usize) -> Vec<Child> {
    start_with(dir, workers, processes, None)
}

/// As [`start`], with failpoint `failpoint` armed (see
/// `weir_engine::failpoint`).
fn start_with(dir: &Path, workers: usize, processes: usize, failpoint: Option<&str>) -> Vec<Child> {
    let hosts = free_hostfile(dir, processes);
    (0..processes)
        .map(|process| {
            Command::new(std::env::current_exe().unwrap())
                .args([
                    "--ignored",
                    "--exact",
                    "child",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(ENV_DIR, dir)
                .env(ENV_WORKERS, workers.to_string())
                .env(ENV_PROCESSES, processes.to_string())
                .env(ENV_PROCESS, process.to_string())
                .env(ENV_HOSTS, &hosts)
                .env("WEIR_FAILPOINT", failpoint.unwrap_or(""))
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

/// Waits for every process to end, at most `limit` each; their exit codes
/// and error output.
fn wait_all(children: Vec<Child>, limit: Duration) -> Vec<(i32, String)> {
    children.into_iter().map(|c| wait(c, limit)).collect()
}

/// The newest checkpoint committed in `dir` other than a final one.
fn newest_checkpoint(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let path = e.ok()?.path();
            let name = path.file_name()?.to_string_lossy().to_string();
            let id: u64 = name.strip_prefix("chk-")?.parse().ok()?;
            (id != u64::MAX && path.join("MANIFEST.json").exists()).then_some(id)
        })
        .max()
}

/// Waits (at most a minute) until a checkpoint newer than `since` is
/// committed in `dir`: `true`, or `false` if the job completed first.
fn wait_for_a_checkpoint(dir: &Path, since: Option<u64>) -> bool {
    let start = Instant::now();
    let last = dir
        .join(format!("chk-{:020}", u64::MAX))
        .join("MANIFEST.json");
    while start.elapsed() < Duration::from_secs(60) {
        if newest_checkpoint(dir) > since {
            return true;
        }
        if last.exists() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    panic!(
        "no checkpoint committed in {} within a minute",
        dir.display()
    );
}

/// Whether a job process said it restored a checkpoint.
fn restored(stderr: &str) -> bool {
    stderr.contains("restoring the checkpoint at")
}

/// A small seeded generator for the rounds.
struct Rounds(u64);

impl Rounds {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn a_job_killed_at_random_moments_and_restarted_on_random_clusters_writes_its_output_exactly_once()
{
    let seed = std::env::var("WEIR_RECOVERY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let rounds: usize = std::env::var("WEIR_RECOVERY_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    eprintln!(
        "recovery test: seed {seed} (WEIR_RECOVERY_SEED={seed} replays it), {rounds} killed rounds"
    );
    let mut rng = Rounds(seed | 1);
    let dir = tempfile::tempdir().unwrap();
    if std::env::var("WEIR_RECOVERY_KEEP").is_ok() {
        eprintln!("keeping {}", dir.path().display());
    }
    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    write_input(&input, seed);

    let expected_dir = dir.path().join("expected");
    job(&input, &expected_dir, None)
        .run(Cluster::threads(2).quiet(true))
        .unwrap();
    let expected = outputs(&expected_dir);
    assert!(
        expected.iter().all(|(_, lines)| !lines.is_empty()),
        "every output has lines"
    );

    let mut killed = Vec::new();
    let mut restores = 0;
    let checkpoints = dir.path().join("checkpoints");
    let mut round = 0;
    loop {
        let workers = 1 + rng.below(3) as usize;
        let processes = 1 + rng.below(2) as usize;
        let before = newest_checkpoint(&checkpoints);
        let mut children = start(dir.path(), workers, processes);
        // The first and the last killed rounds are killed once they have
        // committed a checkpoint, so that the next run restores one (the
        // last run must); the others anywhere.
        let waits = round == 0 || round + 1 >= rounds;
        if round >= rounds {
            let ended = wait_all(children, Duration::from_secs(300));
            for (code, err) in &ended {
                assert_eq!(*code, 0, "seed {seed}: the last run failed: {err}");
            }
            assert!(
                restored(&ended[0].1),
                "seed {seed}: the last run did not restore a checkpoint: {}",
                ended[0].1
            );
            restores += 1;
            break;
        }
        let committed = !waits || wait_for_a_checkpoint(&checkpoints, before);
        let delay = match waits {
            true => Duration::from_millis(rng.below(30)),
            false => Duration::from_millis(50 + rng.below(1500)),
        };
        let victim = rng.below(processes as u64) as usize;
        std::thread::sleep(delay);
        let finished = children[victim].try_wait().unwrap().is_some();
        let _ = children[victim].kill(); // SIGKILL
        // The other process stops once its peer is gone; stop it anyway.
        for child in children.iter_mut() {
            let _ = child.kill();
        }
        let ended = wait_all(children, Duration::from_secs(60));
        killed.push(format!(
            "{workers}x{processes} killed process {victim} after {delay:?}{}{}",
            if waits { " past a new checkpoint" } else { "" },
            if finished { " (it had finished)" } else { "" }
        ));
        restores += ended.iter().filter(|(_, err)| restored(err)).count();
        for (code, err) in ended {
            assert!(
                !err.contains("child error") || err.contains("peer") || err.contains("lost"),
                "seed {seed}, round {round}: {code}: {err}"
            );
        }
        // A round that completed the job leaves nothing to restore: the
        // rounds go on until one is killed past a checkpoint.
        let restorable = committed && !finished && newest_checkpoint(&checkpoints) > before;
        if round + 1 >= rounds && !restorable {
            assert!(
                round < rounds + 10,
                "seed {seed}: no round left a checkpoint"
            );
            round = rounds - 1;
            continue;
        }
        round += 1;
    }
    eprintln!("rounds ({restores} processes restored a checkpoint): {killed:#?}");
    assert!(
        rounds == 0 || restores > 0,
        "seed {seed}: no run restored a checkpoint"
    );
    let got = outputs(&dir.path().join("out"));
    for ((name, want), (_, have)) in expected.iter().zip(&got) {
        if have.len() != want.len() {
            let _ = keep(dir);
            panic!(
                "seed {seed}: {name} has {} lines, a run without failure {}; rounds: {killed:#?}",
                have.len(),
                want.len()
            );
        }
        if have != want {
            let _ = keep(dir);
            panic!("seed {seed}: {name} differs; rounds: {killed:#?}");
        }
    }
    assert!(
        !dir.path().join("checkpoints").join("in-progress").exists(),
        "a completed job leaves no output in progress"
    );
    drop(keep(dir));
}

/// `dir`, kept on disk if `WEIR_RECOVERY_KEEP` is set (to look into a
/// failure).
fn keep(dir: tempfile::TempDir) -> Option<tempfile::TempDir> {
    if std::env::var("WEIR_RECOVERY_KEEP").is_ok() {
        let _ = dir.keep();
        return None;
    }
    Some(dir)
}

/// A run without failure of the job on the input of `seed`, in `dir`: its
/// outputs.
fn expected_outputs(dir: &Path, seed: u64) -> Vec<(String, Vec<String>)> {
    let input = dir.join("input");
    std::fs::create_dir_all(&input).unwrap();
    write_input(&input, seed);
    let expected_dir = dir.join("expected");
    job(&input, &expected_dir, None)
        .run(Cluster::threads(2).quiet(true))
        .unwrap();
    outputs(&expected_dir)
}

/// Runs the job to its end on 2 workers; its error output.
fn run_to_end(dir: &Path) -> String {
    let ended = wait_all(start(dir, 2, 1), Duration::from_secs(300));
    let (code, err) = &ended[0];
    assert_eq!(*code, 0, "{err}");
    err.clone()
}

/// Kills a run of the job once it has committed `n` new checkpoints.
fn kill_after_checkpoints(dir: &Path, n: usize) {
    let checkpoints = dir.join("checkpoints");
    let mut children = start(dir, 2, 1);
    for _ in 0..n {
        let before = newest_checkpoint(&checkpoints);
        assert!(
            wait_for_a_checkpoint(&checkpoints, before),
            "the job ended before {n} checkpoints"
        );
    }
    for child in children.iter_mut() {
        let _ = child.kill();
    }
    wait_all(children, Duration::from_secs(60));
}

/// A crash between any two steps of taking, committing and restoring a
/// checkpoint (a part's state written; the manifest written; the output
/// published; the job's end committed; a restored checkpoint's output
/// published again) is followed by a restart that writes exactly the output
/// of a run without failure.
#[test]
fn a_crash_between_the_steps_of_a_checkpoint_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let expected = expected_outputs(dir.path(), 42);
    let steps = [
        "checkpoint-state-saved:7",
        "checkpoint-manifest-written:2",
        "checkpoint-published:3",
        "final-manifest-written",
        "restore-published",
    ];
    for step in steps {
        let _ = std::fs::remove_dir_all(dir.path().join("out"));
        let _ = std::fs::remove_dir_all(dir.path().join("checkpoints"));
        if step == "restore-published" {
            kill_after_checkpoints(dir.path(), 2);
        }
        let ended = wait_all(
            start_with(dir.path(), 2, 1, Some(step)),
            Duration::from_secs(300),
        );
        let (code, err) = &ended[0];
        assert!(
            *code != 0 && err.contains("failpoint"),
            "{step}: the run did not stop at the failpoint ({code}): {err}"
        );
        let err = run_to_end(dir.path());
        let got = outputs(&dir.path().join("out"));
        for ((name, want), (_, have)) in expected.iter().zip(&got) {
            assert!(
                have == want,
                "after a crash at {step}: {name} has {} lines, a run without failure {}; {err}",
                have.len(),
                want.len()
            );
        }
    }
}

/// A damaged newest checkpoint (a truncated file, a changed byte) is skipped
/// with a warning naming it and why, and the one before is restored.
#[test]
fn a_damaged_newest_checkpoint_is_skipped_for_the_one_before() {
    let dir = tempfile::tempdir().unwrap();
    let expected = expected_outputs(dir.path(), 7);
    for damage in ["truncated", "changed"] {
        let _ = std::fs::remove_dir_all(dir.path().join("out"));
        let _ = std::fs::remove_dir_all(dir.path().join("checkpoints"));
        kill_after_checkpoints(dir.path(), 3);
        let checkpoints = dir.path().join("checkpoints");
        let newest = newest_checkpoint(&checkpoints).unwrap();
        let state = std::fs::read_dir(checkpoints.join(format!("chk-{newest:020}")))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("state-")
            })
            .unwrap();
        let mut bytes = std::fs::read(&state).unwrap();
        match damage {
            "truncated" => bytes.truncate(bytes.len() / 2),
            _ => bytes[0] ^= 0xff,
        }
        std::fs::write(&state, bytes).unwrap();
        let err = run_to_end(dir.path());
        assert!(
            err.contains(&format!("checkpoint {newest}")) && err.contains("skipped"),
            "{damage}: no warning naming checkpoint {newest}: {err}"
        );
        assert!(
            err.contains("restoring the checkpoint at"),
            "{damage}: {err}"
        );
        assert!(
            !err.contains(&format!("restoring the checkpoint at {newest}")),
            "{damage}: {err}"
        );
        let got = outputs(&dir.path().join("out"));
        assert!(
            got == expected,
            "{damage}: the output differs from a run without failure"
        );
    }
}

/// A checkpoint of another plan is not restored: the error names the
/// stage that changed.
#[test]
fn restoring_into_a_changed_plan_is_an_error_naming_the_stage() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("input");
    std::fs::create_dir_all(&input).unwrap();
    write_input(&input, 3);
    kill_after_checkpoints(dir.path(), 1);
    let changed = Pipeline::new("recovery");
    let wm = Watermark::bounded(Duration::from_millis(300));
    changed
        .source(Csv::<Click>::new(input.join("clicks.csv")).split_size(256 * 1024))
        .event_time(|c: &Click| c.ts, wm)
        .key_by(|c: &Click| c.user)
        .window(Tumbling::of(Duration::from_secs(2)))
        .count()
        .sink(JsonLinesFile::to(dir.path().join("changed.jsonl")));
    let err = changed
        .checkpoint(Checkpointing::to(dir.path().join("checkpoints")))
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, RunError::Plan(PlanError::PlanChanged { .. })),
        "{text}"
    );
    assert!(
        text.contains("stage #") && text.contains("is now"),
        "{text}"
    );
    assert!(text.contains("delete"), "{text}");
}

/// Stages that cannot take part in checkpoints are plan errors naming them
/// and what would do.
#[test]
fn stages_that_cannot_take_part_in_checkpoints_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let with = |p: Pipeline| p.checkpoint(Checkpointing::to(dir.path().join("c")));
    let out = || JsonLinesFile::to(dir.path().join("out.jsonl"));
    let cases: Vec<(Pipeline, &str)> = vec![
        (
            with(Pipeline::new("a").source(Stdin::lines()).sink(out())),
            "stdin",
        ),
        (
            with(
                Pipeline::new("b")
                    .source(Generator::new(10, |i| i))
                    .sink(out()),
            ),
            "event time",
        ),
        (
            with(
                Pipeline::new("d")
                    .source(Generator::new(10, |i| i))
                    .event_time(|i: &u64| *i, Watermark::ascending())
                    .sink(Collect::new()),
            ),
            "collect",
        ),
    ];
    for (pipeline, names) in cases {
        let err = pipeline.validate().unwrap_err().to_string();
        assert!(err.contains("checkpoint"), "{err}");
        assert!(err.to_lowercase().contains(names), "{names}: {err}");
    }
}

/// A checkpoint that cannot be published (its output file is `/dev/full`)
/// fails the job with an error naming the file, although committing runs
/// on a thread of its own.
#[test]
fn a_commit_that_fails_fails_the_job_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::new("unpublishable");
    p.source(Generator::new(200_000, |i| i))
        .event_time(|i: &u64| *i, Watermark::ascending())
        .key_by(|i: &u64| i % 7)
        .window(Tumbling::of(Duration::from_millis(100)))
        .count()
        .sink(JsonLinesFile::to("/dev/full"));
    let err = p
        .checkpoint(Checkpointing::to(dir.path().join("c")).every(Duration::from_millis(5)))
        .run(Cluster::threads(2).quiet(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("checkpoint storage /dev/full"), "{err}");
}
