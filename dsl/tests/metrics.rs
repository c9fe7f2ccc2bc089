//! The live metrics endpoint (`--metrics ADDR`): scraped while a `weir run`
//! job reads standard input, each scrape parsed by the Prometheus project's
//! own OpenMetrics parser (Debian's `python3-prometheus-client`, installed
//! by `.ci/run`); counters only grow, the watermark follows the input, and
//! the last scrape equals the run summary. Without the parser the test says
//! it was skipped; under CI (`CI=true`) it fails.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use watched::{T0, rows};

mod processes;
mod watched;

/// Debian's Python, which `python3-prometheus-client` installs for.
const PYTHON: &str = "/usr/bin/python3";

/// Parses OpenMetrics text with `prometheus_client`'s parser and prints
/// every sample as `[name, labels, value]` JSON.
const PARSE: &str = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
out = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        out.append([s.name, s.labels, s.value, family.type])
print(json.dumps(out))
"#;

/// Whether the reference parser is installed; under CI it must be.
fn parser_installed() -> bool {
    let found = Command::new(PYTHON)
        .args(["-c", "import prometheus_client.openmetrics.parser"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but {PYTHON} has no prometheus_client: .ci/run must install python3-prometheus-client"
        );
        eprintln!("SKIPPED: no OpenMetrics parser (apt-get install python3-prometheus-client)");
    }
    found
}

/// `(sample name, sorted labels)` → value, for one scrape.
type Samples = BTreeMap<(String, Vec<(String, String)>), (f64, String)>;

/// The status and body of `METHOD path` at `addr`.
fn get(addr: SocketAddr, method: &str, path: &str) -> (u16, String) {
    let (status, _, body) = watched::request(addr, method, path);
    (status, body)
}

/// Scrapes `/metrics` and parses it with the reference parser.
fn scrape(addr: SocketAddr) -> Samples {
    let (status, text) = get(addr, "GET", "/metrics");
    assert_eq!(status, 200, "{text}");
    let mut python = Command::new(PYTHON)
        .args(["-c", PARSE])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{PYTHON} (apt-get install python3-prometheus-client): {e}"));
    python
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the OpenMetrics parser rejected the scrape: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: Vec<(String, BTreeMap<String, String>, f64, String)> =
        serde_json::from_slice(&out.stdout).unwrap();
    parsed
        .into_iter()
        .map(|(name, labels, value, kind)| ((name, labels.into_iter().collect()), (value, kind)))
        .collect()
}

fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    labels.sort();
    samples.get(&(name.to_string(), labels)).map(|(v, _)| *v)
}

