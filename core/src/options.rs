//! The option table: every client option once, for every binding.
//!
//! Each [`OptionSpec`] has a stable id (`snake_case`, the name Python's keyword uses and the
//! name every [`ConfigError::InvalidValue`] carries in `option`), a value [`OptionKind`], whether
//! it may be unset ([`OptionValue::Unset`]: "off", "unlimited", "none"), its documentation, the
//! C setter that sets it, and two functions: how a value is applied to a [`ConfigBuilder`] and
//! how the effective value is read back from a built [`Config`] ([`Config::get`]).
//!
//! Bindings apply options through the table instead of one hand-written branch per option:
//! Python loops over its keyword arguments, converts each by [`OptionSpec::kind`] and calls
//! [`OptionSpec::apply`]; the C setters (typed, they are the ABI) each call `apply` for their
//! option ids. Every range and consistency rule stays in [`ConfigBuilder::build`], so a value
//! set through the table is checked exactly like one set through the builder's methods.
//!
//! The table also generates the documentation: `cargo run -p tether-core --example
//! options_doc -- --write` renders the option tables of `docs/PYTHON.md` and `docs/C_API.md`
//! and the `ClientOptions` TypedDict in `python/tether/_types.py`; the test
//! `core/tests/options_doc.rs` fails when the committed files differ, and checks that every C
//! setter named here exists in `include/tether.h`.
//!
//! Options that are a binding's own (C's dispatch mode, Python's callbacks and `events=`) are
//! not in the table: they configure the binding, not the client.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{
    defaults, Config, ConfigBuilder, IoDriver, OutboxSync, OverflowPolicy, Protocol, TlsRoots,
};
use crate::error::ConfigError;

/// The shape of an option's value, which decides how a binding converts its native value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum OptionKind {
    /// True or false ([`OptionValue::Bool`]).
    Bool,
    /// A count or a size in bytes ([`OptionValue::Int`]).
    Count,
    /// A real number ([`OptionValue::Float`]).
    Number,
    /// A duration ([`OptionValue::Duration`]); Python gives seconds, C milliseconds.
    Duration,
    /// A string ([`OptionValue::Text`]).
    Text,
    /// Binary data; text is taken as its UTF-8 bytes ([`OptionValue::Bytes`]).
    Bytes,
    /// A file system path ([`OptionValue::Text`]).
    Path,
    /// One of these names ([`OptionValue::Text`]).
    Choice(&'static [&'static str]),
    /// A list of strings, added to those already set ([`OptionValue::List`]).
    TextList,
    /// HTTP headers as (name, value) pairs, added ([`OptionValue::Pairs`]).
    Headers,
    /// Host → addresses entries, added ([`OptionValue::Resolve`]).
    Resolve,
}

/// A value for one option, or the effective value read back from a [`Config`].
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum OptionValue {
    /// No value: the option is off, unlimited or absent (only for options with
    /// [`OptionSpec::nullable`]).
    Unset,
    /// For [`OptionKind::Bool`].
    Bool(bool),
    /// For [`OptionKind::Count`].
    Int(u64),
    /// For [`OptionKind::Number`].
    Float(f64),
    /// For [`OptionKind::Duration`] (also given as [`OptionValue::Float`] seconds).
    Duration(Duration),
    /// For [`OptionKind::Text`], [`OptionKind::Path`] and [`OptionKind::Choice`].
    Text(String),
    /// For [`OptionKind::Bytes`].
    Bytes(Vec<u8>),
    /// For [`OptionKind::TextList`].
    List(Vec<String>),
    /// For [`OptionKind::Headers`].
    Pairs(Vec<(String, String)>),
    /// For [`OptionKind::Resolve`].
    Resolve(Vec<(String, Vec<String>)>),
    /// Read back only: a secret is set (its value is not shown).
    Redacted,
}

/// What [`OptionSpec::apply`] runs: store a value in the builder (checks come at build).
pub type Apply = fn(&mut ConfigBuilder, OptionValue) -> Result<(), ConfigError>;
/// What [`Config::get`] runs: the effective value of one option.
pub type Read = fn(&Config) -> OptionValue;

/// One option of the table.
#[derive(Clone, Copy)]
pub struct OptionSpec {
    /// The stable id: Python's keyword and the `option` of config errors.
    pub name: &'static str,
    /// The section of the documentation tables ("connection", "TLS", ...).
    pub group: &'static str,
    /// The value's shape.
    pub kind: OptionKind,
    /// Whether [`OptionValue::Unset`] is accepted; [`OptionSpec::unset`] says what it means.
    pub nullable: bool,
    /// What an unset value means ("off", "unlimited", ...); empty when not nullable.
    pub unset: &'static str,
    /// The default in words, when reading a default config cannot show it (random, depends
    /// on another option); empty otherwise.
    pub default_note: &'static str,
    /// One or two sentences for every binding's documentation.
    pub doc: &'static str,
    /// The C function that sets it.
    pub c_setter: &'static str,
    apply: Apply,
    read: Read,
}

