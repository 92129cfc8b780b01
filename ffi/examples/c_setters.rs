//! Writes the C declarations of the option-table setters to stdout; `ffi/gen-header.sh`
//! appends them to `include/tether.h`.
//!
//! The setters are made by `table_setters!` in `ffi/src/config.rs` (one row each), which
//! cbindgen cannot expand; their rows are in `tether::TABLE_SETTERS`. Each declaration's
//! comment is the row's summary, then every option it sets with its meaning and default from
//! core's option table (the same text as the option table of docs/C_API.md), then the
//! Ownership / Threads / Errors lines, which follow from the argument types.

#[allow(dead_code)]
#[path = "../../core/examples/options_doc.rs"]
mod options_doc;

use options_doc::Binding;
use tether::{TableSetter, TABLE_SETTERS};
use tether_core::options;

const THREADS: &str = "configure a config from one thread at a time (not concurrently with \
    another call on the same config); it is copied by `tether_client_new`, so it may change or \
    be freed afterwards without affecting the clients made from it.";
const CHECKED: &str = "The value itself is checked when the config is built \
    (`tether_config_validate`, `tether_client_new`: `TETHER_ERR_INVALID_CONFIG`";

/// The C type of a row's argument type, as `stringify!` wrote it.
fn c_type(rust: &str) -> &'static str {
    match rust.replace(' ', "").as_str() {
        "u64" => "uint64_t",
        "u32" => "uint32_t",
        "usize" => "size_t",
        "bool" => "bool",
        "f64" => "double",
        "c_int" => "int",
        "*constc_char" => "const char *",
        "*constu8" => "const uint8_t *",
        other => panic!("table_setters!: no C type for `{other}`: add it to c_setters.rs"),
    }
}

/// The Ownership and Errors lines, which depend on the kind of arguments.
fn contract(s: &TableSetter) -> (String, String) {
    let has = |t: &str| s.args.iter().any(|(_, ty)| c_type(ty) == t);
    let handle = "`TETHER_ERR_INVALID_HANDLE` (a freed config)";
    if has("const char *") {
        (
            "borrows `config`; the string arguments are borrowed for the call only (copied)."
                .into(),
            format!(
                "`TETHER_ERR_NULL_PARAMETER` (`config` or a string NULL), {handle}, \
                 `TETHER_ERR_INVALID_ARGUMENT` (a string not UTF-8), the reason in \
                 `tether_config_last_error`. {CHECKED})."
            ),
        )
    } else if has("const uint8_t *") {
        (
            "borrows `config`; the `len` bytes at the pointer are borrowed for the call only \
             (copied)."
                .into(),
            format!(
                "`TETHER_ERR_NULL_PARAMETER` (`config` NULL, or the pointer NULL with a non-zero \
                 `len`), {handle}. {CHECKED})."
            ),
        )
    } else if has("int") {
        (
            "borrows `config`; takes nothing over (plain values are recorded in the config)."
                .into(),
            format!(
                "`TETHER_ERR_NULL_PARAMETER` (`config` NULL), {handle}, \
                 `TETHER_ERR_INVALID_ARGUMENT` (not a value of the enum; the previous value is \
                 kept), the reason in `tether_config_last_error`. {CHECKED} naming the option)."
            ),
        )
    } else {
        (
            "borrows `config`; takes nothing over (plain values are recorded in the config)."
                .into(),
            format!(
                "`TETHER_ERR_NULL_PARAMETER` (`config` NULL), {handle}. {CHECKED} naming the \
                 option, the reason in `tether_config_last_error`)."
            ),
        )
    }
}

/// `text` as comment lines of at most 100 columns; `indent` starts the continuation lines.
fn wrap(out: &mut String, text: &str, indent: &str) {
    let mut line = String::from(" *");
    for word in text.split_whitespace() {
        if line.len() + 1 + word.len() > 100 && line != " *" {
            out.push_str(&line);
            out.push('\n');
            line = format!(" *{indent}");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
}

fn declaration(s: &TableSetter) -> String {
    let config = options_doc::defaults();
    let mut out = String::from("\n/**\n");
    for paragraph in s.doc.split("\n\n").filter(|p| !p.trim().is_empty()) {
        wrap(&mut out, paragraph, "");
        out.push_str(" *\n");
    }
    if s.options.len() > 1 {
        out.push_str(" * Sets:\n");
    }
    for (i, id) in s.options.iter().enumerate() {
        let spec = options::find(id).unwrap_or_else(|| panic!("{}: no option `{id}`", s.name));
        assert_eq!(
            spec.c_setter, s.name,
            "option `{id}` names another C setter"
        );
        let default = options_doc::default_text(spec, &config, Binding::C);
        let meaning = options_doc::meaning(spec, Binding::C);
        // Several options from as many arguments: the n-th argument sets the n-th option.
        let from = match s.args.get(i) {
            Some((arg, _)) if s.args.len() == s.options.len() && s.options.len() > 1 => {
                format!(" from `{arg}`")
            }
            _ => String::new(),
        };
        let (lead, indent) = if s.options.len() > 1 {
            ("-", "  ")
        } else {
            ("Sets", "")
        };
        let text = format!("{lead} `{id}`{from} (default {default}): {meaning}.");
        wrap(&mut out, &text, indent);
    }
    let (ownership, errors) = contract(s);
    out.push_str(" *\n");
    wrap(&mut out, &format!("Ownership: {ownership}"), "");
    wrap(&mut out, &format!("Threads: {THREADS}"), "");
    wrap(&mut out, &format!("Errors: {errors}"), "");
    let args: Vec<String> = s
        .args
        .iter()
        .map(|(name, ty)| {
            let ty = c_type(ty);
            if ty.ends_with('*') {
                format!("{ty}{name}")
            } else {
                format!("{ty} {name}")
            }
        })
        .collect();
    out += &format!(
        " */\nenum tether_status {}(struct tether_config *config, {});\n",
        s.name,
        args.join(", ")
    );
    out
}

fn main() {
    let mut out = String::from(
        "\n/* The setters of core's option table: generated by ffi/examples/c_setters.rs from the \
         table_setters!\n * rows of ffi/src/config.rs and core/src/options.rs. Do not edit: run \
         ffi/gen-header.sh. */\n#ifndef TETHER_H_SETTERS\n#define TETHER_H_SETTERS\n\n\
         #ifdef __cplusplus\nextern \"C\" {\n#endif  // __cplusplus\n",
    );
    for setter in TABLE_SETTERS {
        out += &declaration(setter);
    }
    out += "\n#ifdef __cplusplus\n}  // extern \"C\"\n#endif  // __cplusplus\n\n#endif  /* TETHER_H_SETTERS */\n";
    print!("{out}");
}