#[test]
fn the_endpoint_follows_a_running_job_and_ends_at_its_summary() {
    if !parser_installed() {
        return;
    }
    let dir = watched::spec_dir();
    let watched::Watched {
        mut job,
        addr,
        mut stderr,
    } = watched::start(dir.path(), &["-w", "2"], Stdio::piped());
    let mut input = job.stdin.take().unwrap();
    input.write_all(b"ts,user\n").unwrap();
    let source = [("source", "stdin(csv)")];
    let mut last = Samples::new();
    let mut scrapes = 0;
    // Scrapes until `until` holds of a scrape, checking every scrape.
    let mut watch = |until: &dyn Fn(&Samples) -> bool| {
        let start = Instant::now();
        loop {
            let now = scrape(addr);
            scrapes += 1;
            for ((name, labels), (v, kind)) in &now {
                if kind == "counter" {
                    let before = last
                        .get(&(name.clone(), labels.clone()))
                        .map_or(0.0, |p| p.0);
                    assert!(*v >= before, "{name} {labels:?} went from {before} to {v}");
                }
            }
            last = now;
            if until(&last) {
                return last.clone();
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "after 30 s: {last:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    for (from, to) in [(0, 3_000), (3_000, 10_000)] {
        input.write_all(rows(from, to).as_bytes()).unwrap();
        input.flush().unwrap();
        let wm = (T0 + (to - 1) * 10 - 1000) as f64 / 1000.0;
        let seen = watch(&|s| {
            value(s, "weir_source_records_total", &source) == Some(to as f64)
                && value(
                    s,
                    "weir_watermark_seconds",
                    &[("source", "stdin(csv)"), ("partition", "0")],
                )
                .is_some_and(|w| (w - wm).abs() < 1e-6)
        });
        // Event time is from 2023: the lag is the time since then.
        let lag = value(
            &seen,
            "weir_watermark_lag_seconds",
            &[("source", "stdin(csv)"), ("partition", "0")],
        )
        .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            (lag - (now - wm)).abs() < 5.0,
            "lag {lag}, expected about {}",
            now - wm
        );
        assert!(value(&seen, "process_resident_memory_bytes", &[]).unwrap() > 1e6);
        assert!(value(&seen, "process_cpu_seconds_total", &[]).unwrap() > 0.0);
        assert!(value(&seen, "weir_uptime_seconds", &[]).unwrap() > 0.0);
    }
    let before_end = last.clone();
    // Read-only: nothing but GET, and only /metrics.
    assert_eq!(get(addr, "POST", "/metrics").0, 405);
    assert_eq!(get(addr, "GET", "/secrets").0, 404);
    drop(input);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(job.wait().unwrap().success(), "{rest}");
    assert!(scrapes >= 2);
    // The summary says what the last scrape said: every record read.
    assert!(
        rest.contains("source stdin(csv): 10000 events read"),
        "{rest}"
    );
    assert_eq!(
        value(&before_end, "weir_source_records_total", &source),
        Some(10_000.0)
    );
    let written = std::fs::read_to_string(dir.path().join("out.jsonl"))
        .unwrap()
        .lines()
        .count();
    assert!(
        rest.contains(&format!(": {written} records written")),
        "{rest}"
    );
}

#[test]
fn a_metrics_address_in_use_is_an_error_naming_the_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let dir = watched::spec_dir();
    let out = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "spec.toml", "--metrics", &addr])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--metrics") && err.contains(&addr), "{err}");
}

