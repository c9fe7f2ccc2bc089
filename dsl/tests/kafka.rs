//! The Kafka source against a real broker (feature `kafka`).
//!
//! The broker's address comes from `WEIR_KAFKA_BROKERS` (`.ci/run` starts
//! one on loopback and sets it). Without it the tests say that they were
//! skipped and why, except under CI (`CI=true`), where a missing broker is
//! a failure. Test data is produced with rdkafka's producer directly, not
//! through weir.
//!
//! Every record is produced as a batch of its own (`batch.num.messages=1`):
//! tansu 0.6, the broker CI runs, reports a partition's end offset as the
//! last batch's first offset plus one, so a bounded read of multi-record
//! batches would stop early. Kafka itself reports the offset after the last
//! record.
#![cfg(feature = "kafka")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use weir::Checkpointing;
use weir::prelude::*;
use weir::sources::{Kafka, KafkaRecord, KafkaStart};

mod processes;
mod queues;
use processes::{free_hostfile, wait};
use queues::{Click, clicks, reference, sorted_lines};

/// The broker to test against, or `None` (with a message) to skip.
fn brokers() -> Option<String> {
    queues::broker("WEIR_KAFKA_BROKERS", "a Kafka broker")
}

/// A topic of its own for each test, with `partitions` partitions.
fn create_topic(brokers: &str, prefix: &str, partitions: i32) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let topic = format!("{prefix}-{}-{nanos}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    let new = NewTopic::new(&topic, partitions, TopicReplication::Fixed(1));
    let results = futures_executor::block_on(admin.create_topics(
        [&new],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))
    .unwrap();
    for r in results {
        r.unwrap();
    }
    topic
}

