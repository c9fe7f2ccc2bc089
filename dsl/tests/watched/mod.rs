//! What the metrics and dashboard tests share: a `weir run` job started
//! with `--metrics 127.0.0.1:0` and the address it says it serves at, and
//! plain HTTP requests to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, ChildStderr, Command, Stdio};

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
