//! Config validation: every bad input is refused at build time with a message naming it.

use std::time::Duration;

use tether_core::{Config, ConfigError, OverflowPolicy};

fn url_problem(url: &str) -> String {
    match Config::builder(url).build() {
        Err(ConfigError::InvalidUrl { problem, .. }) => problem,
        other => panic!("{url:?} should be an invalid URL, got {other:?}"),
    }
}

#[test]
fn accepts_ws_and_wss_urls() {
    for url in [
        "ws://127.0.0.1:9001/",
        "wss://example.com/chat?room=1",
        "ws://[::1]:80",
        "ws://localhost",
    ] {
        let config = Config::builder(url)
            .build()
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(config.url().starts_with("ws"));
    }
}

#[test]
fn rejects_other_schemes_naming_the_scheme() {
    assert!(url_problem("http://example.com/").contains("unsupported scheme `http`"));
    assert!(url_problem("http://example.com/").contains("did you mean ws://"));
    assert!(url_problem("https://example.com/").contains("did you mean wss://"));
    assert!(url_problem("ftp://example.com/").contains("ws:// and wss:// only"));
}

#[test]
fn rejects_missing_host_bad_port_and_other_malformed_urls() {
    assert!(url_problem("").contains("empty"));
    assert!(url_problem("example.com:80/x").contains("scheme"));
    assert!(
        url_problem("ws://").contains("host"),
        "{}",
        url_problem("ws://")
    );
    assert!(url_problem("ws://host:99999/").contains("port"));
    assert!(url_problem("ws://host:abc/").contains("port"));
    assert!(url_problem("ws://host:0/").contains("port 0"));
    assert!(url_problem("ws://host/#frag").contains("fragment"));
    assert!(url_problem("ws://user:pw@host/").contains("credentials"));
    // Found by fuzzing: hosts the URL parser takes but HTTP does not.
    for url in ["ws://a{b/", "ws://`ost0/", "ws://a%7Bb/", "ws://a\"b/"] {
        assert!(
            url_problem(url).contains("not a valid HTTP request target"),
            "{url}: {}",
            url_problem(url)
        );
    }
}

#[test]
fn error_display_names_the_url_and_problem() {
    let e = Config::builder("http://x/")
        .build()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        e.contains("http://x/") && e.contains("unsupported scheme"),
        "{e}"
    );
}

fn value_field(b: tether_core::ConfigBuilder) -> &'static str {
    match b.build() {
        Err(ConfigError::InvalidValue { option, .. }) => option,
        other => panic!("expected InvalidValue, got {other:?}"),
    }
}

#[test]
fn rejects_inconsistent_values_naming_the_option() {
    let b = || Config::builder("ws://127.0.0.1:1/");
    assert_eq!(value_field(b().header("bad header", "x")), "headers");
    assert_eq!(value_field(b().header("x-ok", "line\nbreak")), "headers");
    assert_eq!(value_field(b().subprotocol("has space")), "subprotocols");
    assert_eq!(
        value_field(b().connect_timeout(Duration::ZERO)),
        "connect_timeout"
    );
    assert_eq!(
        value_field(b().backoff(Duration::from_secs(2), Duration::from_secs(1), 2.0)),
        "backoff_max"
    );
    assert_eq!(
        value_field(b().backoff(Duration::from_secs(1), Duration::from_secs(2), 0.5)),
        "backoff_multiplier"
    );
    assert_eq!(
        value_field(b().backoff(Duration::from_secs(1), Duration::from_secs(2), f64::NAN)),
        "backoff_multiplier"
    );
    assert_eq!(
        value_field(b().max_reconnect_attempts(Some(0))),
        "max_reconnect_attempts"
    );
    assert_eq!(
        value_field(b().heartbeat(Some(Duration::ZERO), Duration::from_secs(1))),
        "ping_interval"
    );
    assert_eq!(value_field(b().outbox_limits(0, 10)), "outbox_max_messages");
    assert_eq!(
        value_field(b().outbox_limits(10, 100).max_outbound_message_size(1000)),
        "max_message_size"
    );
    assert_eq!(
        value_field(b().overflow_policy(OverflowPolicy::Wait(Duration::ZERO))),
        "overflow_timeout"
    );
    assert_eq!(
        value_field(b().event_queue_capacity(0)),
        "event_queue_capacity"
    );
    assert_eq!(value_field(b().read_buffer_size(10)), "read_buffer_size");
}