impl std::fmt::Debug for OptionSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OptionSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl OptionSpec {
    /// Store `value` in `builder`. A value of the wrong shape for [`OptionSpec::kind`] (a
    /// binding bug) or out of the type's range is refused naming the option; every other
    /// check is [`ConfigBuilder::build`]'s.
    pub fn apply(
        &self,
        builder: &mut ConfigBuilder,
        value: OptionValue,
    ) -> Result<(), ConfigError> {
        if value == OptionValue::Unset && !self.nullable {
            return Err(invalid(self.name, "must be set (it cannot be unset)"));
        }
        (self.apply)(builder, value)
    }

    /// The effective value in `config`.
    pub fn read(&self, config: &Config) -> OptionValue {
        (self.read)(config)
    }
}

/// Every option, in documentation order.
pub fn all() -> &'static [OptionSpec] {
    TABLE
}

/// The option with this id.
pub fn find(name: &str) -> Option<&'static OptionSpec> {
    TABLE.iter().find(|o| o.name == name)
}

/// The candidate closest to a misspelt `name` (at most 3 edits away), for a "did you mean"
/// hint: candidates are the table's ids plus a binding's own names.
pub fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let distance = |b: &str| {
        let b: Vec<char> = b.chars().collect();
        let mut row: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in name.chars().enumerate() {
            let mut prev = row[0];
            row[0] = i + 1;
            for (j, cb) in b.iter().enumerate() {
                let cur = row[j + 1];
                row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
                prev = cur;
            }
        }
        row[b.len()]
    };
    let table = TABLE.iter().map(|o| -> &'a str { o.name });
    let best = table.chain(candidates).map(|c| (distance(c), c)).min()?;
    (best.0 <= 3).then_some(best.1)
}

impl ConfigBuilder {
    /// Set the option `name` (a table id) to `value`: the generic setter bindings use.
    pub fn set(&mut self, name: &str, value: OptionValue) -> Result<(), ConfigError> {
        match find(name) {
            Some(spec) => spec.apply(self, value),
            None => Err(ConfigError::UnknownOption(name.to_owned())),
        }
    }
}

impl Config {
    /// The effective value of the option `name` (a table id), None for an unknown id. Secrets
    /// read as [`OptionValue::Redacted`] when set.
    pub fn get(&self, name: &str) -> Option<OptionValue> {
        find(name).map(|spec| spec.read(self))
    }
}

fn invalid(option: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError::InvalidValue {
        option,
        problem: problem.into(),
    }
}

// ----- value extraction: a wrong shape is a binding bug, refused naming the option ---------

fn shape(option: &'static str, want: &str, got: &OptionValue) -> ConfigError {
    invalid(option, format!("expected {want}, got {got:?}"))
}

macro_rules! take {
    ($name:literal, $v:expr, $pat:pat => $out:expr, $want:literal) => {
        match $v {
            $pat => $out,
            other => return Err(shape($name, $want, &other)),
        }
    };
}

/// An `Apply` that stores one converted value in a builder field.
macro_rules! put {
    ($($field:ident).+ = $conv:ident($name:literal)) => {
        |b, v| {
            b.$($field).+ = $conv($name, v)?;
            Ok(())
        }
    };
}

fn dur(name: &'static str, v: OptionValue) -> Result<Duration, ConfigError> {
    match v {
        OptionValue::Duration(d) => Ok(d),
        // A number of seconds, as a binding's user writes it.
        OptionValue::Float(s) if !s.is_finite() || s < 0.0 => Err(invalid(
            name,
            format!("{s} is not a duration in seconds (a finite number >= 0)"),
        )),
        OptionValue::Float(s) => Duration::try_from_secs_f64(s)
            .map_err(|_| invalid(name, format!("{s} seconds is too long"))),
        other => Err(shape(name, "a duration", &other)),
    }
}

fn opt_dur(name: &'static str, v: OptionValue) -> Result<Option<Duration>, ConfigError> {
    match v {
        OptionValue::Unset => Ok(None),
        other => dur(name, other).map(Some),
    }
}

fn count(name: &'static str, v: OptionValue) -> Result<usize, ConfigError> {
    match v {
        OptionValue::Int(n) => {
            usize::try_from(n).map_err(|_| invalid(name, format!("{n} is too large")))
        }
        other => Err(shape(name, "a count", &other)),
    }
}

fn count32(name: &'static str, v: OptionValue) -> Result<u32, ConfigError> {
    let n = count(name, v)?;
    u32::try_from(n).map_err(|_| invalid(name, format!("{n} is too large")))
}

fn flag(name: &'static str, v: OptionValue) -> Result<bool, ConfigError> {
    match v {
        OptionValue::Bool(b) => Ok(b),
        other => Err(shape(name, "true or false", &other)),
    }
}

fn text(name: &'static str, v: OptionValue) -> Result<Option<String>, ConfigError> {
    match v {
        OptionValue::Unset => Ok(None),
        OptionValue::Text(s) => Ok(Some(s)),
        other => Err(shape(name, "a string", &other)),
    }
}

