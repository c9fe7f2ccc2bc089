//! The AMQP source against a real RabbitMQ broker (feature `amqp`).
//!
//! The broker's URL comes from `WEIR_AMQP_URL` (`.ci/run` starts one on
//! loopback and sets it). Without it the tests say that they were skipped
//! and why, except under CI (`CI=true`), where a missing broker is a
//! failure. Test messages are published with lapin directly, not through
//! weir, and queues are inspected the same way.
#![cfg(feature = "amqp")]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use futures_executor::block_on;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use weir::Checkpointing;
use weir::prelude::*;
use weir::sinks::AmqpSink;
use weir::sources::{Amqp, AmqpRecord};

mod processes;
mod queues;
use processes::{free_hostfile, wait};
use queues::{Click, clicks, reference, sorted_lines};

/// The broker to test against, or `None` (with a message) to skip.
fn url() -> Option<String> {
    queues::broker("WEIR_AMQP_URL", "a RabbitMQ broker")
}

/// A channel of a connection of the test's own.
fn channel(url: &str) -> (Connection, Channel) {
    let connection = block_on(Connection::connect(url, ConnectionProperties::default())).unwrap();
    let channel = block_on(connection.create_channel()).unwrap();
    (connection, channel)
}

/// A durable queue of its own for each test.
fn create_queue(url: &str, prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let queue = format!("{prefix}-{}-{nanos}", std::process::id());
    let (_connection, channel) = channel(url);
    let options = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    block_on(channel.queue_declare(queue.as_str().into(), options, FieldTable::default())).unwrap();
    queue
}

/// The messages ready in `queue` (neither delivered nor acknowledged).
fn ready(url: &str, queue: &str) -> u32 {
    let (_connection, channel) = channel(url);
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    block_on(channel.queue_declare(queue.into(), options, FieldTable::default()))
        .unwrap()
        .message_count()
}

/// Publishes `bodies` to `queue` (through the default exchange), each with
/// a message id if `ids`, and waits for the broker's confirms.
fn publish(url: &str, queue: &str, bodies: &[Vec<u8>], ids: bool) {
    let (_connection, channel) = channel(url);
    block_on(channel.confirm_select(ConfirmSelectOptions::default())).unwrap();
    let mut confirms = Vec::new();
    for (i, body) in bodies.iter().enumerate() {
        let mut properties = BasicProperties::default().with_delivery_mode(2);
        if ids {
            properties = properties.with_message_id(format!("{queue}-{i}").into());
        }
        confirms.push(
            block_on(channel.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            ))
            .unwrap(),
        );
    }
    for confirm in confirms {
        assert!(block_on(confirm).unwrap().is_ack());
    }
}

fn bodies(clicks: &[Click]) -> Vec<Vec<u8>> {
    clicks
        .iter()
        .map(|c| serde_json::to_vec(c).unwrap())
        .collect()
}

/// The job: clicks from `source`, counted per user in 1 s tumbling windows,
/// into `out` as `(user, window start, count)`.
fn job(source: Amqp<Click>, out: &Path) -> Pipeline {
    let p = Pipeline::new("amqp-counts");
    counts(&p, source).sink(JsonLinesFile::to(out));
    p
}

/// Clicks from `source` counted per user in 1 s tumbling windows, as
/// `(user, window start, count)`.
fn counts(p: &Pipeline, source: Amqp<Click>) -> Stream<(u32, u64, u64)> {
    counts_of(p.source(source))
}

/// The clicks of a source's stream counted as [`counts`] does.
fn counts_of(records: Stream<AmqpRecord<Click>>) -> Stream<(u32, u64, u64)> {
    records
        .event_time(
            |r: &AmqpRecord<Click>| r.value.ts,
            Watermark::bounded(Duration::from_millis(300)),
        )
        .key_by(|r| r.value.user)
        .window(Tumbling::of(Duration::from_secs(1)))
        .count()
        .map(|w| (w.key, w.window_start, w.value))
}