/// Produces `n` out-of-order clicks (as JSON) to `topic`, spread over its
/// partitions by key; returns them.
fn produce(brokers: &str, topic: &str, partitions: i32, n: u64, seed: u64) -> Vec<Click> {
    let producer = producer(brokers);
    let clicks = clicks(n, seed);
    for click in &clicks {
        let value = serde_json::to_vec(&click).unwrap();
        let key = click.user.to_string();
        let partition = (click.user as i32) % partitions;
        loop {
            let record = BaseRecord::to(topic)
                .key(&key)
                .payload(&value)
                .partition(partition);
            match producer.send(record) {
                Ok(()) => break,
                Err((e, _)) => {
                    assert!(
                        matches!(
                            e.rdkafka_error_code(),
                            Some(rdkafka::types::RDKafkaErrorCode::QueueFull)
                        ),
                        "{e}"
                    );
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
        producer.poll(Duration::ZERO);
    }
    // One request per record (see the module documentation), while other
    // tests produce too: this can take a while on a busy broker.
    producer.flush(Duration::from_secs(180)).unwrap();
    clicks
}

/// The job: clicks from `topic`, counted per user in 1 s tumbling windows,
/// into `out`.
fn job(brokers: &str, topic: &str, out: &Path, group: Option<&str>) -> Pipeline {
    let p = Pipeline::new("kafka-counts");
    let mut source = Kafka::new(brokers, topic).json::<Click>().bounded();
    if let Some(group) = group {
        source = source.group(group);
    }
    counts(&p, source).sink(JsonLinesFile::to(out));
    p
}

/// Clicks from `source` counted per user in 1 s tumbling windows, as
/// `(user, window start, count)`.
fn counts(p: &Pipeline, source: Kafka<Click>) -> Stream<(u32, u64, u64)> {
    counts_of(p.source(source))
}

/// The clicks of a source's stream counted as [`counts`] does.
fn counts_of(records: Stream<KafkaRecord<Click>>) -> Stream<(u32, u64, u64)> {
    records
        .event_time(
            |r: &KafkaRecord<Click>| r.value.ts,
            Watermark::bounded(Duration::from_millis(300)),
        )
        .key_by(|r: &KafkaRecord<Click>| r.value.user)
        .window(Tumbling::of(Duration::from_secs(1)))
        .count()
        .map(|w| (w.key, w.window_start, w.value))
}

/// A producer that sends every record as a batch of its own (see the module
/// documentation).
fn producer(brokers: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("batch.num.messages", "1")
        .create()
        .unwrap()
}

/// A topic of 3 partitions read to its end by 1, 2 and 4 workers: every
/// record counted exactly once, the same results each time.
#[test]
fn a_bounded_topic_is_counted_exactly_once_on_any_number_of_workers() {
    let Some(brokers) = brokers() else { return };
    let topic = create_topic(&brokers, "counts", 3);
    let clicks = produce(&brokers, &topic, 3, 20_000, 7);
    let want = reference(&clicks);
    let dir = tempfile::tempdir().unwrap();
    for workers in [1, 2, 4] {
        let out = dir.path().join(format!("out-{workers}.jsonl"));
        let summary = job(&brokers, &topic, &out, None)
            .run(Cluster::threads(workers).quiet(true))
            .unwrap();
        let got = sorted_lines(&out);
        assert_eq!(got.len(), want.len(), "{workers} workers");
        assert!(got == want, "{workers} workers: the counts differ");
        assert!(
            summary.late.iter().all(|(_, n)| *n == 0),
            "{:?}",
            summary.late
        );
    }
}

/// A completed job without checkpoints commits where its partitions
/// ended to its group, so a run that starts at the committed offsets reads
/// only what came after.
#[test]
fn a_completed_job_commits_its_end_offsets_to_its_group() {
    let Some(brokers) = brokers() else { return };
    let topic = create_topic(&brokers, "group-end", 3);
    produce(&brokers, &topic, 3, 5_000, 5);
    let group = format!("{topic}-group");
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first.jsonl");
    job(&brokers, &topic, &first, Some(&group))
        .run(Cluster::threads(2).quiet(true))
        .unwrap();
    assert!(!sorted_lines(&first).is_empty());
    assert_group_at_ends(&brokers, &topic, &group, 3);

    let later = produce(&brokers, &topic, 3, 1_000, 6);
    let second = dir.path().join("second.jsonl");
    let p = Pipeline::new("kafka-counts");
    let source = Kafka::new(&brokers, &topic)
        .json::<Click>()
        .bounded()
        .group(&group)
        .start(KafkaStart::Committed);
    counts(&p, source).sink(JsonLinesFile::to(&second));
    p.run(Cluster::threads(2).quiet(true)).unwrap();
    assert!(
        sorted_lines(&second) == reference(&later),
        "the second run read more than the new records"
    );
    assert_group_at_ends(&brokers, &topic, &group, 3);
}

/// A missing topic and an unreachable broker are errors naming what was
/// tried, within the source's timeout, not hangs; a value that does not
/// decode names the topic, partition and offset.
#[test]
fn broker_mistakes_and_bad_records_are_errors_naming_them() {
    let Some(brokers) = brokers() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let err = job(&brokers, "no-such-topic", &out, None)
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("topic `no-such-topic` not found"), "{err}");

    let started = std::time::Instant::now();
    let p = Pipeline::new("unreachable");
    p.source(
        Kafka::new("127.0.0.1:1", "events")
            .timeout(Duration::from_secs(2))
            .bounded(),
    )
    .sink(Collect::new());
    let err = p
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err()
        .to_string();
    assert!(err.contains("127.0.0.1:1"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "{err}");

    let topic = create_topic(&brokers, "bad", 1);
    let producer = producer(&brokers);
    for value in [&br#"{"user":1,"ts":5}"#[..], b"not json"] {
        producer
            .send(BaseRecord::<(), _>::to(&topic).payload(value))
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
    let err = job(&brokers, &topic, &out, None)
        .run(Cluster::threads(1).quiet(true))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("topic `{topic}` partition 0 offset 1")),
        "{err}"
    );
    assert!(err.contains("bad JSON"), "{err}");
}

const ENV_CHILD: &str = "WEIR_KAFKA_CHILD";

/// Runs the checkpointed job as one process of a cluster when the
/// environment says so.
#[test]
#[ignore = "helper: started as a child process by the recovery test"]
fn child() {
    let Ok(spec) = std::env::var(ENV_CHILD) else {
        return;
    };
    let parts: Vec<&str> = spec.split('|').collect();
    let [
        brokers,
        topic,
        dir,
        workers,
        processes,
        process,
        hosts,
        to_topic,
    ] = parts[..]
    else {
        panic!("bad {ENV_CHILD}: {spec}");
    };
    let dir = PathBuf::from(dir);
    let n = |s: &str| s.parse::<usize>().unwrap();
    let cluster = match n(processes) {
        1 => Cluster::threads(n(workers)),
        p => Cluster::multi_process(n(workers), p, n(process), hosts),
    };
    let job = match to_topic {
        "" => job(brokers, topic, &dir.join("out.jsonl"), Some(topic)),
        to_topic => {
            let p = Pipeline::new("kafka-to-kafka");
            let source = Kafka::new(brokers, topic).json::<Click>().bounded();
            counts(&p, source).sink(keyed_sink(brokers, to_topic));
            p
        }
    };
    let job = job
        .checkpoint(Checkpointing::to(dir.join("checkpoints")).every(Duration::from_millis(100)));
    match job.run(cluster) {
        Ok(_) => std::process::exit(0),
        Err(e) => {
            eprintln!("child error: {e}");
            std::process::exit(3);
        }
    }
}

/// Starts the checkpointed job on `processes` processes of `workers`
/// threads, writing its counts into `out.jsonl` in `dir`.
fn start(
    brokers: &str,
    topic: &str,
    dir: &Path,
    workers: usize,
    processes: usize,
) -> Vec<std::process::Child> {
    start_with(brokers, topic, dir, (workers, processes), "", None)
}

/// Starts the checkpointed job on `cluster.1` processes of `cluster.0`
/// threads, writing its counts to topic `to_topic` (`""`: into `out.jsonl`
/// in `dir`), with failpoint `failpoint` armed.
fn start_with(
    brokers: &str,
    topic: &str,
    dir: &Path,
    (workers, processes): (usize, usize),
    to_topic: &str,
    failpoint: Option<&str>,
) -> Vec<std::process::Child> {
    let hosts = free_hostfile(dir, processes);
    (0..processes)
        .map(|process| {
            let spec = format!(
                "{brokers}|{topic}|{}|{workers}|{processes}|{process}|{}|{to_topic}",
                dir.display(),
                hosts.display()
            );
            let mut child = Command::new(std::env::current_exe().unwrap());
            child
                .args(["--ignored", "--exact", "child", "--nocapture"])
                .env(ENV_CHILD, spec)
                .env_remove("WEIR_FAILPOINT")
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            if let Some(failpoint) = failpoint {
                child.env("WEIR_FAILPOINT", failpoint);
            }
            child.spawn().unwrap()
        })
        .collect()
}

/// A 2-process job reading a topic with checkpoints, killed with SIGKILL
/// once it has committed a checkpoint and restarted on 3 threads, writes
/// exactly the counts of a run without failure; the offsets of its last
/// checkpoint are committed to its consumer group.
#[test]
fn a_killed_job_resumes_at_its_checkpointed_offsets() {
    let Some(brokers) = brokers() else { return };
    let topic = create_topic(&brokers, "resume", 3);
    let clicks = produce(&brokers, &topic, 3, 60_000, 11);
    let want = reference(&clicks);
    let dir = tempfile::tempdir().unwrap();
    let checkpoints = dir.path().join("checkpoints");
    let committed = || {
        std::fs::read_dir(&checkpoints)
            .into_iter()
            .flatten()
            .filter(|e| {
                let path = e.as_ref().unwrap().path();
                path.join("MANIFEST.json").exists() && !path.ends_with(format!("chk-{}", u64::MAX))
            })
            .count()
    };
    let mut children = start(&brokers, &topic, dir.path(), 1, 2);
    let began = std::time::Instant::now();
    while committed() == 0 && began.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(2));
    }
    assert!(committed() > 0, "no checkpoint within a minute");
    let _ = children[1].kill();
    for child in children.iter_mut() {
        let _ = child.kill();
    }
    for child in children {
        wait(child, Duration::from_secs(60));
    }
    let ended: Vec<_> = start(&brokers, &topic, dir.path(), 3, 1)
        .into_iter()
        .map(|c| wait(c, Duration::from_secs(120)))
        .collect();
    let (code, err) = &ended[0];
    assert_eq!(*code, 0, "{err}");
    assert!(err.contains("restoring the checkpoint at"), "{err}");
    let got = sorted_lines(&dir.path().join("out.jsonl"));
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the counts differ from a run without failure");

    // The group's committed offsets are the partitions' ends (the next
    // offset to read after the last record).
    assert_group_at_ends(&brokers, &topic, &topic, 3);
}