fn bytes(name: &'static str, v: OptionValue) -> Result<Option<Vec<u8>>, ConfigError> {
    match v {
        OptionValue::Unset => Ok(None),
        OptionValue::Bytes(b) => Ok(Some(b)),
        OptionValue::Text(s) => Ok(Some(s.into_bytes())),
        other => Err(shape(name, "bytes", &other)),
    }
}

/// One of `choices` (the names of [`OptionKind::Choice`]).
fn choice(name: &'static str, choices: &[&str], v: OptionValue) -> Result<usize, ConfigError> {
    let given = text(name, v)?.unwrap_or_default();
    choices.iter().position(|c| *c == given).ok_or_else(|| {
        let names: Vec<String> = choices.iter().map(|c| format!("\"{c}\"")).collect();
        let (last, rest) = names
            .split_last()
            .map_or(("", &[][..]), |(l, r)| (l.as_str(), r));
        let list = if rest.is_empty() {
            last.to_owned()
        } else {
            format!("{} or {last}", rest.join(", "))
        };
        invalid(name, format!("{given:?}: expected {list}"))
    })
}

fn d(v: Duration) -> OptionValue {
    OptionValue::Duration(v)
}

fn n(v: usize) -> OptionValue {
    OptionValue::Int(v as u64)
}

fn opt_d(v: Option<Duration>) -> OptionValue {
    v.map_or(OptionValue::Unset, d)
}

/// A client certificate or key is read back only as set (redacted) or not.
fn presence(set: bool) -> OptionValue {
    if set {
        OptionValue::Redacted
    } else {
        OptionValue::Unset
    }
}

const TLS_ROOTS: &[&str] = &["system", "webpki"];
const OVERFLOW: &[&str] = &["reject", "drop_oldest", "wait"];
const PROTOCOL: &[&str] = &["raw", "envelope"];
const OUTBOX_SYNC: &[&str] = &["none", "batch", "always"];
const IO_DRIVER: &[&str] = &["runtime", "caller"];

/// A table row; `apply` and `read` are closures over the builder's and config's fields.
const fn row(
    name: &'static str,
    group: &'static str,
    kind: OptionKind,
    c_setter: &'static str,
    doc: &'static str,
    apply: Apply,
    read: Read,
) -> OptionSpec {
    OptionSpec {
        name,
        group,
        kind,
        nullable: false,
        unset: "",
        default_note: "",
        doc,
        c_setter,
        apply,
        read,
    }
}

/// `row` for an option that may be unset, with what unset means.
const fn nullable(mut spec: OptionSpec, unset: &'static str) -> OptionSpec {
    spec.nullable = true;
    spec.unset = unset;
    spec
}

/// `spec` with its default given in words.
const fn default_note(mut spec: OptionSpec, note: &'static str) -> OptionSpec {
    spec.default_note = note;
    spec
}

use OptionKind as K;