/// A bounded queue read by one consumer on one worker and by three
/// consumers on two workers: every message counted exactly once, and every
/// one acknowledged (the queue is empty after the job).
#[test]
fn a_bounded_queue_is_counted_exactly_once_and_acknowledged() {
    let Some(url) = url() else { return };
    let clicks = clicks(20_000, 7);
    let want = reference(&clicks);
    let dir = tempfile::tempdir().unwrap();
    for (workers, consumers) in [(1, 1), (2, 3)] {
        let queue = create_queue(&url, "counts");
        publish(&url, &queue, &bodies(&clicks), false);
        let out = dir.path().join(format!("out-{workers}.jsonl"));
        let source = Amqp::new(url.as_str(), queue.as_str())
            .json::<Click>()
            .consumers(consumers)
            .bounded();
        let summary = job(source, &out)
            .run(Cluster::threads(workers).quiet(true))
            .unwrap();
        let got = sorted_lines(&out);
        assert_eq!(got.len(), want.len(), "{workers} workers");
        assert!(got == want, "{workers} workers: the counts differ");
        assert!(summary.late.iter().all(|(_, n)| *n == 0));
        assert_eq!(ready(&url, &queue), 0, "{workers} workers: messages left");
    }
}

/// A missing queue and an unreachable broker are errors naming what was
/// tried (never the password), within the timeout; a body that does not
/// decode names the queue, the consumer and the message, and the messages
/// not done with go back to the queue.
#[test]
fn broker_mistakes_and_bad_messages_are_errors_naming_them() {
    let Some(url) = url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let missing = Amqp::new(url.as_str(), "no-such-queue")
        .json::<Click>()
        .bounded();
    let err = job(missing, &out)
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("queue `no-such-queue` not found"), "{err}");
    assert!(!err.contains(":guest@"), "the password shows: {err}");

    let started = std::time::Instant::now();
    let unreachable = Amqp::new("amqp://weir:s3cret@127.0.0.1:1/%2f", "q")
        .json::<Click>()
        .timeout(Duration::from_secs(2));
    let err = job(unreachable, &out)
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("amqp://weir:***@127.0.0.1:1/%2f"), "{err}");
    assert!(!err.contains("s3cret"), "the password shows: {err}");
    assert!(started.elapsed() < Duration::from_secs(30), "{err}");

    let queue = create_queue(&url, "bad");
    let mut messages = bodies(&clicks(100, 3));
    messages.insert(50, b"not json".to_vec());
    publish(&url, &queue, &messages, true);
    let source = Amqp::new(url.as_str(), queue.as_str())
        .json::<Click>()
        .bounded();
    let err = job(source, &out)
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err()
        .to_string();
    // The 51st delivery on the consumer's channel, with its id.
    assert!(
        err.contains(&format!(
            "queue `{queue}` consumer 0 message 51 (id `{queue}-50`)"
        )),
        "{err}"
    );
    assert!(err.contains("bad JSON"), "{err}");
    // The job failed: what it had not acknowledged is back in the queue,
    // the bad message with it.
    let left = ready(&url, &queue);
    assert!((1..=101).contains(&left), "{left} messages left");
}

/// Without event time a message is acknowledged as soon as it is sent on;
/// the job's records are the queue's messages, in order on one consumer.
#[test]
fn a_queue_without_event_time_is_read_in_order_and_acknowledged() {
    let Some(url) = url() else { return };
    let queue = create_queue(&url, "plain");
    let lines: Vec<Vec<u8>> = (0..5_000)
        .map(|i| format!("line {i}").into_bytes())
        .collect();
    publish(&url, &queue, &lines, true);
    let out = Collect::new();
    let p = Pipeline::new("amqp-text");
    p.source(Amqp::new(url.as_str(), queue.as_str()).text().bounded())
        .map(|r: AmqpRecord<String>| (r.message_id.unwrap_or_default(), r.value))
        .sink(out.clone());
    p.run(Cluster::threads(1).quiet(true)).unwrap();
    let got = out.take();
    assert_eq!(got.len(), 5_000);
    for (i, (id, line)) in got.iter().enumerate() {
        assert_eq!(
            (id.as_str(), line.as_str()),
            (
                format!("{queue}-{i}").as_str(),
                format!("line {i}").as_str()
            )
        );
    }
    assert_eq!(ready(&url, &queue), 0);
}

