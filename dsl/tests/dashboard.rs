//! The dashboard in a real browser: Debian's headless Chromium (installed
//! by `.ci/run`) loads the page of a running `weir run` job twice; the plan's
//! stage names and the queueing figures are on the page, the number of
//! records read grows between the loads, every request the page made went
//! to the job's own address (Chromium's network log), and a screenshot is
//! saved as `target/dashboard.png`. Without Chromium the test says it was
//! skipped; under CI (`CI=true`) it fails.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod watched;

const CHROMIUM: &str = "/usr/bin/chromium";

const STAGES: [&str; 4] = [
    "#0 source stdin(csv)",
    "#2 keyed",
    "#3 window tumbling(1000 ms)",
    "#5 sink jsonl(out.jsonl)",
];

fn chromium_installed() -> bool {
    if Path::new(CHROMIUM).exists() {
        return true;
    }
    assert!(
        !std::env::var("CI").is_ok_and(|v| v == "true"),
        "CI=true but {CHROMIUM} is missing: .ci/run must install chromium"
    );
    eprintln!("SKIPPED: no {CHROMIUM} (apt-get install chromium)");
    false
}

/// Headless Chromium on `url` with `args`, its profile in `profile`; it
/// lets the page run 2.5 s of virtual time (fetches included) first.
fn chromium(profile: &Path, url: &str, args: &[&str]) -> Output {
    let out = Command::new("timeout")
        .arg("120")
        .arg(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--virtual-time-budget=2500",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The number after `label` in the page's counters (`<dt>label</dt><dd>N</dd>`).
fn counter(dom: &str, label: &str) -> u64 {
    let at = format!("<dt>{label}</dt><dd>");
    let rest = dom
        .split_once(&at)
        .unwrap_or_else(|| panic!("no {label} on the page: {dom}"))
        .1;
    rest.chars()
        .take_while(|c| *c != '<')
        .filter(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("{label}: {rest}"))
}

/// `GET path` at `addr`: the response's head and body.
fn get(addr: SocketAddr, path: &str) -> (String, String) {
    let (_, head, body) = watched::request(addr, "GET", path);
    (head, body)
}

#[test]
fn the_dashboard_shows_the_plan_and_live_figures_in_a_browser() {
    if !chromium_installed() {
        return;
    }
    let dir = watched::spec_dir();
    let watched::Watched {
        mut job,
        addr,
        stderr: _stderr,
    } = watched::start(dir.path(), &["-w", "2"], Stdio::piped());
    let origin = format!("http://{addr}");
    // Rows at 10 000 a second until the test is done with the page.
    let mut input = job.stdin.take().unwrap();
    let feeding = std::thread::spawn(move || {
        input.write_all(b"ts,user\n").unwrap();
        let start = Instant::now();
        for tick in 0..400u64 {
            let rows = watched::rows(tick * 500, (tick + 1) * 500);
            if input.write_all(rows.as_bytes()).is_err() {
                return;
            }
            let next = start + Duration::from_millis(50 * (tick + 1));
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
    });
    std::thread::sleep(Duration::from_secs(3));
    let profile = tempfile::tempdir().unwrap();
    let netlog = profile.path().join("netlog.json");
    let first = chromium(
        profile.path(),
        &format!("{origin}/"),
        &[&format!("--log-net-log={}", netlog.display()), "--dump-dom"],
    );
    let first = String::from_utf8_lossy(&first.stdout).into_owned();
    for stage in STAGES {
        assert!(
            first.contains(&format!("data-stage=\"{stage}\"")),
            "{stage} not drawn: {first}"
        );
        assert!(
            first.contains(&format!("<td>{stage}</td>")),
            "{stage} not in the table"
        );
    }
    assert!(first.contains("λ ") && first.contains("ρ ") && first.contains("class=\"exchange\""));
    let read_first = counter(&first, "records read");
    std::thread::sleep(Duration::from_secs(2));
    let second = chromium(profile.path(), &format!("{origin}/"), &["--dump-dom"]);
    let second = String::from_utf8_lossy(&second.stdout).into_owned();
    let read_second = counter(&second, "records read");
    assert!(
        read_first > 0 && read_second > read_first,
        "records read: {read_first}, then {read_second}"
    );
    // Every request the page made went to the job's own address, and it
    // did fetch the state.
    let log: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&netlog).unwrap()).unwrap();
    let mut from_page = Vec::new();
    for event in log["events"].as_array().unwrap() {
        let params = &event["params"];
        if params["initiator"].as_str() == Some(&origin)
            && let Some(url) = params["url"].as_str()
        {
            from_page.push(url.to_string());
        }
    }
    assert!(
        from_page.iter().any(|u| u.ends_with("/api/state")),
        "{from_page:?}"
    );
    for url in &from_page {
        assert!(
            url.starts_with(&format!("{origin}/")),
            "the page requested {url}"
        );
    }
    // What keeps it so: the policy on every response, no other address in
    // the page, its script or its style.
    for path in ["/", "/dashboard.js", "/dashboard.css", "/api/state"] {
        let (head, body) = get(addr, path);
        assert!(
            head.contains("Content-Security-Policy: default-src 'self'"),
            "{path}: {head}"
        );
        let body = body.replace("http://www.w3.org/2000/svg", "");
        assert!(
            !body.contains("http://") && !body.contains("https://") && !body.contains("//cdn"),
            "{path}"
        );
    }
    // The screenshot, for the README.
    let shot = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../target/dashboard.png"
    ));
    chromium(
        profile.path(),
        &format!("{origin}/"),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1280,1250",
        ],
    );
    let png = std::fs::read(&shot).unwrap();
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    drop(feeding);
    job.kill().unwrap();
    job.wait().unwrap();
}