/// Asserts that `group`'s committed offsets of the `partitions` partitions
/// of `topic` are their ends (the next offset to read after the last
/// record).
fn assert_group_at_ends(brokers: &str, topic: &str, group: &str, partitions: i32) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition(topic, p);
    }
    let offsets = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    for p in 0..partitions {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        let got = offsets.find_partition(topic, p).unwrap().offset();
        assert_eq!(got, Offset::Offset(high), "partition {p}");
    }
}

/// A spec's result (`user`, a number or a CSV string, `window_start`, `n`)
/// as a line of the reference.
#[cfg(feature = "cli")]
fn count_line(v: &serde_json::Value) -> String {
    let user: u32 = match &v["user"] {
        serde_json::Value::Number(n) => n.as_u64().unwrap() as u32,
        other => other.as_str().unwrap().parse().unwrap(),
    };
    let start = v["window_start"].as_u64().unwrap();
    serde_json::to_string(&(user, start, v["n"].as_u64().unwrap())).unwrap()
}

/// `weir run` with a Kafka source: the clicks of a 3-partition topic as
/// JSON, and the same clicks as CSV lines, counted per user and window on
/// 2 workers, give the reference counts.
#[cfg(feature = "cli")]
#[test]
fn a_spec_reads_json_and_csv_records_from_a_topic() {
    let Some(brokers) = brokers() else { return };
    let json_topic = create_topic(&brokers, "spec-json", 3);
    let clicks = produce(&brokers, &json_topic, 3, 5_000, 5);
    let csv_topic = create_topic(&brokers, "spec-csv", 2);
    let producer = producer(&brokers);
    for (i, c) in clicks.iter().enumerate() {
        let line = format!("{},{}", c.ts, c.user);
        let record = BaseRecord::<(), _>::to(&csv_topic)
            .payload(&line)
            .partition(i as i32 % 2);
        producer.send(record).unwrap();
        producer.poll(Duration::ZERO);
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec = |topic: &str, format: &str, out: &str| {
        format!(
            r#"
name = "kafka-spec"
[source]
type = "kafka"
brokers = "{brokers}"
topic = "{topic}"
{format}
bounded = true
event_time = {{ field = "ts", max_out_of_orderness_ms = 300 }}
[window]
key = "user"
type = "tumbling"
size_ms = 1000
[aggregate]
n = "count(*)"
[sink]
type = "jsonl"
path = "{out}"
"#
        )
    };
    std::fs::write(
        dir.path().join("json.toml"),
        spec(&json_topic, "format = \"json\"", "json.jsonl"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("csv.toml"),
        spec(
            &csv_topic,
            "format = \"csv\"\nfields = [\"ts\", \"user\"]",
            "csv.jsonl",
        ),
    )
    .unwrap();
    let want = reference(&clicks);
    for name in ["json", "csv"] {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(["run", &format!("{name}.toml"), "-q", "-w", "2"])
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::fs::read_to_string(dir.path().join(format!("{name}.jsonl"))).unwrap();
        let mut got: Vec<String> = text
            .lines()
            .map(|l| count_line(&serde_json::from_str(l).unwrap()))
            .collect();
        got.sort();
        assert_eq!(got.len(), want.len(), "{name}");
        assert!(got == want, "{name}: the counts differ");
    }

    // The same counts into a topic, keyed by user.
    let out_topic = create_topic(&brokers, "spec-out", 2);
    let to_topic = spec(&json_topic, "format = \"json\"", "unused").replace(
        "type = \"jsonl\"\npath = \"unused\"",
        &format!(
            "type = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"{out_topic}\"\nkey = \"user\""
        ),
    );
    std::fs::write(dir.path().join("to-topic.toml"), to_topic).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "to-topic.toml", "-q", "-w", "2"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = read_topic(&brokers, &out_topic, 2, want.len());
    let mut got: Vec<String> = records
        .iter()
        .map(|(_, key, value)| {
            let v: serde_json::Value = serde_json::from_slice(value).unwrap();
            assert_eq!(key, &v["user"].to_string().into_bytes());
            count_line(&v)
        })
        .collect();
    got.sort();
    assert!(got == want, "the counts in the topic differ");
}

/// Reads `expected` records of `topic` (its `partitions` partitions, from
/// the beginning), as (partition, key, value), and then any more that come
/// within a second. (The partitions' end offsets cannot say when to stop:
/// tansu reports them short of multi-record batches.)
fn read_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    expected: usize,
) -> Vec<(i32, Vec<u8>, Vec<u8>)> {
    use rdkafka::message::Message;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{topic}-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut records = Vec::new();
    let started = std::time::Instant::now();
    let mut last = std::time::Instant::now();
    loop {
        let done = records.len() >= expected;
        if (done && last.elapsed() > Duration::from_secs(1))
            || started.elapsed() > Duration::from_secs(60)
        {
            break;
        }
        if let Some(m) = consumer.poll(Duration::from_millis(50)) {
            let m = m.unwrap();
            records.push((
                m.partition(),
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
            ));
            last = std::time::Instant::now();
        } else if !done {
            last = std::time::Instant::now();
        }
    }
    records
}

/// Topic → window → topic: the counts written by a `KafkaSink` on 2
/// workers are the reference's, each once, keyed by user (all of a user's
/// results in one partition).
#[test]
fn a_windowed_job_writes_its_results_to_a_topic() {
    use weir::sinks::KafkaSink;
    let Some(brokers) = brokers() else { return };
    let input = create_topic(&brokers, "sink-in", 3);
    let output = create_topic(&brokers, "sink-out", 2);
    let clicks = produce(&brokers, &input, 3, 10_000, 3);
    let p = Pipeline::new("topic-to-topic");
    counts(&p, Kafka::new(&brokers, &input).json::<Click>().bounded()).sink(
        KafkaSink::new(&brokers, &output).key(|r: &(u32, u64, u64)| r.0.to_string().into_bytes()),
    );
    p.run(Cluster::threads(2).quiet(true)).unwrap();
    let want = reference(&clicks);
    let records = read_topic(&brokers, &output, 2, want.len());
    let mut got: Vec<String> = records
        .iter()
        .map(|(_, _, v)| String::from_utf8(v.clone()).unwrap())
        .collect();
    got.sort();
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the counts in the topic differ");
    let mut partition_of: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
    for (partition, key, value) in &records {
        let user: (u32, u64, u64) = serde_json::from_slice(value).unwrap();
        assert_eq!(key, &user.0.to_string().into_bytes());
        let first = *partition_of.entry(key.clone()).or_insert(*partition);
        assert_eq!(first, *partition, "a key's results in two partitions");
    }
}

/// The sink of the counts to `topic`, keyed by user.
fn keyed_sink(brokers: &str, topic: &str) -> weir::sinks::KafkaSink<(u32, u64, u64)> {
    weir::sinks::KafkaSink::new(brokers, topic)
        .key(|r: &(u32, u64, u64)| r.0.to_string().into_bytes())
}

/// The counts in `topic` (2 partitions), sorted, once `want` of them came.
fn counts_in(brokers: &str, topic: &str, want: usize) -> Vec<String> {
    let mut got: Vec<String> = read_topic(brokers, topic, 2, want)
        .iter()
        .map(|(_, _, v)| String::from_utf8(v.clone()).unwrap())
        .collect();
    got.sort();
    got
}

/// The marker the sink of stage `stage` of job `job` committed last to
/// its group (`weir-JOB-STAGE`), if any.
fn marker(brokers: &str, topic: &str, job: &str, stage: usize) -> Option<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("weir-{job}-{stage}"))
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let offsets = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    match offsets.find_partition(topic, 0).unwrap().offset() {
        Offset::Offset(marker) => Some(marker),
        _ => None,
    }
}