/// Every message of `queue`, taken off it, as text.
fn drain(url: &str, queue: &str) -> Vec<String> {
    let (_connection, channel) = channel(url);
    let options = lapin::options::BasicGetOptions { no_ack: true };
    let mut bodies = Vec::new();
    while let Some(m) = block_on(channel.basic_get(queue.into(), options)).unwrap() {
        bodies.push(String::from_utf8(m.delivery.data).unwrap());
    }
    bodies
}

/// Queue → windowed counts → the default exchange, routed to a result
/// queue: every count arrives once, confirmed by the broker, on 2
/// workers. A routing key no queue is bound to is an error naming the
/// exchange and the key, not a silent loss.
#[test]
fn a_windowed_job_publishes_its_results_to_an_exchange() {
    let Some(url) = url() else { return };
    let input = create_queue(&url, "in");
    let results = create_queue(&url, "results");
    let clicks = clicks(10_000, 5);
    publish(&url, &input, &bodies(&clicks), true);
    let p = Pipeline::new("amqp-to-amqp");
    let source = Amqp::new(url.as_str(), input.as_str())
        .json::<Click>()
        .bounded();
    counts(&p, source).sink(AmqpSink::new(url.as_str(), "").routing_key(results.as_str()));
    p.run(Cluster::threads(2).quiet(true)).unwrap();
    let mut got: Vec<String> = drain(&url, &results);
    got.sort();
    assert_eq!(got, reference(&clicks));
    assert_eq!(ready(&url, &input), 0);

    let p = Pipeline::new("unroutable");
    p.source(Iter::new(vec![1u32, 2, 3]))
        .sink(AmqpSink::new(url.as_str(), "amq.direct").routing_key("nowhere"));
    let err = p
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("exchange `amq.direct`"), "{err}");
    assert!(err.contains("routing key `nowhere`"), "{err}");
    assert!(err.contains("could not route"), "{err}");
}

/// `weir run` with a queue source and an exchange sink: the URL comes from
/// the environment (`url_env`), the clicks are counted per user and window
/// on 2 workers, the results arrive in the result queue as JSON objects
/// equal to the reference, and neither `weir run` nor `weir explain` shows
/// the password.
#[cfg(feature = "cli")]
#[test]
fn a_spec_reads_a_queue_and_publishes_to_an_exchange() {
    let Some(url) = url() else { return };
    let input = create_queue(&url, "spec-in");
    let results = create_queue(&url, "spec-out");
    let clicks = clicks(5_000, 9);
    publish(&url, &input, &bodies(&clicks), true);
    let dir = tempfile::tempdir().unwrap();
    let spec = format!(
        r#"
name = "amqp-spec"
[source]
type = "amqp"
url_env = "WEIR_TEST_AMQP_URL"
queue = "{input}"
format = "json"
bounded = true
consumers = 2
event_time = {{ field = "ts", max_out_of_orderness_ms = 300 }}
[window]
key = "user"
type = "tumbling"
size_ms = 1000
[aggregate]
n = "count(*)"
[sink]
type = "amqp"
url_env = "WEIR_TEST_AMQP_URL"
exchange = ""
routing_key = "{results}"
"#
    );
    std::fs::write(dir.path().join("job.toml"), spec).unwrap();
    // A password of the test's own in the URL: RabbitMQ's guest account
    // has the password `guest`, which is also its user name.
    for args in [
        &["explain", "job.toml"][..],
        &["run", "job.toml", "-w", "2"],
    ] {
        let command = args[0];
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .env("WEIR_TEST_AMQP_URL", &url)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(out.status.success(), "{command}: {stderr}");
        if command == "run" {
            // The source is named with the format the spec gave.
            assert!(
                stderr.contains(&format!("source amqp({input}, json): 5000 events read")),
                "{stderr}"
            );
        }
        assert!(
            !stdout.contains(":guest@") && !stderr.contains(":guest@"),
            "{command} shows the password: {stdout}{stderr}"
        );
    }
    let mut got: Vec<String> = drain(&url, &results)
        .iter()
        .map(|body| {
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            let user: u32 = v["user"].as_u64().unwrap() as u32;
            let start = v["window_start"].as_u64().unwrap();
            serde_json::to_string(&(user, start, v["n"].as_u64().unwrap())).unwrap()
        })
        .collect();
    got.sort();
    assert_eq!(got, reference(&clicks));
    assert_eq!(ready(&url, &input), 0);

    // Without the variable: an error naming the field and the variable.
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "job.toml"])
        .env_remove("WEIR_TEST_AMQP_URL")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("source.url_env") && stderr.contains("WEIR_TEST_AMQP_URL"),
        "{stderr}"
    );
}

