//! Every function declared in `include/tether.h` says, in its doc comment, who owns what
//! ("Ownership:"), from which threads it may be called ("Threads:") and which status codes it
//! returns ("Errors:"). The header is generated from `ffi/src` (plus the inline helpers of
//! `ffi/cbindgen.toml`), so a new export without the three lines fails here, not in review.

use std::path::Path;

/// The three lines every function's comment carries, as they appear in the header.
const LABELS: [&str; 3] = [" * Ownership:", " * Threads:", " * Errors:"];

/// The name of the function a header line declares or defines, if it is one: a top-level
/// line (not a typedef, macro or comment) with `tether_<name>(`.
fn declared_function(line: &str) -> Option<&str> {
    if line.starts_with([' ', '\t', '#', '/', '*', '}']) || line.starts_with("typedef") {
        return None;
    }
    let open = line.find('(')?;
    let name = line[..open].rsplit([' ', '*']).next()?;
    name.starts_with("tether_").then_some(name)
}

#[test]
fn every_function_in_the_header_has_ownership_threads_and_errors_lines() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../include/tether.h");
    let header = std::fs::read_to_string(&path).expect("include/tether.h is readable");
    let mut doc: Vec<&str> = Vec::new(); // the doc comment right above the current line
    let mut in_doc = false;
    let mut functions = 0;
    let mut missing = Vec::new();
    for line in header.lines() {
        if in_doc {
            doc.push(line);
            in_doc = !line.contains("*/");
            continue;
        }
        if line.starts_with("/**") {
            doc = vec![line];
            in_doc = !line.contains("*/");
            continue;
        }
        if let Some(name) = declared_function(line) {
            functions += 1;
            let absent: Vec<&str> = LABELS
                .iter()
                .filter(|label| !doc.iter().any(|l| l.starts_with(*label)))
                .map(|label| label.trim_start_matches(" * "))
                .collect();
            if !absent.is_empty() {
                missing.push(format!("{name}: no {}", absent.join(", ")));
            }
        }
        // A comment applies to the declaration right below it only.
        doc.clear();
    }
    assert!(
        functions >= 50,
        "only {functions} functions found: is the parser broken?"
    );
    assert!(
        missing.is_empty(),
        "{} of {functions} functions in include/tether.h lack doc lines:\n{}",
        missing.len(),
        missing.join("\n")
    );
}
