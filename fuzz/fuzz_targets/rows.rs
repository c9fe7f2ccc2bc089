//! The spec's row parsers on arbitrary input: the first byte picks CSV (a
//! header is prepended) or JSON lines, the rest is the file. A run with the
//! dead-letter policy succeeds or returns an error; a panic of a worker,
//! which the engine turns into an error, is turned back into a panic for
//! the fuzzer to see.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::prelude::*;
use weir::spec::Spec;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let kind = if pick % 2 == 0 { "csv" } else { "jsonl" };
    let dir = tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().unwrap());
    let input = dir.path().join(format!("rows.{kind}"));
    let mut bytes = Vec::new();
    if kind == "csv" {
        bytes.extend_from_slice(b"ts,user,region,amount\n");
    }
    bytes.extend_from_slice(rest);
    std::fs::write(&input, bytes).unwrap();
    let text = format!(
        r#"
name = "rows"
[source]
type = "{kind}"
path = "{input}"
event_time = {{ field = "ts", max_out_of_orderness_ms = 5000 }}
on_error = "dead_letter"
[window]
key = ["user", "region"]
type = "sliding"
size_ms = 2000
slide_ms = 1000
[aggregate]
n = "count(*)"
total = "sum(amount)"
low = "min(amount)"
high = "max(amount)"
mean = "avg(amount)"
[sink]
type = "jsonl"
path = "{out}"
[dead_letter]
type = "jsonl"
path = "{bad}"
"#,
        input = input.display(),
        out = dir.path().join("out.jsonl").display(),
        bad = dir.path().join("bad.jsonl").display(),
    );
    let Ok(pipeline) = Spec::parse(&text).unwrap().pipeline() else {
        return;
    };
    if let Err(e) = pipeline.run(Cluster::threads(1).quiet(true)) {
        let text = e.to_string();
        assert!(!text.contains("panicked"), "{text}");
    }
});
