//! Renders the documentation generated from the option table (`tether_core::options`): the
//! option tables of docs/PYTHON.md and docs/C_API.md and the `ClientOptions` TypedDict of
//! python/tether/_types.py, each between its BEGIN/END markers.
//!
//! `cargo run -p tether-core --example options_doc -- --write` rewrites the files; without
//! `--write` it checks them and exits 1 naming the stale ones. `core/tests/options_doc.rs` runs
//! the check as a test.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tether_core::{options, Config, OptionKind, OptionSpec, OptionValue};

/// The command that regenerates the files (quoted in the markers and in failures).
pub const COMMAND: &str = "cargo run -p tether-core --example options_doc -- --write";

/// A generated region: the file, its markers and its rendered content.
pub struct Region {
    /// Relative to the repository root.
    pub path: &'static str,
    begin: &'static str,
    end: &'static str,
    content: String,
}

/// The repository root (this file is in core/examples).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Every generated region.
pub fn regions() -> Vec<Region> {
    vec![
        Region {
            path: "python/tether/_types.py",
            begin: "    # BEGIN generated from core/src/options.rs",
            end: "    # END generated",
            content: typeddict(),
        },
        Region {
            path: "docs/PYTHON.md",
            begin: "<!-- BEGIN generated from core/src/options.rs",
            end: "<!-- END generated -->",
            content: markdown(Binding::Python),
        },
        Region {
            path: "docs/C_API.md",
            begin: "<!-- BEGIN generated from core/src/options.rs",
            end: "<!-- END generated -->",
            content: markdown(Binding::C),
        },
    ]
}

/// `text` with the region's content replaced (None when the markers are missing).
pub fn splice(region: &Region, text: &str) -> Option<String> {
    let start = text.find(region.begin)?;
    let body = start + text[start..].find('\n')? + 1;
    let end = body + text[body..].find(region.end)?;
    Some(format!(
        "{}{}{}",
        &text[..body],
        region.content,
        &text[end..]
    ))
}

/// The regions whose file differs from what the table renders (or lacks the markers).
pub fn stale() -> Vec<&'static str> {
    regions()
        .into_iter()
        .filter(|r| {
            let text = std::fs::read_to_string(root().join(r.path)).unwrap_or_default();
            splice(r, &text).is_none_or(|new| new != text)
        })
        .map(|r| r.path)
        .collect()
}

/// Which binding's conventions a text follows.
#[derive(Clone, Copy, PartialEq)]
pub enum Binding {
    /// Python: seconds, `None`.
    Python,
    /// C: milliseconds, 0 for unset.
    C,
}

/// The default config (for the defaults column).
pub fn defaults() -> Config {
    match Config::builder("ws://127.0.0.1:1/").build() {
        Ok(c) => c,
        Err(e) => panic!("the default config must build: {e}"),
    }
}

fn is_bytes(spec: &OptionSpec) -> bool {
    ["size", "bytes", "threshold"]
        .iter()
        .any(|w| spec.name.contains(w))
}

fn size(n: u64) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
        n => n.to_string(),
    }
}

fn duration(d: Duration, b: Binding) -> String {
    match b {
        Binding::Python => format!("{}", d.as_secs_f64()),
        Binding::C => format!("{} ms", d.as_millis()),
    }
}

/// An option's default as the documentation states it (shared with ffi/examples/c_setters.rs).
pub fn default_text(spec: &OptionSpec, config: &Config, b: Binding) -> String {
    if !spec.default_note.is_empty() {
        return spec.default_note.to_owned();
    }
    match spec.read(config) {
        OptionValue::Unset if b == Binding::Python => "`None`".into(),
        OptionValue::Unset => spec.unset.into(),
        OptionValue::Bool(v) if b == Binding::Python => {
            format!("`{}`", if v { "True" } else { "False" })
        }
        OptionValue::Bool(v) => format!("`{v}`"),
        OptionValue::Int(n) if is_bytes(spec) => size(n),
        OptionValue::Int(n) => n.to_string(),
        OptionValue::Float(f) => format!("{f:?}"),
        OptionValue::Duration(d) => duration(d, b),
        OptionValue::Text(t) if b == Binding::Python => format!("`\"{t}\"`"),
        OptionValue::Text(t) => format!("`{t}`"),
        OptionValue::List(l) if l.is_empty() => "none".into(),
        OptionValue::Pairs(p) if p.is_empty() => "none".into(),
        other => format!("{other:?}"),
    }
}

