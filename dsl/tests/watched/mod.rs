//! What the metrics and dashboard tests share: a `weir run` job started
//! with `--metrics 127.0.0.1:0` and the address it says it serves at, and
//! plain HTTP requests to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};

/// A job reading CSV rows `ts,user` on standard input, counting them per
/// user in 1 s tumbling windows, into `out.jsonl`.
pub const SPEC: &str = r#"
name = "watched"

[source]
type = "stdin"
format = "csv"
event_time = { field = "ts", max_out_of_orderness_ms = 1000 }

[window]
key = ["user"]
type = "tumbling"
size_ms = 1000

[aggregate]
n = "count(*)"

[sink]
type = "jsonl"
path = "out.jsonl"
"#;

/// The event time of row 0.
pub const T0: u64 = 1_700_000_000_000;

/// Rows `from..to` of [`SPEC`]'s input: ten milliseconds of event time
/// apart, five users.
pub fn rows(from: u64, to: u64) -> String {
    (from..to)
        .map(|i| format!("{},u{}\n", T0 + i * 10, i % 5))
        .collect()
}

/// A directory holding [`SPEC`] as `spec.toml`.
pub fn spec_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spec.toml"), SPEC).unwrap();
    dir
}

/// A running `weir run` job whose metrics are served.
pub struct Watched {
    /// The process (its stdin piped if asked for).
    pub job: Child,
    /// Where its metrics and dashboard are served.
    pub addr: SocketAddr,
    /// The rest of its stderr, after the line giving the address.
    pub stderr: BufReader<ChildStderr>,
}

/// Starts `weir run spec.toml ARGS --metrics 127.0.0.1:0` in `dir`, stdout
/// discarded, and reads the address from the first line of its stderr.
pub fn start(dir: &Path, args: &[&str], stdin: Stdio) -> Watched {
    let mut job = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "spec.toml"])
        .args(args)
        .args(["--metrics", "127.0.0.1:0"])
        .current_dir(dir)
        .stdin(stdin)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(job.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("weir: metrics at http://")
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .unwrap_or_else(|| panic!("no address: {line}"))
        .parse()
        .unwrap();
    Watched { job, addr, stderr }
}

/// `METHOD path` at `addr`: the status code, the head and the body.
pub fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
    let mut http = TcpStream::connect(addr).unwrap();
    write!(
        http,
        "{method} {path} HTTP/1.1\r\nHost: weir\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut reply = String::new();
    http.read_to_string(&mut reply).unwrap();
    let status = reply
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    (status, head.to_string(), body.to_string())
}