/// The broker's TLS listener and the CA that signed its certificate, or
/// `None` (with a message) to skip: `.ci/rabbitmq` makes a self-signed CA
/// and enables the listener when given a TLS port, as `.ci/run` does.
fn tls() -> Option<(String, PathBuf)> {
    let url = queues::broker("WEIR_AMQPS_URL", "RabbitMQ's TLS listener")?;
    let ca = queues::broker("WEIR_AMQPS_CA", "RabbitMQ's TLS listener (its CA)")?;
    Some((url, PathBuf::from(ca)))
}

/// Over `amqps://`, checked against the test CA (`ca_file`), a queue is
/// read and the results are published; without the CA the broker's
/// certificate is refused, with an error that does not show the password.
#[test]
fn an_amqps_broker_is_trusted_through_its_ca_file_only() {
    let (Some(url), Some((tls_url, ca))) = (url(), tls()) else {
        return;
    };
    let input = create_queue(&url, "tls-in");
    let results = create_queue(&url, "tls-out");
    let clicks = clicks(2_000, 13);
    publish(&url, &input, &bodies(&clicks), true);
    let p = Pipeline::new("amqps");
    let source = Amqp::new(tls_url.as_str(), input.as_str())
        .json::<Click>()
        .ca_file(&ca)
        .bounded();
    let sink = AmqpSink::new(tls_url.as_str(), "")
        .routing_key(results.as_str())
        .ca_file(&ca);
    counts(&p, source).sink(sink);
    p.run(Cluster::threads(2).quiet(true)).unwrap();
    let mut got = drain(&url, &results);
    got.sort();
    assert_eq!(got, reference(&clicks));

    let p = Pipeline::new("amqps-untrusted");
    p.source(
        Amqp::new(tls_url.as_str(), input.as_str())
            .timeout(Duration::from_secs(5))
            .bounded(),
    )
    .sink(Collect::new());
    let err = p
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot connect to amqps://guest:***@"),
        "{err}"
    );
    assert!(err.to_lowercase().contains("certificate"), "{err}");
}

const ENV_CHILD: &str = "WEIR_AMQP_CHILD";

