//! The documentation generated from the option table is current, and the table's C setters
//! are the header's.

#[path = "../examples/options_doc.rs"]
mod options_doc;

use tether_core::options;

#[test]
fn generated_option_docs_are_current() {
    let stale = options_doc::stale();
    assert!(
        stale.is_empty(),
        "generated from core/src/options.rs but stale: {stale:?}; run `{}`",
        options_doc::COMMAND
    );
}

#[test]
fn every_c_setter_is_in_the_header_and_every_header_setter_in_the_table() {
    let header = std::fs::read_to_string(options_doc::root().join("include/tether.h"))
        .expect("include/tether.h");
    for spec in options::all() {
        assert!(
            header.contains(&format!("tether_status {}(", spec.c_setter)),
            "{}: {} is not in include/tether.h",
            spec.name,
            spec.c_setter
        );
    }
    // C's own setters: the URL (checked at once), the dispatch mode (the C layer's) and the
    // credentials provider (a callback, not a value).
    let own = [
        "tether_config_set_url",
        "tether_config_set_dispatch",
        "tether_config_set_credentials_provider",
    ];
    let mut seen = 0;
    for line in header.lines() {
        let Some((_, rest)) = line.split_once("tether_status tether_config_") else {
            continue;
        };
        let name = format!(
            "tether_config_{}",
            rest.split('(').next().unwrap_or_default()
        );
        let is_setter =
            name.starts_with("tether_config_set_") || name.starts_with("tether_config_add_");
        assert!(
            !is_setter
                || own.contains(&name.as_str())
                || options::all().iter().any(|o| o.c_setter == name),
            "{name} is in the header but sets no option of the table (core/src/options.rs)"
        );
        seen += usize::from(is_setter);
    }
    assert!(seen >= 30, "only {seen} setters found in the header");
}

#[test]
fn a_default_config_reads_back_every_option() {
    let config = tether_core::Config::builder("ws://127.0.0.1:1/")
        .build()
        .expect("defaults");
    for spec in options::all() {
        assert!(config.get(spec.name).is_some(), "{}", spec.name);
    }
    assert_eq!(
        config.get("close_timeout"),
        Some(tether_core::OptionValue::Duration(
            tether_core::defaults::CLOSE_TIMEOUT
        ))
    );
}

/// The header's doc comment of `setter` (the `/** ... */` block right above it).
fn setter_doc<'h>(header: &'h str, setter: &str) -> &'h str {
    let Some(at) = header.find(&format!("tether_status {setter}(")) else {
        return "";
    };
    let before = &header[..at];
    before.rfind("/**").map_or("", |start| &before[start..])
}

#[test]
fn the_c_setters_docs_state_the_tables_duration_defaults() {
    let header = std::fs::read_to_string(options_doc::root().join("include/tether.h"))
        .expect("include/tether.h");
    let config = tether_core::Config::builder("ws://127.0.0.1:1/")
        .build()
        .expect("defaults");
    for spec in options::all() {
        // overflow_timeout has no C default: TETHER_OVERFLOW_WAIT takes it as an argument.
        if spec.kind != tether_core::OptionKind::Duration || spec.name == "overflow_timeout" {
            continue;
        }
        let Some(tether_core::OptionValue::Duration(d)) = config.get(spec.name) else {
            continue;
        };
        let default = format!("{} ms", d.as_millis());
        let doc = setter_doc(&header, spec.c_setter);
        assert!(
            doc.contains(&default),
            "{}: the doc of {} does not state the default {default}: {doc}",
            spec.name,
            spec.c_setter
        );
    }
}