/// The stage number of the counts' sink in the kafka-to-kafka job.
fn sink_stage(brokers: &str) -> usize {
    let p = Pipeline::new("kafka-to-kafka");
    counts(&p, Kafka::new(brokers, "t").json::<Click>().bounded()).sink(keyed_sink(brokers, "o"));
    let plan = p.explain();
    let line = plan.lines().find(|l| l.contains("sink kafka(o)")).unwrap();
    line.trim()
        .trim_start_matches('#')
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Topic → window → topic with checkpoints, on 2 processes, crashed (a
/// failpoint aborts process 0) at each point of publishing a checkpoint
/// and restarted on 3 threads: the output topic holds each count exactly
/// once, and the sink's group holds a checkpoint's marker. (tansu 0.6
/// does not commit the offsets of a transaction without records, so the
/// test cannot ask for the final checkpoint's marker: a job's end may have
/// no output of its own.)
/// - before publishing (the manifest is written): the restart publishes
///   the restored checkpoint;
/// - after the transaction committed, before the checkpoint notes it: the
///   restart finds the checkpoint's marker in the group and does not
///   publish it again;
/// - while the transaction is open (its records sent, not committed): the
///   restart's producer aborts it and publishes the checkpoint again.
///   Kafka's `read_committed` consumers do not see aborted records; tansu's
///   do, so here the topic holds each count once plus a repeat of some of
///   the aborted transaction's.
#[test]
fn a_checkpointed_job_publishes_each_count_to_a_topic_once_across_crashes() {
    let Some(brokers) = brokers() else { return };
    let input = create_topic(&brokers, "txn-in", 3);
    let clicks = produce(&brokers, &input, 3, 60_000, 5);
    let want = reference(&clicks);
    let stage = sink_stage(&brokers);
    for failpoint in [
        "checkpoint-manifest-written:2",
        "queue-published:2",
        "queue-publishing:2",
    ] {
        let output = create_topic(&brokers, "txn-out", 2);
        let dir = tempfile::tempdir().unwrap();
        let crashed: Vec<_> = start_with(
            &brokers,
            &input,
            dir.path(),
            (1, 2),
            &output,
            Some(failpoint),
        )
        .into_iter()
        .map(|c| wait(c, Duration::from_secs(120)))
        .collect();
        let (code, err) = &crashed[0];
        assert_ne!(*code, 0, "{failpoint}: process 0 did not crash: {err}");
        assert!(err.contains("failpoint"), "{failpoint}: {err}");
        let ended: Vec<_> = start_with(&brokers, &input, dir.path(), (3, 1), &output, None)
            .into_iter()
            .map(|c| wait(c, Duration::from_secs(120)))
            .collect();
        let (code, err) = &ended[0];
        assert_eq!(*code, 0, "{failpoint}: {err}");
        assert!(
            err.contains("restoring the checkpoint at"),
            "{failpoint}: {err}"
        );
        let got = counts_in(&brokers, &output, want.len());
        if failpoint.starts_with("queue-publishing") {
            let mut once = got.clone();
            once.dedup();
            assert!(once == want, "{failpoint}: a count is missing or wrong");
        } else {
            assert_eq!(got.len(), want.len(), "{failpoint}");
            assert!(got == want, "{failpoint}: the counts in the topic differ");
        }
        // The restart after `queue-published` proves the marker: without
        // it the restored checkpoint's counts would be in the topic twice.
        let marker = marker(&brokers, &output, "kafka-to-kafka", stage);
        assert!(
            marker.is_some(),
            "{failpoint}: no checkpoint marker in the sink's group"
        );
    }
}

/// Values that do not decode, with the dead-letter policy, go to a
/// dead-letter topic naming their topic, partition and offset, while the
/// rest is counted as without them, on 2 workers.
#[test]
fn bad_records_go_to_a_dead_letter_topic() {
    use weir::sinks::KafkaSink;
    use weir::sources::{DeadLetter, Origin};
    let Some(brokers) = brokers() else { return };
    let topic = create_topic(&brokers, "letters-in", 2);
    let letters = create_topic(&brokers, "letters-out", 1);
    let clicks = produce(&brokers, &topic, 2, 5_000, 9);
    let bad: Vec<(i32, Vec<u8>)> = (0..20u8)
        .map(|i| match i % 3 {
            0 => (i32::from(i % 2), vec![0xff, i]),
            _ => (i32::from(i % 2), format!("not json {i}").into_bytes()),
        })
        .collect();
    let producer = producer(&brokers);
    for (partition, value) in &bad {
        let record = BaseRecord::<(), _>::to(&topic)
            .payload(value)
            .partition(*partition);
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(30)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.jsonl");
    let p = Pipeline::new("kafka-letters");
    let source = p.source(Kafka::new(&brokers, &topic).json::<Click>().bounded());
    source
        .dead_letters()
        .sink(KafkaSink::new(&brokers, &letters));
    let summary = counts_of(source)
        .sink(JsonLinesFile::to(&out))
        .run(Cluster::threads(2).quiet(true))
        .unwrap();
    assert!(
        sorted_lines(&out) == reference(&clicks),
        "the counts differ"
    );
    assert_eq!(summary.dead_letters[0].1, bad.len() as u64);

    let mut got: Vec<(i32, Vec<u8>)> = read_topic(&brokers, &letters, 1, bad.len())
        .into_iter()
        .map(|(_, _, value)| {
            let letter: DeadLetter = serde_json::from_slice(&value).unwrap();
            assert!(letter.reason.contains("bad JSON"), "{letter:?}");
            match letter.origin {
                Origin::Topic {
                    topic: t,
                    partition,
                    offset,
                } => {
                    assert_eq!(t, topic);
                    assert_eq!(letter.partition, partition as usize);
                    assert!(offset >= 0);
                    (partition, letter.raw)
                }
                other => panic!("a topic's dead letter at {other:?}"),
            }
        })
        .collect();
    got.sort();
    let mut want = bad;
    want.sort();
    assert_eq!(got, want);
}

/// With metrics served, each partition's consumer lag (high watermark minus
/// the next offset) is a gauge: well above 0 while a slow job is behind the
/// topic, 0 once it has read it all.
#[test]
fn the_consumer_lag_shows_while_a_slow_job_is_behind() {
    let Some(brokers) = brokers() else { return };
    let topic = create_topic(&brokers, "lag", 2);
    produce(&brokers, &topic, 2, 3_000, 11);
    let addr = queues::free_addr();
    let cluster = Cluster::threads(2).quiet(true).with_metrics(&addr);
    let stop = cluster.stop_handle();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let w = std::sync::Arc::clone(&written);
    let p = Pipeline::new("lagging");
    p.source(Kafka::new(&brokers, &topic).json::<Click>())
        .sink(ForEach::new(move |_: &KafkaRecord<Click>| {
            w.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            std::thread::sleep(Duration::from_millis(1));
        }));
    let job = std::thread::spawn(move || p.run(cluster));
    let start = std::time::Instant::now();
    let mut most = 0;
    loop {
        let done = written.load(std::sync::atomic::Ordering::Relaxed);
        let lag = queues::scraped(&addr, "weir_kafka_consumer_lag_records");
        if let Some(lag) = lag {
            most = most.max(lag);
            if done == 3_000 && lag == 0 {
                break;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "lag {lag:?}, {done} written, most {most}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        most >= 500,
        "the lag never showed the job behind: at most {most}"
    );
    stop.request();
    let _ = job.join().unwrap();
}

/// A spec's Kafka `security` table: fields that do not belong to the
/// protocol, missing ones, an unset password variable and a missing CA file
/// are errors naming the field; with SASL settings against a broker that
/// does not speak SASL (tansu here), `weir explain` and the failing `weir
/// run` never show the password, whether it comes from the environment or
/// from a file.
#[cfg(feature = "cli")]
#[test]
fn kafka_security_settings_are_checked_and_the_password_never_shows() {
    const PASSWORD: &str = "pw-7f3a9c-not-for-logs";
    let dir = tempfile::tempdir().unwrap();
    let brokers = brokers().unwrap_or_else(|| "127.0.0.1:1".to_string());
    let spec = |security: &str, sink: &str| {
        format!(
            r#"
name = "secure"
[source]
type = "kafka"
brokers = "{brokers}"
topic = "secure-in"
format = "json"
bounded = true
security = {{ {security} }}
event_time = {{ field = "ts", max_out_of_orderness_ms = 300 }}
[window]
key = "user"
type = "tumbling"
size_ms = 1000
[aggregate]
n = "count(*)"
[sink]
{sink}
"#
        )
    };
    let jsonl = "type = \"jsonl\"\npath = \"out.jsonl\"";
    let weir = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_weir"))
            .args(args)
            .current_dir(dir.path())
            .env("WEIR_TEST_KAFKA_PASSWORD", PASSWORD)
            .env_remove("WEIR_TEST_UNSET_PASSWORD")
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let sasl = r#"protocol = "sasl_plaintext", mechanism = "SCRAM-SHA-256", username = "weir""#;
    let cases = [
        (
            r#"protocol = "ssl", username = "weir""#.to_string(),
            "source.security.username",
        ),
        (sasl.to_string(), "source.security.password_env"),
        (
            format!(r#"{sasl}, password_env = "WEIR_TEST_UNSET_PASSWORD""#),
            "WEIR_TEST_UNSET_PASSWORD",
        ),
        (
            r#"protocol = "sasl_ssl", ca_file = "no-such-ca.pem""#.to_string(),
            "source.security.ca_file",
        ),
        (
            r#"protocol = "plaintext", ca_file = "ca.pem""#.to_string(),
            "source.security.ca_file",
        ),
        (
            r#"protocol = "sasl_ssl", mechanism = "GSSAPI""#.to_string(),
            "mechanism",
        ),
    ];
    for (security, names) in cases {
        std::fs::write(dir.path().join("bad.toml"), spec(&security, jsonl)).unwrap();
        let (ok, text) = weir(&["explain", "bad.toml"]);
        assert!(!ok, "{security}: accepted");
        assert!(text.contains(names), "{security}: {text}");
    }
    let with_security_on_a_file = spec(
        "protocol = \"plaintext\"",
        &format!("{jsonl}\nsecurity = {{ protocol = \"ssl\" }}"),
    );
    std::fs::write(dir.path().join("bad.toml"), with_security_on_a_file).unwrap();
    let (ok, text) = weir(&["explain", "bad.toml"]);
    assert!(!ok && text.contains("sink.security"), "{text}");

    std::fs::write(dir.path().join("password"), format!("{PASSWORD}\n")).unwrap();
    let to_topic = format!(
        "type = \"kafka\"\nbrokers = \"{brokers}\"\ntopic = \"secure-out\"\nsecurity = {{ {sasl}, password_file = \"password\" }}"
    );
    for (name, security) in [
        (
            "env",
            format!(r#"{sasl}, password_env = "WEIR_TEST_KAFKA_PASSWORD""#),
        ),
        ("file", format!(r#"{sasl}, password_file = "password""#)),
    ] {
        let file = format!("{name}.toml");
        std::fs::write(dir.path().join(&file), spec(&security, &to_topic)).unwrap();
        let (ok, text) = weir(&["explain", &file]);
        assert!(ok, "{name}: {text}");
        assert!(
            !text.contains(PASSWORD),
            "{name}: explain shows the password: {text}"
        );
        let started = std::time::Instant::now();
        let (ok, text) = weir(&["run", &file, "-w", "2"]);
        assert!(!ok, "{name}: ran without SASL on the broker: {text}");
        assert!(text.contains("secure-in"), "{name}: {text}");
        assert!(
            !text.contains(PASSWORD),
            "{name}: the run shows the password: {text}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "{name}: took {:?}",
            started.elapsed()
        );
    }
}