#[test]
fn tls_ca_problems_are_build_errors() {
    let missing = Config::builder("wss://localhost/")
        .tls_ca_file("/nonexistent/ca.pem")
        .build();
    assert!(
        matches!(&missing, Err(ConfigError::Tls(m)) if m.contains("/nonexistent/ca.pem")),
        "{missing:?}"
    );
    let garbage = Config::builder("wss://localhost/")
        .tls_roots(tether_core::TlsRoots::CustomCa(b"not a pem".to_vec()))
        .build();
    assert!(matches!(garbage, Err(ConfigError::Tls(_))), "{garbage:?}");
}

#[test]
fn happy_eyeballs_delay_and_resolve_are_checked_naming_the_option() {
    let b = || Config::builder("ws://example.test:9001/");
    assert_eq!(
        value_field(b().happy_eyeballs_delay(Duration::from_millis(5))),
        "happy_eyeballs_delay"
    );
    assert_eq!(
        value_field(
            b().connect_timeout(Duration::from_secs(1))
                .happy_eyeballs_delay(Duration::from_secs(1))
        ),
        "happy_eyeballs_delay"
    );
    // The default delay is not held against a short connect timeout.
    b().connect_timeout(Duration::from_millis(100))
        .build()
        .expect("default delay with a short timeout");
    b().happy_eyeballs_delay(Duration::from_millis(100))
        .build()
        .expect("a valid delay");

    let problem = |builder: tether_core::ConfigBuilder| match builder.build() {
        Err(ConfigError::InvalidValue {
            option: "resolve",
            problem,
        }) => problem,
        other => panic!("expected a resolve error, got {other:?}"),
    };
    assert!(problem(b().resolve("other.test", ["127.0.0.1"])).contains("not the URL's host"));
    assert!(problem(b().resolve("example.test", Vec::<String>::new())).contains("no addresses"));
    assert!(problem(b().resolve("example.test", ["not-an-ip"])).contains("not-an-ip"));
    assert!(problem(b().resolve("example.test", ["127.0.0.1:0"])).contains("port 0"));
    // Names compare without case; IPs with or without a port, IPv6 with or without brackets.
    b().resolve(
        "EXAMPLE.test",
        ["127.0.0.1", "127.0.0.2:9002", "::1", "[::1]", "[::2]:9003"],
    )
    .build()
    .expect("valid resolve entries");
    Config::builder("ws://[::1]:9001/")
        .resolve("[::1]", ["127.0.0.1"])
        .build()
        .expect("an IPv6 URL host matches");
}

/// Config errors are the same text in every binding: they name options by their table ids and
/// speak no Rust (no `Protocol::Envelope`, `reconnect_enabled(false)`, `None`).
#[test]
fn config_errors_name_table_ids_in_binding_neutral_text() {
    let b = || Config::builder("ws://127.0.0.1:1/");
    let bad = [
        b().header("bad header", "x"),
        b().subprotocol("has space"),
        b().backoff(Duration::from_secs(2), Duration::from_secs(1), 2.0),
        b().backoff(Duration::ZERO, Duration::from_secs(1), 2.0),
        b().backoff(Duration::from_secs(1), Duration::from_secs(2), 0.5),
        b().max_reconnect_attempts(Some(0)),
        b().heartbeat(Some(Duration::ZERO), Duration::from_secs(1)),
        b().heartbeat(Some(Duration::from_secs(1)), Duration::ZERO),
        b().outbox_limits(0, 10),
        b().outbox_limits(10, 0),
        b().outbox_limits(10, 100).max_outbound_message_size(1000),
        b().overflow_policy(OverflowPolicy::Wait(Duration::ZERO)),
        b().auth_token("t"),
        b().app_ping(true),
        b().protocol(tether_core::Protocol::Envelope)
            .compression_threshold(Some(0)),
    ];
    for builder in bad {
        let e = builder.build().expect_err("invalid");
        let option = e.option().expect("names an option");
        assert!(
            tether_core::options::find(option).is_some(),
            "`{option}` is not an id of the option table: {e}"
        );
        let text = e.to_string();
        for rust in ["::", "(false)", "None", "Some("] {
            assert!(!text.contains(rust), "{text:?} speaks Rust ({rust})");
        }
        assert!(text.contains(&format!("`{option}`")), "{text}");
    }
}