/// Runs the checkpointed job as one process of a cluster when the
/// environment says so.
#[test]
#[ignore = "helper: started as a child process by the recovery test"]
fn child() {
    let Ok(spec) = std::env::var(ENV_CHILD) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [url, queue, dir, workers, processes, process, hosts, results] = parts[..] else {
        panic!("bad {ENV_CHILD}: {spec}");
    };
    let dir = PathBuf::from(dir);
    let n = |s: &str| s.parse::<usize>().unwrap();
    let cluster = match n(processes) {
        1 => Cluster::threads(n(workers)),
        p => Cluster::multi_process(n(workers), p, n(process), hosts),
    };
    // Two consumers, read until the queue is empty; a small prefetch, so
    // that many checkpoints hold messages not acknowledged yet.
    let source = Amqp::new(url, queue)
        .json::<Click>()
        .consumers(2)
        .prefetch(500)
        .bounded();
    let job = match results {
        "" => job(source, &dir.join("out.jsonl")),
        results => {
            let p = Pipeline::new("amqp-to-amqp");
            counts(&p, source).sink(AmqpSink::new(url, "").routing_key(results));
            p
        }
    };
    let job =
        job.checkpoint(Checkpointing::to(dir.join("checkpoints")).every(Duration::from_millis(50)));
    match job.run(cluster) {
        Ok(_) => std::process::exit(0),
        Err(e) => {
            eprintln!("child error: {e}");
            std::process::exit(3);
        }
    }
}

/// Starts the checkpointed job on `processes` processes of `workers`
/// threads, process 0 with failpoint `failpoint` armed if given, writing
/// its counts into `out.jsonl` in `dir`.
fn start(
    url: &str,
    queue: &str,
    dir: &Path,
    workers: usize,
    processes: usize,
    failpoint: Option<&str>,
) -> Vec<std::process::Child> {
    start_with(url, queue, dir, (workers, processes), failpoint, "")
}

