//! `tether-proxy`: a [`tether_test_peers::Proxy`] driven over stdin/stdout,
//! for cross-language tests.
//!
//! ```text
//! tether-proxy --upstream HOST:PORT
//! ```
//!
//! Listens on `127.0.0.1` (a free port) and relays every connection to
//! `HOST:PORT` (an IP address and port). Prints exactly one line
//! `PORT <n>` once listening, then reads one command per line from stdin
//! and answers each with one line, `OK ...` or `ERR <msg>`:
//!
//! | command | effect |
//! | --- | --- |
//! | `fault <fault>` | `set_fault` (syntax below) |
//! | `cut` / `reset` | `cut_all` / `reset_all` |
//! | `chaos <every_ms> <seed> <fault>...` | `start_chaos` |
//! | `stop-chaos` | `stop_chaos` |
//! | `current` | `OK <standing fault>` |
//! | `count` | `OK <connections_accepted> <open_connections>` |
//! | `bytes` | `OK <client_to_server> <server_to_client>` |
//! | `log` | `OK <fault> <fault>...` (every fault injected so far) |
//! | `quit` | exit |
//!
//! Faults: `pass`, `cut`, `reset`, `stall`, `stall:c2s`, `stall:s2c`,
//! `latency:MS`, `throttle:BYTES_PER_SEC`, `cut-after:BYTES`,
//! `slow-drip:BYTES:MS`, `refuse-new`, `blackhole-new`, `half-close`.
//!
//! The process also exits when stdin closes.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tether_test_peers::stdin_commands::serve_stdin_commands;
use tether_test_peers::{Fault, Proxy};

const USAGE: &str = "usage: tether-proxy --upstream HOST:PORT";

fn parse_args() -> Result<SocketAddr, String> {
    let mut upstream = None;
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--upstream" => {
                let v = it.next().ok_or("--upstream needs a value")?;
                let addr = v
                    .parse::<SocketAddr>()
                    .map_err(|e| format!("bad --upstream {v:?} (want IP:PORT): {e}"))?;
                upstream = Some(addr);
            }
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    upstream.ok_or_else(|| format!("--upstream is required\n{USAGE}"))
}

/// Executes one command line. `Ok(None)` means "quit".
fn execute(proxy: &Proxy, line: &str) -> Result<Option<String>, String> {
    let mut words = line.split_whitespace();
    let command = words.next().unwrap_or("");
    match command {
        "fault" => {
            let spec = words.next().ok_or("fault needs a fault")?;
            if words.next().is_some() {
                return Err("fault takes exactly one fault".to_owned());
            }
            proxy.set_fault(spec.parse()?);
        }
        "cut" => proxy.cut_all(),
        "reset" => proxy.reset_all(),
        "chaos" => {
            let every = words.next().ok_or("chaos needs <every_ms>")?;
            let every: u64 = every
                .parse()
                .map_err(|e| format!("bad period {every:?}: {e}"))?;
            let seed = words.next().ok_or("chaos needs <seed>")?;
            let seed: u64 = seed
                .parse()
                .map_err(|e| format!("bad seed {seed:?}: {e}"))?;
            let faults = words
                .map(str::parse::<Fault>)
                .collect::<Result<Vec<_>, _>>()?;
            if every == 0 || faults.is_empty() {
                return Err("chaos needs a non-zero period and at least one fault".to_owned());
            }
            proxy.start_chaos(Duration::from_millis(every), faults, seed);
        }
        "stop-chaos" => proxy.stop_chaos(),
        "current" => return Ok(Some(format!("OK {}", proxy.fault()))),
        "count" => {
            return Ok(Some(format!(
                "OK {} {}",
                proxy.connections_accepted(),
                proxy.open_connections()
            )))
        }
        "bytes" => {
            let (up, down) = proxy.bytes_forwarded();
            return Ok(Some(format!("OK {up} {down}")));
        }
        "log" => {
            let mut answer = "OK".to_owned();
            for (_, fault) in proxy.faults_injected() {
                answer.push(' ');
                answer.push_str(&fault.to_string());
            }
            return Ok(Some(answer));
        }
        "quit" => return Ok(None),
        "" => return Err("empty command".to_owned()),
        other => return Err(format!("unknown command {other:?}")),
    }
    Ok(Some("OK".to_owned()))
}

fn main() -> ExitCode {
    let upstream = match parse_args() {
        Ok(upstream) => upstream,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let proxy = match Proxy::try_start(upstream) {
        Ok(proxy) => proxy,
        Err(e) => {
            eprintln!("tether-proxy: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };

    match serve_stdin_commands(proxy.port(), |line| execute(&proxy, line.trim())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
