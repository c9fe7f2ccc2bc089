//! A job across two hosts with their own addresses: two network namespaces
//! joined by a veth pair, one `weir run` process in each, a host file with
//! their addresses; the results equal those of one process. Where the test
//! cannot make namespaces (not root, no `ip`), it says so and is skipped;
//! under CI without `ip` it fails.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

// Only `wait` of the shared helpers is used here.
#[allow(dead_code)]
mod processes;
use processes::wait;

/// Two network namespaces joined by a veth pair, deleted on drop.
struct Hosts {
    names: [String; 2],
    addresses: [String; 2],
}

impl Hosts {
    /// Makes the pair, or says why it cannot.
    fn make() -> Result<Hosts, String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let id = std::process::id() % 10_000;
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let names = [format!("weir{id}a{n}"), format!("weir{id}b{n}")];
        let links = [format!("wv{id}a{n}"), format!("wv{id}b{n}")];
        // A /24 of its own per test process and pair.
        let net = format!("10.{}.{}", 100 + id % 100, (id / 100 + n * 7) % 250);
        let addresses = [format!("{net}.1"), format!("{net}.2")];
        let hosts = Hosts {
            names: names.clone(),
            addresses: addresses.clone(),
        };
        let ip = |args: &[&str]| -> Result<(), String> {
            let out = Command::new("ip")
                .args(args)
                .output()
                .map_err(|e| format!("cannot run `ip`: {e}"))?;
            match out.status.success() {
                true => Ok(()),
                false => Err(format!(
                    "`ip {}` failed: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
            }
        };
        for name in &names {
            ip(&["netns", "add", name])?;
        }
        ip(&[
            "link", "add", &links[0], "type", "veth", "peer", "name", &links[1],
        ])?;
        for k in 0..2 {
            ip(&["link", "set", &links[k], "netns", &names[k]])?;
            let cidr = format!("{}/24", addresses[k]);
            ip(&["-n", &names[k], "addr", "add", &cidr, "dev", &links[k]])?;
            ip(&["-n", &names[k], "link", "set", &links[k], "up"])?;
            ip(&["-n", &names[k], "link", "set", "lo", "up"])?;
        }
        Ok(hosts)
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

const SPEC: &str = r#"
name = "two-hosts"
[source]
type = "csv"
path = "events.csv"
event_time = { field = "ts", max_out_of_orderness_ms = 400 }
[window]
key = "user"
type = "sliding"
size_ms = 2000
slide_ms = 500
[aggregate]
n = "count(*)"
total = "sum(amount)"
[sink]
type = "csv"
path = "OUT"
"#;

fn sorted_rows(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.sort();
    lines
}

#[test]
fn a_job_across_two_hosts_equals_one_process() {
    let hosts = match Hosts::make() {
        Ok(hosts) => hosts,
        Err(why) => {
            let no_ip = Command::new("ip").arg("-V").output().is_err();
            if no_ip && std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("CI=true but `ip` is missing: .ci/run must install iproute2");
            }
            eprintln!("SKIPPED: cannot make two network namespaces here ({why})");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("ts,user,amount\n");
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    let mut t = 1_700_000_000_000u64;
    for _ in 0..200_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        t += x % 3;
        writeln!(csv, "{},u{},{}", t - x % 300, x % 100, x % 50).unwrap();
    }
    std::fs::write(dir.path().join("events.csv"), csv).unwrap();
    std::fs::write(dir.path().join("one.toml"), SPEC.replace("OUT", "one.csv")).unwrap();
    std::fs::write(dir.path().join("two.toml"), SPEC.replace("OUT", "two.csv")).unwrap();
    let port = 20_000 + std::process::id() % 20_000;
    let hostfile = format!(
        "{}:{port}\n{}:{port}\n",
        hosts.addresses[0], hosts.addresses[1]
    );
    std::fs::write(dir.path().join("hosts.txt"), hostfile).unwrap();

    let one = Command::new(env!("CARGO_BIN_EXE_weir"))
        .args(["run", "one.toml", "-q", "-w", "2"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        one.status.success(),
        "{}",
        String::from_utf8_lossy(&one.stderr)
    );

    let children: Vec<_> = (0..2)
        .map(|p| {
            Command::new("ip")
                .args(["netns", "exec", &hosts.names[p], env!("CARGO_BIN_EXE_weir")])
                .args([
                    "run",
                    "two.toml",
                    "-q",
                    "-w",
                    "2",
                    "-n",
                    "2",
                    "-H",
                    "hosts.txt",
                ])
                .args(["-p", &p.to_string()])
                .current_dir(dir.path())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for (p, child) in children.into_iter().enumerate() {
        let (code, err) = wait(child, Duration::from_secs(120));
        assert_eq!(code, 0, "process {p} on {}: {err}", hosts.addresses[p]);
    }
    let want = sorted_rows(&dir.path().join("one.csv"));
    assert!(want.len() > 1000);
    assert!(
        sorted_rows(&dir.path().join("two.csv")) == want,
        "two hosts differ from one process"
    );
}