static TABLE: &[OptionSpec] = &[
    // ----- connection
    row(
        "headers",
        "connection",
        K::Headers,
        "tether_config_add_header",
        "extra HTTP headers on the upgrade request (for example `Authorization`), checked at build",
        |b, v| {
            let pairs = take!("headers", v, OptionValue::Pairs(p) => p, "(name, value) pairs");
            b.headers.extend(pairs);
            Ok(())
        },
        |c| {
            OptionValue::Pairs(
                c.headers
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                    .collect(),
            )
        },
    ),
    row(
        "subprotocols",
        "connection",
        K::TextList,
        "tether_config_add_subprotocol",
        "offered `Sec-WebSocket-Protocol` values (HTTP tokens)",
        |b, v| {
            let list = take!("subprotocols", v, OptionValue::List(l) => l, "a list of strings");
            b.subprotocols.extend(list);
            Ok(())
        },
        |c| OptionValue::List(c.subprotocols.clone()),
    ),
    row(
        "connect_timeout",
        "connection",
        K::Duration,
        "tether_config_set_connect_timeout_ms",
        "time allowed for TCP connect, TLS and the HTTP upgrade together",
        put!(connect_timeout = dur("connect_timeout")),
        |c| d(c.connect_timeout),
    ),
    row(
        "happy_eyeballs_delay",
        "connection",
        K::Duration,
        "tether_config_set_happy_eyeballs_delay_ms",
        "a host with several addresses: how long one address may try to connect before the next \
         is started alongside it (RFC 8305; at least 10 ms and below `connect_timeout`); a \
         refused address hands over at once, and a retry starts with the address that worked last",
        |b, v| {
            b.happy_eyeballs_delay = Some(dur("happy_eyeballs_delay", v)?);
            Ok(())
        },
        |c| d(c.happy_eyeballs_delay),
    ),
    nullable(
        row(
            "resolve",
            "connection",
            K::Resolve,
            "tether_config_add_resolve",
            "connect to these addresses instead of asking DNS, like curl's `--resolve`: host → \
             IPs, with or without a port; the host must be the URL's, which the upgrade and TLS \
             still use",
            |b, v| {
                match v {
                    OptionValue::Unset => {}
                    OptionValue::Resolve(entries) => b.resolve.extend(entries),
                    other => return Err(shape("resolve", "host → addresses", &other)),
                }
                Ok(())
            },
            |c| match &c.resolve {
                None => OptionValue::Unset,
                Some(addrs) => OptionValue::List(addrs.iter().map(|a| a.to_string()).collect()),
            },
        ),
        "DNS",
    ),
    nullable(
        default_note(
            row(
                "proxy",
                "connection",
                K::Text,
                "tether_config_set_proxy",
                "`http://[user:password@]host[:port]` (HTTP CONNECT), `socks5://...` (SOCKS5, the \
                 client resolves the server's name), `socks5h://...` (SOCKS5, the proxy resolves \
                 it), or `none` for a direct connection; unset, `https_proxy` / `http_proxy` / \
                 `all_proxy` / `no_proxy` are read as curl does (docs/PROXIES.md). Read back \
                 without the password",
                |b, v| {
                    b.proxy = text("proxy", v)?;
                    Ok(())
                },
                |c| {
                    OptionValue::Text(
                        c.proxy
                            .as_ref()
                            .map_or_else(|| "none".to_owned(), |p| p.redacted_url()),
                    )
                },
            ),
            "from the environment",
        ),
        "from the environment",
    ),
    // ----- TLS
    row(
        "tls_roots",
        "TLS",
        K::Choice(TLS_ROOTS),
        "tether_config_set_tls_roots",
        "`system` (the OS store, falling back to the bundled roots) or `webpki` (the bundled \
         Mozilla roots); a custom CA (`ca_file`, `ca_pem`) wins over it",
        |b, v| {
            b.tls_roots = match choice("tls_roots", TLS_ROOTS, v)? {
                0 => TlsRoots::System,
                _ => TlsRoots::WebPki,
            };
            Ok(())
        },
        |c| {
            OptionValue::Text(
                match c.tls_roots {
                    TlsRoots::System => "system",
                    TlsRoots::WebPki => "webpki",
                    TlsRoots::CustomCa(_) => "custom",
                }
                .into(),
            )
        },
    ),
    nullable(
        row(
            "ca_file",
            "TLS",
            K::Path,
            "tether_config_set_tls_ca_file",
            "trust only the CA certificates in this PEM file (read at build)",
            |b, v| {
                if let Some(path) = text("ca_file", v)? {
                    b.ca_file = Some(PathBuf::from(path));
                }
                Ok(())
            },
            |_| OptionValue::Unset,
        ),
        "none",
    ),
    nullable(
        row(
            "ca_pem",
            "TLS",
            K::Bytes,
            "tether_config_set_tls_ca_pem",
            "trust only the CA certificates in this PEM text (`ca_file` wins over it)",
            |b, v| {
                b.ca_pem = bytes("ca_pem", v)?;
                Ok(())
            },
            |c| match &c.tls_roots {
                TlsRoots::CustomCa(pem) => OptionValue::Bytes(pem.clone()),
                _ => OptionValue::Unset,
            },
        ),
        "none",
    ),
    row(
        "tls_insecure",
        "TLS",
        K::Bool,
        "tether_config_set_danger_accept_invalid_certs",
        "accept any server certificate: tests only, it removes all protection TLS gives",
        put!(tls_insecure = flag("tls_insecure")),
        |c| OptionValue::Bool(c.tls_insecure),
    ),
    nullable(
        row(
            "client_cert_file",
            "TLS",
            K::Path,
            "tether_config_set_client_cert_file",
            "mutual TLS: a PEM file with the client certificate chain (leaf first), presented when \
             the server asks; needs `client_key_file` or `client_key_pem`",
            |b, v| {
                b.client_cert_file = text("client_cert_file", v)?.map(PathBuf::from);
                Ok(())
            },
            |c| presence(c.client_identity.is_some()),
        ),
        "none",
    ),
    nullable(
        row(
            "client_key_file",
            "TLS",
            K::Path,
            "tether_config_set_client_key_file",
            "mutual TLS: a PEM file with the client certificate's private key (PKCS#8, PKCS#1 RSA \
             or SEC1 EC), checked against the certificate at build",
            |b, v| {
                b.client_key_file = text("client_key_file", v)?.map(PathBuf::from);
                Ok(())
            },
            |c| presence(c.client_identity.is_some()),
        ),
        "none",
    ),
    nullable(
        row(
            "client_cert_pem",
            "TLS",
            K::Bytes,
            "tether_config_set_client_cert_pem",
            "mutual TLS: the client certificate chain as PEM text (instead of `client_cert_file`)",
            |b, v| {
                b.client_cert_pem = bytes("client_cert_pem", v)?;
                Ok(())
            },
            |c| presence(c.client_identity.is_some()),
        ),
        "none",
    ),
    nullable(
        row(
            "client_key_pem",
            "TLS",
            K::Bytes,
            "tether_config_set_client_key_pem",
            "mutual TLS: the private key as PEM text (instead of `client_key_file`)",
            |b, v| {
                b.client_key_pem = bytes("client_key_pem", v)?.map(crate::config::Secret);
                Ok(())
            },
            |c| presence(c.client_identity.is_some()),
        ),
        "none",
    ),
    // ----- reconnect
    row(
        "reconnect",
        "reconnect",
        K::Bool,
        "tether_config_set_reconnect_enabled",
        "reconnect automatically",
        put!(reconnect.enabled = flag("reconnect")),
        |c| OptionValue::Bool(c.reconnect.enabled),
    ),
    row(
        "backoff_initial",
        "reconnect",
        K::Duration,
        "tether_config_set_backoff",
        "bound of the first reconnect delay: the delay before attempt n is uniform in \
         [0, min(backoff_max, backoff_initial × backoff_multiplier^(n-1))]",
        put!(reconnect.initial_delay = dur("backoff_initial")),
        |c| d(c.reconnect.initial_delay),
    ),
    row(
        "backoff_max",
        "reconnect",
        K::Duration,
        "tether_config_set_backoff",
        "cap on any one reconnect delay",
        put!(reconnect.max_delay = dur("backoff_max")),
        |c| d(c.reconnect.max_delay),
    ),
    row(
        "backoff_multiplier",
        "reconnect",
        K::Number,
        "tether_config_set_backoff",
        "growth of the delay bound per attempt (at least 1.0)",
        |b, v| {
            let m = match v {
                OptionValue::Float(f) => f,
                OptionValue::Int(i) => i as f64,
                other => return Err(shape("backoff_multiplier", "a number", &other)),
            };
            b.reconnect.multiplier = m;
            Ok(())
        },
        |c| OptionValue::Float(c.reconnect.multiplier),
    ),
    nullable(
        row(
            "max_reconnect_attempts",
            "reconnect",
            K::Count,
            "tether_config_set_max_reconnect_attempts",
            "reconnect attempts allowed per outage",
            |b, v| {
                b.reconnect.max_attempts = match v {
                    OptionValue::Unset => None,
                    v => Some(count32("max_reconnect_attempts", v)?),
                };
                Ok(())
            },
            |c| {
                c.reconnect
                    .max_attempts
                    .map_or(OptionValue::Unset, |a| OptionValue::Int(a.into()))
            },
        ),
        "unlimited",
    ),
    nullable(
        row(
            "max_retry_duration",
            "reconnect",
            K::Duration,
            "tether_config_set_max_retry_duration_ms",
            "cap on the time spent retrying in one outage",
            put!(reconnect.max_retry_duration = opt_dur("max_retry_duration")),
            |c| opt_d(c.reconnect.max_retry_duration),
        ),
        "unlimited",
    ),
    row(
        "min_uptime",
        "reconnect",
        K::Duration,
        "tether_config_set_min_uptime_ms",
        "a link must stay up this long before the attempt counter and backoff reset",
        put!(reconnect.min_uptime = dur("min_uptime")),
        |c| d(c.reconnect.min_uptime),
    ),
    // ----- heartbeat
    nullable(
        row(
            "ping_interval",
            "heartbeat",
            K::Duration,
            "tether_config_set_heartbeat",
            "send a WebSocket ping this often; a link on which nothing arrives within \
             `ping_interval + ping_timeout` is dead and is reconnected (the deadline of a ping \
             queued behind a large message starts once it is in the socket)",
            put!(ping_interval = opt_dur("ping_interval")),
            |c| opt_d(c.ping_interval),
        ),
        "off",
    ),
    row(
        "ping_timeout",
        "heartbeat",
        K::Duration,
        "tether_config_set_heartbeat",
        "time allowed for any frame to arrive after a ping",
        put!(pong_timeout = dur("ping_timeout")),
        |c| d(c.pong_timeout),
    ),
    // ----- outbox
    row(
        "outbox_max_messages",
        "outbox",
        K::Count,
        "tether_config_set_outbox_limits",
        "outbox bound by count (queued plus being written)",
        put!(outbox_max_messages = count("outbox_max_messages")),
        |c| n(c.outbox_max_messages),
    ),
    row(
        "outbox_max_bytes",
        "outbox",
        K::Count,
        "tether_config_set_outbox_limits",
        "outbox bound by bytes (queued plus being written)",
        put!(outbox_max_bytes = count("outbox_max_bytes")),
        |c| n(c.outbox_max_bytes),
    ),
    row(
        "overflow",
        "outbox",
        K::Choice(OVERFLOW),
        "tether_config_set_overflow_policy",
        "full outbox: `reject` the new message (queue full error), `drop_oldest` (the oldest \
         queued message fails as dropped), or `wait` (the send blocks up to `overflow_timeout`)",
        |b, v| {
            b.overflow = match choice("overflow", OVERFLOW, v)? {
                0 => OverflowPolicy::Reject,
                1 => OverflowPolicy::DropOldest,
                _ => OverflowPolicy::Wait(defaults::OVERFLOW_TIMEOUT),
            };
            Ok(())
        },
        |c| {
            OptionValue::Text(
                match c.overflow {
                    OverflowPolicy::Reject => "reject",
                    OverflowPolicy::DropOldest => "drop_oldest",
                    OverflowPolicy::Wait(_) => "wait",
                }
                .into(),
            )
        },
    ),
    row(
        "overflow_timeout",
        "outbox",
        K::Duration,
        "tether_config_set_overflow_policy",
        "how long a send may wait for room with `overflow` `wait` (only meaningful then)",
        |b, v| {
            b.overflow_timeout = Some(dur("overflow_timeout", v)?);
            Ok(())
        },
        |c| match c.overflow {
            OverflowPolicy::Wait(t) => d(t),
            _ => d(defaults::OVERFLOW_TIMEOUT),
        },
    ),
    nullable(
        row(
            "outbox_path",
            "outbox",
            K::Path,
            "tether_config_set_outbox_path",
            "keep the outbox in this file: queued and unacknowledged messages, the id sequence \
             and the session survive the process, and a client started again with the same path \
             resumes the session (`docs/PERSISTENCE.md`); one live client per file",
            |b, v| {
                b.outbox_path = text("outbox_path", v)?.map(PathBuf::from);
                Ok(())
            },
            |c| match &c.outbox_path {
                Some(p) => OptionValue::Text(p.display().to_string()),
                None => OptionValue::Unset,
            },
        ),
        "in memory only",
    ),
    row(
        "outbox_sync",
        "outbox",
        K::Choice(OUTBOX_SYNC),
        "tether_config_set_outbox_sync",
        "what the persistent outbox makes durable against a machine crash (a killed process \
         loses nothing in any mode): `none` (the OS writes back), `batch` (one fdatasync per \
         batch written to the socket) or `always` (one per message, before send returns)",
        |b, v| {
            b.outbox_sync = match choice("outbox_sync", OUTBOX_SYNC, v)? {
                0 => OutboxSync::None,
                1 => OutboxSync::Batch,
                _ => OutboxSync::Always,
            };
            Ok(())
        },
        |c| {
            OptionValue::Text(
                match c.outbox_sync {
                    OutboxSync::None => "none",
                    OutboxSync::Batch => "batch",
                    OutboxSync::Always => "always",
                }
                .into(),
            )
        },
    ),
    row(
        "queue_while_disconnected",
        "outbox",
        K::Bool,
        "tether_config_set_queue_while_disconnected",
        "queue messages while not ready; off: a send is refused as not ready",
        put!(queue_while_disconnected = flag("queue_while_disconnected")),
        |c| OptionValue::Bool(c.queue_while_disconnected),
    ),
    // ----- limits
    default_note(
        row(
            "max_message_size",
            "limits",
            K::Count,
            "tether_config_set_max_outbound_message_size",
            "largest outbound message a send accepts, as it goes on the wire (envelope mode: the \
             whole frame); at most `outbox_max_bytes`",
            |b, v| {
                b.max_outbound_message_size = Some(count("max_message_size", v)?);
                Ok(())
            },
            |c| n(c.max_outbound_message_size),
        ),
        "4 MiB, or `outbox_max_bytes` if smaller",
    ),
    row(
        "max_inbound_message_size",
        "limits",
        K::Count,
        "tether_config_set_max_inbound_size",
        "largest inbound message: a larger one closes the link with 1009",
        put!(max_inbound_message_size = count("max_inbound_message_size")),
        |c| n(c.max_inbound_message_size),
    ),
    row(
        "max_inbound_frame_size",
        "limits",
        K::Count,
        "tether_config_set_max_inbound_size",
        "largest inbound frame: a larger one closes the link with 1009",
        put!(max_inbound_frame_size = count("max_inbound_frame_size")),
        |c| n(c.max_inbound_frame_size),
    ),
    row(
        "close_timeout",
        "limits",
        K::Duration,
        "tether_config_set_close_timeout_ms",
        "time `close` spends draining the outbox and completing the closing handshake",
        put!(close_timeout = dur("close_timeout")),
        |c| d(c.close_timeout),
    ),
    // ----- tuning
    row(
        "event_queue_capacity",
        "tuning",
        K::Count,
        "tether_config_set_event_queue_capacity",
        "inbound messages waiting for the application before the client stops reading the \
         socket (backpressure)",
        put!(event_queue_capacity = count("event_queue_capacity")),
        |c| n(c.event_queue_capacity),
    ),
    row(
        "read_buffer_size",
        "tuning",
        K::Count,
        "tether_config_set_read_buffer_size",
        "socket read buffer in bytes (at least 1024)",
        put!(read_buffer_size = count("read_buffer_size")),
        |c| n(c.read_buffer_size),
    ),
    row(
        "write_batch_bytes",
        "tuning",
        K::Count,
        "tether_config_set_write_batch_bytes",
        "bytes written per batch before one flush",
        put!(write_batch_bytes = count("write_batch_bytes")),
        |c| n(c.write_batch_bytes),
    ),
    // ----- envelope mode
    row(
        "protocol",
        "envelope mode",
        K::Choice(PROTOCOL),
        "tether_config_set_protocol",
        "`raw` WebSocket messages to any server, or `envelope`: the Tether protocol with acks, \
         resend and de-duplication (docs/PROTOCOL.md; the server must speak it)",
        |b, v| {
            b.protocol = match choice("protocol", PROTOCOL, v)? {
                0 => Protocol::Raw,
                _ => Protocol::Envelope,
            };
            Ok(())
        },
        |c| {
            OptionValue::Text(
                match c.protocol {
                    Protocol::Raw => "raw",
                    Protocol::Envelope => "envelope",
                }
                .into(),
            )
        },
    ),
    nullable(
        row(
            "token",
            "envelope mode",
            K::Text,
            "tether_config_set_auth_token",
            "envelope mode: the token sent in `hello` for the server to check",
            |b, v| {
                if let Some(t) = text("token", v)? {
                    b.auth_token = Some(crate::config::Secret(t));
                }
                Ok(())
            },
            |c| match c.auth_token {
                Some(_) => OptionValue::Redacted,
                None => OptionValue::Unset,
            },
        ),
        "none",
    ),
    default_note(
        nullable(
            row(
                "session_id",
                "envelope mode",
                K::Text,
                "tether_config_set_session_id",
                "envelope mode: the session id sent in `hello` (1 to 128 printable ASCII \
                 characters), stable across reconnects. Reusing it in a new process does not \
                 resume the old one's messages (they lived in its memory): the server starts the \
                 session over and the new client reports a session reset with `client_state_lost`",
                |b, v| {
                    if let Some(id) = text("session_id", v)? {
                        b.session_id = Some(id);
                    }
                    Ok(())
                },
                |c| OptionValue::Text(c.session_id.clone()),
            ),
            "random",
        ),
        "random, new per client",
    ),
    nullable(
        row(
            "signing_key",
            "envelope mode",
            K::Bytes,
            "tether_config_set_signing_key",
            "envelope mode: HMAC-SHA256 on every message, both ways (inbound messages without a \
             valid signature are refused)",
            |b, v| {
                if let Some(key) = bytes("signing_key", v)? {
                    b.signing_key = Some(crate::config::Secret(key));
                }
                Ok(())
            },
            |c| match c.signing_key {
                Some(_) => OptionValue::Redacted,
                None => OptionValue::Unset,
            },
        ),
        "none",
    ),
    nullable(
        row(
            "compression_threshold",
            "envelope mode",
            K::Count,
            "tether_config_set_compression_threshold",
            "envelope mode: compress payloads of at least this many bytes (raw DEFLATE), when \
             that makes them smaller",
            |b, v| {
                b.compression_threshold = match v {
                    OptionValue::Unset => None,
                    v => Some(count("compression_threshold", v)?),
                };
                Ok(())
            },
            |c| c.compression_threshold.map_or(OptionValue::Unset, n),
        ),
        "never",
    ),
    row(
        "ack_timeout",
        "envelope mode",
        K::Duration,
        "tether_config_set_ack_timeout",
        "envelope mode: time to wait for an ack before writing a message again",
        put!(ack_timeout = dur("ack_timeout")),
        |c| d(c.ack_timeout),
    ),
    row(
        "ack_retries",
        "envelope mode",
        K::Count,
        "tether_config_set_ack_timeout",
        "envelope mode: ack timeouts a message may have before it fails",
        put!(ack_retries = count32("ack_retries")),
        |c| OptionValue::Int(c.ack_retries.into()),
    ),
    row(
        "handshake_timeout",
        "envelope mode",
        K::Duration,
        "tether_config_set_handshake_timeout_ms",
        "envelope mode: time allowed for `hello` → `welcome`",
        put!(handshake_timeout = dur("handshake_timeout")),
        |c| d(c.handshake_timeout),
    ),
    default_note(
        row(
            "app_ping",
            "envelope mode",
            K::Bool,
            "tether_config_set_app_ping",
            "envelope mode: also send app-level pings with each heartbeat (for the app RTT); \
             turning it on in raw mode is an error",
            |b, v| {
                b.app_ping = Some(flag("app_ping", v)?);
                Ok(())
            },
            |c| OptionValue::Bool(c.app_ping),
        ),
        "on in envelope mode",
    ),
    row(
        "io_driver",
        "I/O",
        K::Choice(IO_DRIVER),
        "tether_config_set_io_driver",
        "which thread runs the client's I/O: `runtime` (Tether's shared runtime thread) or \
         `caller` (the application's thread while it waits on the client, poll delivery only: \
         no thread hop per message; see `keeper_after`)",
        |b, v| {
            b.io_driver = match choice("io_driver", IO_DRIVER, v)? {
                0 => IoDriver::Runtime,
                _ => IoDriver::Caller,
            };
            Ok(())
        },
        |c| {
            OptionValue::Text(
                match c.io_driver {
                    IoDriver::Runtime => "runtime",
                    IoDriver::Caller => "caller",
                }
                .into(),
            )
        },
    ),
    nullable(
        row(
            "keeper_after",
            "I/O",
            K::Duration,
            "tether_config_set_keeper_after_ms",
            "with `io_driver` `caller`: a keeper thread drives the I/O (heartbeats, reconnects) \
             once nobody has waited on the client this long; unset, there is no thread besides \
             the application's and nothing happens between its polls",
            put!(keeper_after = opt_dur("keeper_after")),
            |c| opt_d(c.keeper_after),
        ),
        "no keeper",
    ),
];

