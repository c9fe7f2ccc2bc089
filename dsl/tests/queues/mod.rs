//! What the broker tests (Kafka, AMQP) share: the broker from the
//! environment, the test clicks, and the reference counts of the job they
//! run over them.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The value of the environment variable `var` naming a broker, or `None`
/// (with a message saying so) to skip; under CI (`CI=true`) a missing
/// broker is a failure: `.ci/run` must start `what`.
pub fn broker(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CI=true but {var} is not set: .ci/run must start {what}")
        }
        _ => {
            eprintln!("SKIPPED: no {what} (set {var}, as .ci/run does)");
            None
        }
    }
}

/// A click of the broker tests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Click {
    pub user: u32,
    pub ts: u64,
}

/// `n` out-of-order clicks of 50 users, at most 300 ms behind, from `seed`.
pub fn clicks(n: u64, seed: u64) -> Vec<Click> {
    let mut x = seed | 1;
    let mut t = 1_700_000_000_000u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t += x % 3;
            Click {
                user: (x % 50) as u32,
                ts: t - (x >> 8) % 300,
            }
        })
        .collect()
}

/// The counts per user and 1 s window the jobs must give, as sorted JSON
/// lines `[user, window start, count]`. Records late by the jobs' 300 ms
/// watermark never occur.
pub fn reference(clicks: &[Click]) -> Vec<String> {
    let mut counts: BTreeMap<(u32, u64), u64> = BTreeMap::new();
    for c in clicks {
        *counts.entry((c.user, c.ts / 1000 * 1000)).or_default() += 1;
    }
    let mut lines: Vec<String> = counts
        .into_iter()
        .map(|((user, start), n)| serde_json::to_string(&(user, start, n)).unwrap())
        .collect();
    lines.sort();
    lines
}

/// The lines of `path`, sorted (none if it does not exist).
pub fn sorted_lines(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

/// The gauges `metric` of the metrics endpoint at `addr`, summed over their
/// labels: `None` until some show.
pub fn scraped(addr: &str, metric: &str) -> Option<u64> {
    let reply = get(addr, "/metrics")?;
    let values: Vec<u64> = reply
        .lines()
        .filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with('{'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The whole reply to `GET path` at `addr`, if it answers.
pub fn get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut http = std::net::TcpStream::connect(addr).ok()?;
    write!(
        http,
        "GET {path} HTTP/1.1\r\nHost: weir\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    http.read_to_string(&mut reply).ok()?;
    Some(reply)
}

/// A free loopback address for a metrics endpoint.
pub fn free_addr() -> String {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    free.local_addr().unwrap().to_string()
}