/// An option's meaning: its doc, and what unset means in binding `b`.
pub fn meaning(spec: &OptionSpec, b: Binding) -> String {
    let mut text = spec.doc.to_owned();
    if spec.nullable && spec.unset != "none" {
        let unset = match (b, spec.kind) {
            (Binding::Python, _) => Some("`None`"),
            (Binding::C, OptionKind::Duration | OptionKind::Count) => Some("0"),
            (Binding::C, _) => None,
        };
        if let Some(unset) = unset {
            text += &format!(" ({unset}: {})", spec.unset);
        }
    }
    text
}

fn markdown(b: Binding) -> String {
    let config = defaults();
    let mut out = String::new();
    match b {
        Binding::Python => {
            out += "| option | default | meaning |\n|---|---|---|\n";
        }
        Binding::C => {
            out += "| option | set with | default | meaning |\n|---|---|---|---|\n";
        }
    }
    for spec in options::all() {
        let default = default_text(spec, &config, b);
        let meaning = meaning(spec, b);
        match b {
            Binding::Python => out += &format!("| `{}` | {default} | {meaning} |\n", spec.name),
            Binding::C => {
                let setter = spec.c_setter.trim_start_matches("tether_config");
                out += &format!("| `{}` | `{setter}` | {default} | {meaning} |\n", spec.name);
            }
        }
    }
    out
}

fn python_type(spec: &OptionSpec) -> String {
    let base = match spec.kind {
        OptionKind::Bool => "bool".to_owned(),
        OptionKind::Count => "int".into(),
        OptionKind::Number | OptionKind::Duration => "float".into(),
        OptionKind::Text => "str".into(),
        OptionKind::Bytes => return nullable_union(spec, "bytes, str"),
        OptionKind::Path => return nullable_union(spec, "str, os.PathLike[str]"),
        OptionKind::Choice(names) => {
            let names: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
            format!("Literal[{}]", names.join(", "))
        }
        OptionKind::TextList => "Sequence[str]".into(),
        OptionKind::Headers => "Union[Mapping[str, str], Sequence[Tuple[str, str]]]".into(),
        OptionKind::Resolve => "Mapping[str, Sequence[str]]".into(),
        _ => "object".into(),
    };
    if spec.nullable {
        format!("Optional[{base}]")
    } else {
        base
    }
}

fn nullable_union(spec: &OptionSpec, members: &str) -> String {
    if spec.nullable {
        format!("Union[{members}, None]")
    } else {
        format!("Union[{members}]")
    }
}

fn typeddict() -> String {
    let mut out = String::new();
    let mut group = "";
    for spec in options::all() {
        if spec.group != group {
            group = spec.group;
            out += &format!("    # {group}\n");
        }
        out += &format!("    {}: {}\n", spec.name, python_type(spec));
    }
    out
}

#[allow(dead_code)] // the test includes this file for its functions only
fn main() {
    let write = std::env::args().any(|a| a == "--write");
    let mut failed = false;
    for region in regions() {
        let path = root().join(region.path);
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let Some(new) = splice(&region, &text) else {
            eprintln!(
                "{}: markers `{}` / `{}` not found",
                region.path, region.begin, region.end
            );
            failed = true;
            continue;
        };
        if new == text {
            continue;
        }
        if write {
            if let Err(e) = std::fs::write(&path, new) {
                eprintln!("{}: {e}", region.path);
                failed = true;
            } else {
                println!("wrote {}", region.path);
            }
        } else {
            eprintln!("{} is stale: run {COMMAND}", region.path);
            failed = true;
        }
    }
    if failed {
        std::process::exit(1);
    }
}