#[cfg(test)]
mod tests {
    #[test]
    fn closest_suggests_a_near_name_and_durations_take_seconds() {
        assert_eq!(super::closest("ping_intervl", []), Some("ping_interval"));
        assert_eq!(
            super::closest("on_mesage", ["on_message"]),
            Some("on_message")
        );
        assert_eq!(super::closest("zzzzzzzzzzzz", ["on_message"]), None);
        let mut b = crate::ConfigBuilder::new("ws://127.0.0.1:1/");
        b.set("ping_timeout", OptionValue::Float(2.5))
            .expect("seconds");
        let c = b.build().expect("valid");
        assert_eq!(
            c.get("ping_timeout"),
            Some(OptionValue::Duration(Duration::from_millis(2500)))
        );
        let mut b = crate::ConfigBuilder::new("ws://127.0.0.1:1/");
        let err = b
            .set("ping_timeout", OptionValue::Float(-1.0))
            .expect_err("negative");
        assert!(
            err.to_string().contains("-1 is not a duration in seconds"),
            "{err}"
        );
    }

    use super::*;

    #[test]
    fn ids_are_unique_snake_case_and_every_option_reads_back() {
        let config = Config::builder("ws://127.0.0.1:1/")
            .build()
            .expect("defaults");
        for (i, o) in TABLE.iter().enumerate() {
            assert!(
                o.name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{}",
                o.name
            );
            assert!(
                TABLE[..i].iter().all(|p| p.name != o.name),
                "{} twice",
                o.name
            );
            assert_eq!(o.nullable, !o.unset.is_empty(), "{}", o.name);
            let _ = o.read(&config);
        }
    }

