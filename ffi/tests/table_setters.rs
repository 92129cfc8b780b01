//! The `table_setters!` rows of `ffi/src/config.rs` and core's option table agree: every
//! option a row sets names that row as its C setter, and every option of the table is set by
//! its C setter, a row or one of the few hand-written setters. (That the header declares the
//! rows as ffi/examples/c_setters.rs renders them is `ffi/gen-header.sh --check`, run by
//! tests/c/run.sh; that it declares every C setter of the table is core/tests/options_doc.rs.)

use tether::TABLE_SETTERS;
use tether_core::options;

/// Setters written out in ffi/src/config.rs, because C keeps a builder method's semantics
/// there (a CA file or PEM wins over named roots; the policy and its wait timeout together).
const HAND_WRITTEN: [&str; 3] = [
    "tether_config_set_tls_roots",
    "tether_config_set_tls_ca_pem",
    "tether_config_set_overflow_policy",
];

#[test]
fn every_row_sets_options_that_name_it() {
    for row in TABLE_SETTERS {
        assert!(!row.options.is_empty(), "{}", row.name);
        for id in row.options {
            let spec = options::find(id).unwrap_or_else(|| panic!("{}: no option {id}", row.name));
            assert_eq!(spec.c_setter, row.name, "option {id}");
        }
        let twice = TABLE_SETTERS.iter().filter(|r| r.name == row.name).count();
        assert_eq!(twice, 1, "{} has two rows", row.name);
    }
}

#[test]
fn every_option_is_set_by_its_c_setter() {
    for spec in options::all() {
        match TABLE_SETTERS.iter().find(|r| r.name == spec.c_setter) {
            Some(row) => assert!(
                row.options.contains(&spec.name),
                "{} does not set {}",
                row.name,
                spec.name
            ),
            None => assert!(
                HAND_WRITTEN.contains(&spec.c_setter),
                "{}: its setter {} is neither a table_setters! row nor hand-written",
                spec.name,
                spec.c_setter
            ),
        }
    }
    assert!(
        TABLE_SETTERS.len() >= 25,
        "only {} rows",
        TABLE_SETTERS.len()
    );
}
