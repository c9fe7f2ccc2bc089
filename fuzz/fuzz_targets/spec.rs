//! The spec parser on arbitrary text: a spec, or an error naming a field;
//! building the pipeline of a spec that parses reads (missing) files and
//! returns an error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir::spec::Spec;

fuzz_target!(|text: &str| {
    if let Ok(spec) = Spec::parse(text) {
        let _ = spec.pipeline();
    }
});