    #[test]
    fn set_then_get_round_trips() {
        let mut b = Config::builder("ws://127.0.0.1:1/");
        b.set(
            "connect_timeout",
            OptionValue::Duration(Duration::from_millis(1500)),
        )
        .expect("set");
        b.set("overflow", OptionValue::Text("wait".into()))
            .expect("set");
        b.set(
            "overflow_timeout",
            OptionValue::Duration(Duration::from_secs(1)),
        )
        .expect("set");
        b.set("ping_interval", OptionValue::Unset).expect("set");
        b.set("backoff_max", OptionValue::Duration(Duration::from_secs(3)))
            .expect("set");
        let c = b.build().expect("valid");
        assert_eq!(
            c.get("connect_timeout"),
            Some(OptionValue::Duration(Duration::from_millis(1500)))
        );
        assert_eq!(c.get("overflow"), Some(OptionValue::Text("wait".into())));
        assert_eq!(
            c.overflow_policy(),
            OverflowPolicy::Wait(Duration::from_secs(1))
        );
        assert_eq!(c.get("ping_interval"), Some(OptionValue::Unset));
        // Setting one member of a group keeps the others' defaults.
        assert_eq!(
            c.get("backoff_initial"),
            Some(OptionValue::Duration(Duration::from_millis(500)))
        );
        assert_eq!(c.get("nope"), None);
    }

    #[test]
    fn errors_name_the_option_id() {
        let mut b = Config::builder("ws://127.0.0.1:1/");
        let e = b.set("overflow", OptionValue::Text("block".into()));
        assert!(
            matches!(&e, Err(ConfigError::InvalidValue { option: "overflow", problem }) if problem.contains("\"reject\"")),
            "{e:?}"
        );
        let e = b.set("connect_timeout", OptionValue::Unset);
        assert!(matches!(
            e,
            Err(ConfigError::InvalidValue {
                option: "connect_timeout",
                ..
            })
        ));
        assert!(matches!(
            b.set("connect_timeut", OptionValue::Unset),
            Err(ConfigError::UnknownOption(_))
        ));
        let mut b = Config::builder("ws://127.0.0.1:1/");
        b.set(
            "overflow_timeout",
            OptionValue::Duration(Duration::from_secs(1)),
        )
        .expect("stored");
        let e = b
            .clone()
            .build()
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("`overflow_timeout`") && e.contains("overflow=\"wait\""),
            "{e}"
        );
        b.set("overflow", OptionValue::Text("wait".into()))
            .expect("stored");
        assert!(b.build().is_ok());
    }
}