/// The per-stage figures (from timely's event log) of a job fed at a steady
/// 20 000 rows/s: the source's arrival rate within 15 % of it, every stage
/// of the plan named, utilisation between 0 and 1, and the summary's
/// per-stage table.
#[test]
fn stage_rates_follow_a_paced_input() {
    if !parser_installed() {
        return;
    }
    let dir = watched::spec_dir();
    let watched::Watched {
        mut job,
        addr,
        mut stderr,
    } = watched::start(dir.path(), &["-w", "2"], Stdio::piped());
    let mut input = job.stdin.take().unwrap();
    input.write_all(b"ts,user\n").unwrap();
    // 1 000 rows every 50 ms for 7 s: 20 000 rows/s.
    let start = Instant::now();
    let mut sent = 0u64;
    for tick in 1..=140u32 {
        input
            .write_all(rows(sent, sent + 1_000).as_bytes())
            .unwrap();
        input.flush().unwrap();
        sent += 1_000;
        let next = start + Duration::from_millis(50) * tick;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    // The last 5 s were all at the steady rate.
    let samples = scrape(addr);
    let stage = |name: &str, of: &str| {
        samples
            .iter()
            .find(|((n, labels), _)| {
                n == name
                    && labels
                        .iter()
                        .any(|(k, v)| k == "stage" && v.starts_with(of))
            })
            .map(|(_, (v, _))| *v)
            .unwrap_or_else(|| panic!("no {name} of {of}: {samples:?}"))
    };
    let rate = stage("weir_stage_arrival_rate", "#0 source stdin(csv)");
    assert!(
        (rate - 20_000.0).abs() <= 3_000.0,
        "source λ {rate}, fed at 20 000 rows/s"
    );
    let window = stage("weir_stage_arrival_rate", "#3 window tumbling(1000 ms)");
    eprintln!("fed at 20 000 rows/s: source λ {rate:.0}, window λ {window:.0}");
    assert!((window - 20_000.0).abs() <= 3_000.0, "window λ {window}");
    for of in ["#0 source", "#3 window", "#5 sink"] {
        let rho = stage("weir_stage_utilization", of);
        assert!((0.0..=1.0).contains(&rho), "{of}: ρ {rho}");
        let mu = stage("weir_stage_service_rate", of);
        assert!(mu > 0.0, "{of}: μ {mu}");
        stage("weir_stage_backlog_records", of);
        stage("weir_stage_waiting_seconds", of);
    }
    // The window results reached the sink soon after the watermark passed
    // their window's end.
    let sink = [("sink", "jsonl(out.jsonl)")];
    let count = value(&samples, "weir_result_latency_seconds_count", &sink).unwrap();
    let sum = value(&samples, "weir_result_latency_seconds_sum", &sink).unwrap();
    assert!(count > 1_000.0, "{count} results timed");
    eprintln!(
        "result latency: mean {:.1} ms over {count} results",
        sum / count * 1000.0
    );
    assert!(sum / count < 2.0, "mean result latency {} s", sum / count);
    drop(input);
    let mut rest = String::new();
    stderr.read_to_string(&mut rest).unwrap();
    assert!(job.wait().unwrap().success(), "{rest}");
    // Every record went through the window stage: its records in, summed
    // over the workers, are the rows sent.
    assert!(
        rest.contains("ρ") && rest.contains("#3 window tumbling(1000 ms)"),
        "{rest}"
    );
    let window_in: f64 = samples
        .iter()
        .filter(|((n, labels), _)| {
            n == "weir_stage_records_in_total"
                && labels
                    .iter()
                    .any(|(k, v)| k == "stage" && v == "#3 window tumbling(1000 ms)")
        })
        .map(|(_, (v, _))| *v)
        .sum();
    assert!(
        window_in <= sent as f64 && window_in >= sent as f64 - 2_000.0,
        "{window_in} of {sent}"
    );
}

/// On two processes, process 0's dashboard state shows the whole cluster:
/// the other process reports its state through the dataflow once a
/// second, and the window stage's records in, summed over both processes,
/// are every row read (process 1 alone shows only its share).
#[test]
fn process_0_shows_the_whole_cluster() {
    let dir = watched::spec_dir();
    let hosts = processes::free_hostfile(dir.path(), 2);
    let hosts = hosts.to_str().unwrap();
    let start = |p: &str, stdin: Stdio| {
        watched::start(
            dir.path(),
            &["-w", "2", "-n", "2", "-p", p, "-H", hosts],
            stdin,
        )
    };
    let watched::Watched {
        job: mut zero,
        addr: addr0,
        stderr: err0,
    } = start("0", Stdio::piped());
    let watched::Watched {
        job: one,
        addr: addr1,
        stderr: err1,
    } = start("1", Stdio::null());
    let mut input = zero.stdin.take().unwrap();
    input.write_all(b"ts,user\n").unwrap();
    input.write_all(rows(0, 20_000).as_bytes()).unwrap();
    input.flush().unwrap();
    let window_in = |state: &serde_json::Value| {
        state["stages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "#3 window tumbling(1000 ms)")
            .and_then(|s| s["records_in"].as_f64())
            .unwrap()
    };
    let state = |addr| {
        serde_json::from_str::<serde_json::Value>(&get(addr, "GET", "/api/state").1).unwrap()
    };
    let started = Instant::now();
    let (whole, alone) = loop {
        let (whole, alone) = (state(addr0), state(addr1));
        if window_in(&whole) == 20_000.0 && whole["processes"].as_array().unwrap().len() == 2 {
            break (whole, alone);
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "after 30 s: {whole}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // Process 1 shows its own share only, and process 0 counts it in.
    let share = window_in(&alone);
    assert!(
        share > 0.0 && share < 20_000.0,
        "process 1's share: {share}"
    );
    assert_eq!(whole["counters"]["read"], 20_000);
    let marks = whole["watermarks"].as_array().unwrap();
    assert!(marks.iter().all(|m| m["process"].is_u64()), "{marks:?}");
    drop(input);
    for (child, stderr) in [(zero, err0), (one, err1)] {
        let mut child = child;
        child.stderr = Some(stderr.into_inner());
        let (code, err) = processes::wait(child, Duration::from_secs(60));
        assert_eq!(code, 0, "{err}");
    }
}
