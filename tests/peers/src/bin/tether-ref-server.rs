//! `tether-ref-server`: the Rust Tether protocol reference server
//! ([`tether_test_peers::tether_server`]), with the same command line and stdin control channel
//! as `tests/peers/python/tether_server.py` and `tests/peers/node/tether_server.js`.
//!
//! ```text
//! tether-ref-server [--port N] [--token T] [--key K] [--compression-threshold N] [--max-size N]
//!                   [--rev 1|2]
//! ```
//!
//! Prints `PORT <n>` once listening on 127.0.0.1, then answers each stdin line with one line,
//! `OK ...` or `ERR ...`; exits on `quit` or when stdin closes. Commands: see
//! `tests/peers/README.md`.

use std::process::ExitCode;

use tether_test_peers::stdin_commands::serve_stdin_commands;
use tether_test_peers::tether_server::{Options, Server};

const USAGE: &str = "usage: tether-ref-server [--port N] [--token T] [--key K] \
                     [--compression-threshold N] [--max-size N] [--rev 1|2]";

fn parse_args() -> Result<Options, String> {
    let mut opts = Options::default();
    let mut args = std::env::args().skip(1);
    while let Some(name) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{name} needs a value\n{USAGE}"))
        };
        let number = |v: String| v.parse::<usize>().map_err(|e| format!("bad {v:?}: {e}"));
        match name.as_str() {
            "--port" => {
                opts.port = u16::try_from(number(value()?)?).map_err(|e| format!("--port: {e}"))?
            }
            "--token" => opts.token = Some(value()?),
            "--key" => opts.key = Some(value()?),
            "--compression-threshold" => opts.compression_threshold = Some(number(value()?)?),
            "--max-size" => opts.max_size = number(value()?)?,
            "--rev" => {
                opts.rev = match value()?.as_str() {
                    "1" => 1,
                    "2" => 2,
                    other => return Err(format!("--rev: {other:?} is not 1 or 2\n{USAGE}")),
                }
            }
            _ => return Err(format!("unknown argument {name:?}\n{USAGE}")),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("tether-ref-server: cannot start a runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match runtime.block_on(Server::start(opts)) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("tether-ref-server: cannot listen: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Commands run one at a time, on this thread; the server runs on the runtime's workers.
    // A failure to print the PORT line is not fatal here (unlike tether-peer): the process
    // just ends, with the same status as after `quit`.
    let _ = serve_stdin_commands(server.port(), |line| {
        let line = line.trim_end_matches('\r');
        let answer = runtime.block_on(server.command(line));
        // `quit` answers `OK` (printed by serve_stdin_commands) and ends the loop.
        Ok((line != "quit").then_some(answer))
    });
    drop(server);
    runtime.shutdown_background();
    ExitCode::SUCCESS
}