/// As [`start`], publishing the counts to queue `results` (through the
/// default exchange) if it is not `""`.
fn start_with(
    url: &str,
    queue: &str,
    dir: &Path,
    (workers, processes): (usize, usize),
    failpoint: Option<&str>,
    results: &str,
) -> Vec<std::process::Child> {
    let hosts = free_hostfile(dir, processes);
    (0..processes)
        .map(|process| {
            let spec = format!(
                "{url}|{queue}|{}|{workers}|{processes}|{process}|{}|{results}",
                dir.display(),
                hosts.display()
            );
            let mut command = Command::new(std::env::current_exe().unwrap());
            command.env_remove("WEIR_FAILPOINT");
            if let (0, Some(failpoint)) = (process, failpoint) {
                command.env("WEIR_FAILPOINT", failpoint);
            }
            command
                .args(["--ignored", "--exact", "child", "--nocapture"])
                .env(ENV_CHILD, spec)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect()
}

/// A 2-process job reading a queue with checkpoints crashes: process 0
/// aborts right after committing its second checkpoint (before its
/// consumer could acknowledge what that checkpoint holds), process 1 is
/// killed with SIGKILL. Restarted on 3 threads of one process, the job
/// writes exactly the counts of a run without failure: messages
/// acknowledged only once a checkpoint holds them are not lost, and the
/// redeliveries of those the restored checkpoint holds are not counted
/// twice. The queue is empty at the end.
#[test]
fn a_crashed_job_loses_and_repeats_no_message() {
    let Some(url) = url() else { return };
    let queue = create_queue(&url, "resume");
    let clicks = clicks(40_000, 11);
    publish(&url, &queue, &bodies(&clicks), true);
    let want = reference(&clicks);
    let dir = tempfile::tempdir().unwrap();
    let mut children = start(
        &url,
        &queue,
        dir.path(),
        1,
        2,
        Some("checkpoint-manifest-written:2"),
    );
    let (code, err) = wait(children.remove(0), Duration::from_secs(120));
    assert!(
        err.contains("failpoint `checkpoint-manifest-written` reached"),
        "{code}: {err}"
    );
    for mut child in children {
        let _ = child.kill();
        wait(child, Duration::from_secs(60));
    }
    // What was not acknowledged is back in the queue (all of it if the
    // crash came before the first acknowledgement): the restart gets it
    // again, and must drop what the checkpoint already counted.
    let left = ready(&url, &queue);
    assert!(
        left > 0 && (left as usize) <= clicks.len(),
        "crashed mid-stream: {left} of {} messages left",
        clicks.len()
    );
    let ended: Vec<_> = start(&url, &queue, dir.path(), 3, 1, None)
        .into_iter()
        .map(|c| wait(c, Duration::from_secs(120)))
        .collect();
    let (code, err) = &ended[0];
    assert_eq!(*code, 0, "{err}");
    assert!(err.contains("restoring the checkpoint at"), "{err}");
    let got = sorted_lines(&dir.path().join("out.jsonl"));
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the counts differ from a run without failure");
    assert_eq!(ready(&url, &queue), 0, "messages left after the restart");
}

/// Every message of `queue`, taken off it: its message id and body.
fn drain_with_ids(url: &str, queue: &str) -> Vec<(String, String)> {
    let (_connection, channel) = channel(url);
    let options = lapin::options::BasicGetOptions { no_ack: true };
    let mut messages = Vec::new();
    while let Some(m) = block_on(channel.basic_get(queue.into(), options)).unwrap() {
        let id = m
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string());
        let body = String::from_utf8(m.delivery.data).unwrap();
        messages.push((id.expect("a published result has a message id"), body));
    }
    messages
}

/// Queue → windowed counts → exchange with checkpoints, on 2 processes,
/// crashed (a failpoint aborts process 0) at each point of publishing a
/// checkpoint's results and restarted on 3 threads: every count arrives,
/// and a count that arrives twice has the same message id both times.
/// - before publishing (the manifest is written): the restart publishes
///   the restored checkpoint, and every count arrives exactly once;
/// - after publishing, before the confirms, and after the confirms,
///   before the checkpoint notes them: the restart publishes the restored
///   checkpoint's results again (at least once), with the same ids.
#[test]
fn a_checkpointed_job_publishes_every_count_across_crashes_with_stable_ids() {
    let Some(url) = url() else { return };
    let input = create_queue(&url, "txn-in");
    let clicks = clicks(20_000, 17);
    let want = reference(&clicks);
    for failpoint in [
        "checkpoint-manifest-written:2",
        "queue-publishing:2",
        "queue-published:2",
    ] {
        publish(&url, &input, &bodies(&clicks), true);
        let results = create_queue(&url, "txn-results");
        let dir = tempfile::tempdir().unwrap();
        let mut children = start_with(&url, &input, dir.path(), (1, 2), Some(failpoint), &results);
        let (code, err) = wait(children.remove(0), Duration::from_secs(120));
        assert!(err.contains("failpoint"), "{failpoint}: {code}: {err}");
        for mut child in children {
            let _ = child.kill();
            wait(child, Duration::from_secs(60));
        }
        let ended: Vec<_> = start_with(&url, &input, dir.path(), (3, 1), None, &results)
            .into_iter()
            .map(|c| wait(c, Duration::from_secs(120)))
            .collect();
        let (code, err) = &ended[0];
        assert_eq!(*code, 0, "{failpoint}: {err}");
        assert!(
            err.contains("restoring the checkpoint at"),
            "{failpoint}: {err}"
        );
        let messages = drain_with_ids(&url, &results);
        let mut by_id: std::collections::BTreeMap<String, String> = Default::default();
        for (id, body) in &messages {
            let first = by_id.entry(id.clone()).or_insert_with(|| body.clone());
            assert_eq!(first, body, "{failpoint}: message id {id} on two results");
        }
        let mut got: Vec<String> = by_id.into_values().collect();
        got.sort();
        assert!(
            got == want,
            "{failpoint}: the counts differ from a run without failure"
        );
        if failpoint.starts_with("checkpoint-manifest-written") {
            assert_eq!(messages.len(), want.len(), "{failpoint}: repeated results");
        }
        assert_eq!(ready(&url, &input), 0, "{failpoint}: messages left");
    }
}

/// Bodies that do not decode, with the dead-letter policy, go to the dead
/// letters naming the queue and consumer, the rest is counted as without
/// them, and every message is acknowledged, on 2 workers and 2 consumers.
#[test]
fn bad_messages_go_to_the_dead_letters_and_are_acknowledged() {
    use weir::sources::{DeadLetter, Origin};
    let Some(url) = url() else { return };
    let clicks = clicks(5_000, 13);
    let queue = create_queue(&url, "letters");
    let mut all = bodies(&clicks);
    let bad: Vec<Vec<u8>> = (0..15u8)
        .map(|i| format!("{{\"user\": {i}").into_bytes())
        .collect();
    // Bad bodies spread through the good ones.
    for (i, body) in bad.iter().enumerate() {
        all.insert(i * 300, body.clone());
    }
    publish(&url, &queue, &all, true);
    let dir = tempfile::tempdir().unwrap();
    let (out, letters) = (dir.path().join("out.jsonl"), Collect::new());
    let p = Pipeline::new("amqp-letters");
    let source = Amqp::new(url.as_str(), queue.as_str())
        .json::<Click>()
        .consumers(2)
        .bounded();
    let stream = p.source(source);
    stream.dead_letters().sink(letters.clone());
    counts_of(stream)
        .sink(JsonLinesFile::to(&out))
        .run(Cluster::threads(2).quiet(true))
        .unwrap();
    assert!(
        sorted_lines(&out) == reference(&clicks),
        "the counts differ"
    );
    let mut got: Vec<Vec<u8>> = letters
        .take()
        .into_iter()
        .map(|d: DeadLetter| {
            assert!(d.reason.contains("bad JSON"), "{d:?}");
            match d.origin {
                Origin::Queue {
                    queue: q,
                    consumer,
                    message_id,
                    ..
                } => {
                    assert_eq!(q, queue);
                    assert_eq!(consumer, d.partition);
                    assert!(message_id.is_some());
                }
                other => panic!("a queue's dead letter at {other:?}"),
            }
            d.raw
        })
        .collect();
    got.sort();
    let mut want = bad;
    want.sort();
    assert_eq!(got, want);
    assert_eq!(ready(&url, &queue), 0, "messages left in the queue");
}

/// With metrics served, each consumer's unacknowledged deliveries are a
/// gauge: with event time a message is acknowledged once the results it
/// went into reached the sinks, so a slow sink keeps some unacknowledged.
#[test]
fn unacknowledged_deliveries_show_while_a_slow_job_works() {
    let Some(url) = url() else { return };
    let queue = create_queue(&url, "unacked");
    publish(&url, &queue, &bodies(&clicks(2_000, 5)), false);
    let addr = queues::free_addr();
    let cluster = Cluster::threads(1).quiet(true).with_metrics(&addr);
    let stop = cluster.stop_handle();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let w = std::sync::Arc::clone(&written);
    let p = Pipeline::new("unacked");
    p.source(Amqp::new(url.as_str(), queue.as_str()).json::<Click>())
        .event_time(
            |r: &AmqpRecord<Click>| r.value.ts,
            Watermark::bounded(Duration::from_millis(100)),
        )
        .sink(ForEach::new(move |_: &AmqpRecord<Click>| {
            w.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(1));
        }));
    let job = std::thread::spawn(move || p.run(cluster));
    let start = std::time::Instant::now();
    let mut most = 0;
    while written.load(std::sync::atomic::Ordering::Relaxed) < 2_000 {
        if let Some(unacked) = queues::scraped(&addr, "weir_amqp_unacked_messages") {
            most = most.max(unacked);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "most unacked {most}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        most >= 20,
        "the consumer never showed unacknowledged deliveries: at most {most}"
    );
    // The endpoint shows no connector setting: not the broker's URL, nor
    // its credentials.
    for path in ["/metrics", "/api/state"] {
        let reply = queues::get(&addr, path).unwrap();
        assert!(reply.contains("amqp("), "{path}: {reply}");
        assert!(
            !reply.contains(&url) && !reply.contains("guest:guest"),
            "{path} shows the broker URL"
        );
    }
    stop.request();
    let _ = job.join().unwrap();
}
