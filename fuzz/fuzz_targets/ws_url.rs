//! The URL parser: `parse_ws_url` and `Config::builder(url).build()`.
//!
//! * neither panics, and they agree (with default options only the URL can be refused);
//! * a refusal names the problem;
//! * an accepted URL is what the config holds, parses again to itself, and can be turned into
//!   the HTTP upgrade request the connector builds: "validated up front" means no URL that
//!   `build()` accepts fails later for being malformed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether_core::{parse_ws_url, Config, ConfigError};
use tungstenite::client::IntoClientRequest;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_ws_url(input);
    let built = Config::builder(input).build();
    assert_eq!(
        parsed.as_ref().err(),
        built.as_ref().err(),
        "parse_ws_url and build disagree on {input:?}"
    );
    match (parsed, built) {
        (Ok(url), Ok(config)) => {
            assert_eq!(config.url(), url.as_str());
            let again = parse_ws_url(url.as_str())
                .unwrap_or_else(|e| panic!("{url} was accepted but does not parse again: {e}"));
            assert_eq!(again, url, "parsing is not idempotent");
            assert!(matches!(url.scheme(), "ws" | "wss"));
            assert!(url.host_str().is_some_and(|h| !h.is_empty()));
            if let Err(e) = url.as_str().into_client_request() {
                panic!("{input:?} passed validation as {url} but cannot become an upgrade request: {e}");
            }
        }
        (Err(ConfigError::InvalidUrl { url, problem }), _) => {
            assert_eq!(url, input);
            assert!(!problem.is_empty());
        }
        (Err(other), _) => panic!("a URL problem reported as {other:?}"),
        (Ok(_), Err(_)) => unreachable!("compared above"),
    }
});
