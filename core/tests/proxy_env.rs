//! The proxy from the environment, as curl reads it: `http_proxy` for ws://, `no_proxy`
//! exempts hosts, and an explicit `proxy` (also "none") wins. One test in its own binary,
//! because it sets the process environment.

mod common;
#[path = "proxy_support/mod.rs"]
mod proxy_support;

use common::{fast, Recorder};
use proxy_support::Daemon;
use tether_core::{OptionValue, State};
use tether_test_peers::Peer;

fn via(
    url: &str,
    b: impl FnOnce(tether_core::ConfigBuilder) -> tether_core::ConfigBuilder,
) -> Option<String> {
    let mut rec = Recorder::connect(b(fast(url)));
    rec.wait_state(State::Ready);
    rec.client.connection_info().and_then(|i| i.proxy)
}

#[test]
fn the_environment_names_the_proxy_unless_the_option_or_no_proxy_says_otherwise() {
    let proxy = Daemon::tinyproxy(None);
    let peer = Peer::start();
    let url = peer.url();
    // The only test in this binary: nothing else reads the environment meanwhile.
    std::env::set_var("http_proxy", format!("http://{}", proxy.addr()));
    std::env::remove_var("no_proxy");
    std::env::remove_var("NO_PROXY");
    assert_eq!(via(&url, |b| b), Some(proxy.addr()));
    let config = fast(&url).build().expect("valid");
    assert_eq!(
        config.get("proxy"),
        Some(OptionValue::Text(format!("http://{}", proxy.addr())))
    );

    assert_eq!(
        via(&url, |b| b.proxy("none")),
        None,
        "none ignores the environment"
    );

    std::env::set_var("no_proxy", "localhost,127.0.0.1");
    assert_eq!(via(&url, |b| b), None, "no_proxy exempts the host");
    // An explicit proxy is used whatever no_proxy says.
    let explicit = format!("http://{}", proxy.addr());
    assert_eq!(via(&url, |b| b.proxy(explicit)), Some(proxy.addr()));

    std::env::remove_var("no_proxy");
    std::env::set_var("http_proxy", "socks4://127.0.0.1:1");
    let err = fast(&url)
        .build()
        .expect_err("bad proxy in the environment");
    assert_eq!(err.option(), Some("proxy"));
    assert!(err.to_string().contains("http_proxy"), "{err}");
    std::env::remove_var("http_proxy");
    assert_eq!(via(&url, |b| b), None);
}
