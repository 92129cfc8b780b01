//! The internal runtime's worker count is configurable before the first client and fixed after.
//! (Its own test binary, so it is the first to touch the runtime in its process.)

use std::time::Duration;

use tether_core::runtime::{set_worker_threads, RuntimeError};
use tether_core::{Client, Config, EventDelivery};

fn runtime_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .map(|tasks| {
            tasks
                .filter_map(|t| t.ok())
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .map(|c| c.trim() == "tether-rt")
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn worker_count_is_set_before_start_and_fixed_after() {
    assert_eq!(set_worker_threads(0), Err(RuntimeError::InvalidCount(0)));
    assert_eq!(set_worker_threads(2), Ok(()));
    let config = Config::builder("ws://127.0.0.1:9/")
        .reconnect_enabled(false)
        .build()
        .expect("config");
    let client = Client::connect(config, EventDelivery::Poll).expect("start");
    assert_eq!(set_worker_threads(3), Err(RuntimeError::AlreadyStarted(2)));
    if cfg!(target_os = "linux") {
        // A new thread names itself once it runs, so wait for the names to appear.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while runtime_threads() < 2 && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(runtime_threads(), 2, "two workers named tether-rt");
    }
    assert!(
        client.wait_closed(Duration::from_secs(10)),
        "port 9 refuses; no reconnect: closed"
    );
}
