//! Runs the example binaries (built by `cargo test` next to this test) the
//! way a user would, and checks their output on 1 and 2 workers.

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/<this test> -> target/<profile>/examples/<name>
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = dir.join(name);
    assert!(path.exists(), "{} not built", path.display());
    path
}

fn run(name: &str, args: &[&str]) -> String {
    let out = Command::new(example(name)).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{name} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn wordcount_prints_the_same_top_words_on_one_and_two_workers() {
    let one = run("wordcount", &["--lines", "3000", "--top", "5", "-q"]);
    let two = run(
        "wordcount",
        &["--lines", "3000", "--top", "5", "-q", "-w", "2"],
    );
    assert_eq!(one, two);
    let counts: Vec<u64> = one
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(counts.len(), 5);
    assert!(counts.windows(2).all(|w| w[0] >= w[1]), "{one}");
}

#[test]
fn wordcount_reads_text_files() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "The weir, the river.\n").unwrap();
    std::fs::write(dir.path().join("b.txt"), "the end\n").unwrap();
    let out = run(
        "wordcount",
        &[
            "--input",
            dir.path().to_str().unwrap(),
            "--top",
            "2",
            "-q",
            "-w",
            "2",
        ],
    );
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines, vec![vec!["3", "the"], vec!["1", "end"]]);
}

#[test]
fn clicks_writes_one_result_per_page() {
    let dir = tempfile::tempdir().unwrap();
    let mut results = Vec::new();
    for workers in ["1", "2"] {
        let path = dir.path().join(format!("pages-{workers}.jsonl"));
        run(
            "clicks",
            &[
                "--events",
                "20000",
                "--pages",
                "7",
                "-q",
                "-w",
                workers,
                "--output",
                path.to_str().unwrap(),
            ],
        );
        let mut lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        results.push(lines);
    }
    assert_eq!(results[0].len(), 7);
    assert_eq!(results[0], results[1]);
    let clicks: u64 = results[0]
        .iter()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["value"]["clicks"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert!(clicks > 19_000 && clicks <= 20_000, "{clicks}");
}

/// The Kafka examples against a real broker (`WEIR_KAFKA_BROKERS`, started
/// by `.ci/run`; without it the test says it was skipped, except under CI):
/// `kafka_produce` writes events to a new topic of 3 partitions, and
/// `kafka_windows --bounded` on 2 workers counts every one of them once.
#[test]
fn kafka_windows_counts_what_kafka_produce_wrote() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;

    let brokers = match std::env::var("WEIR_KAFKA_BROKERS") {
        Ok(b) if !b.is_empty() => b,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but WEIR_KAFKA_BROKERS is not set: .ci/run must start a Kafka broker")
        }
        _ => {
            eprintln!("SKIPPED: no Kafka broker (set WEIR_KAFKA_BROKERS=host:port)");
            return;
        }
    };
    let topic = format!("examples-{}", std::process::id());
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    let new = NewTopic::new(&topic, 3, TopicReplication::Fixed(1));
    for r in futures_executor::block_on(admin.create_topics([&new], &AdminOptions::new())).unwrap()
    {
        r.unwrap();
    }
    let events = "3000";
    let common = ["--brokers", &brokers, "--topic", &topic];
    run(
        "kafka_produce",
        &[
            &common[..],
            &["--events", events, "--rate", "0", "--one-per-batch"],
        ]
        .concat(),
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("counts.jsonl");
    let out_arg = out.display().to_string();
    run(
        "kafka_windows",
        &[
            &common[..],
            &["--bounded", "--output", &out_arg, "-w", "2", "-q"],
        ]
        .concat(),
    );
    let total: u64 = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["value"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 3000);
}

/// The RabbitMQ examples against a real broker (`WEIR_AMQP_URL`, started
/// by `.ci/run`; without it the test says it was skipped, except under CI),
/// the URL passed in the environment (`AMQP_URL`) as a user would keep a
/// password out of the command line: `amqp_produce` publishes events to a
/// new queue, and `amqp_windows --bounded` with 2 consumers on 2 workers
/// counts every one of them once, and its help does not show the URL.
#[test]
fn amqp_windows_counts_what_amqp_produce_published() {
    let url = match std::env::var("WEIR_AMQP_URL") {
        Ok(u) if !u.is_empty() => u,
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but WEIR_AMQP_URL is not set: .ci/run must start a RabbitMQ broker")
        }
        _ => {
            eprintln!("SKIPPED: no RabbitMQ broker (set WEIR_AMQP_URL=amqp://...)");
            return;
        }
    };
    let queue = format!("examples-{}", std::process::id());
    let with_url = |name: &str, args: &[&str]| {
        let out = Command::new(example(name))
            .args(args)
            .env("AMQP_URL", &url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    with_url(
        "amqp_produce",
        &["--queue", &queue, "--events", "3000", "--rate", "0"],
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("counts.jsonl");
    let out_arg = out.display().to_string();
    with_url(
        "amqp_windows",
        &[
            "--queue",
            &queue,
            "--consumers",
            "2",
            "--bounded",
            "--output",
            &out_arg,
            "-w",
            "2",
            "-q",
        ],
    );
    let total: u64 = std::fs::read_to_string(&out)
        .unwrap()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["value"]
                .as_u64()
                .unwrap()
        })
        .sum();
    assert_eq!(total, 3000);
    let help = with_url("amqp_windows", &["--help"]);
    assert!(help.contains("AMQP_URL"), "{help}");
    assert!(!help.contains(&url), "the help shows the URL: {help}");
}
