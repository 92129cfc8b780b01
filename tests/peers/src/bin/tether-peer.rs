//! `tether-peer`: a [`tether_test_peers::Peer`] driven over stdin/stdout,
//! for cross-language tests.
//!
//! ```text
//! tether-peer [--port N] [--tls-cert FILE --tls-key FILE] [--tls-self-signed CA_OUT_FILE]
//!             [--mtls-client-out PREFIX] [--single-use-header NAME]
//! ```
//!
//! `--mtls-client-out PREFIX` (with TLS): require a client certificate from a new client CA,
//! and write a client identity that CA signed to `PREFIX.pem` (chain) and `PREFIX.key`.
//! `--single-use-header NAME`: accept each value of the request header `NAME` once (an
//! upgrade without it or with a value seen before gets 401), as `PeerOptions` says.
//!
//! Prints exactly one line `PORT <n>` once listening, then reads one command
//! per line from stdin and answers each with one line, `OK ...` or
//! `ERR <msg>`:
//!
//! | command | effect |
//! | --- | --- |
//! | `close <code> <reason...>` | close frame on every connection |
//! | `drop` | drop every TCP connection, no close frame |
//! | `stall on\|off` | stop / resume all socket I/O |
//! | `send-text <text...>` | text message to every connection |
//! | `send-invalid-utf8` | TEXT frame with invalid UTF-8 |
//! | `send-oversized <len>` | binary message of `len` bytes |
//! | `echo on\|off` | echo received messages or not |
//! | `reject <status>\|off` | answer upgrades with `status` / accept again |
//! | `stop` / `restart` | stop listening / listen again on the same port |
//! | `count` | `OK <connections_accepted> <received_count>` |
//! | `open` | `OK <open_connections>` |
//! | `pings` | `OK <pings_received>` |
//! | `last-close` | `OK <code> <reason...>` or `OK none` |
//! | `quit` | exit |
//!
//! The process also exits when stdin closes.

use std::process::ExitCode;

use tether_test_peers::stdin_commands::serve_stdin_commands;
use tether_test_peers::{client_identity, self_signed_identity, Peer, PeerOptions, TlsIdentity};

const USAGE: &str =
    "usage: tether-peer [--port N] [--tls-cert FILE --tls-key FILE] [--tls-self-signed CA_OUT_FILE] \
     [--mtls-client-out PREFIX] [--single-use-header NAME]";

struct Args {
    port: u16,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    self_signed_ca_out: Option<String>,
    mtls_client_out: Option<String>,
    single_use_header: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        tls_cert: None,
        tls_key: None,
        self_signed_ca_out: None,
        mtls_client_out: None,
        single_use_header: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--port" => {
                let v = value("--port")?;
                args.port = v.parse().map_err(|e| format!("bad --port {v:?}: {e}"))?;
            }
            "--tls-cert" => args.tls_cert = Some(value("--tls-cert")?),
            "--tls-key" => args.tls_key = Some(value("--tls-key")?),
            "--tls-self-signed" => args.self_signed_ca_out = Some(value("--tls-self-signed")?),
            "--mtls-client-out" => args.mtls_client_out = Some(value("--mtls-client-out")?),
            "--single-use-header" => args.single_use_header = Some(value("--single-use-header")?),
            "-h" | "--help" => return Err(USAGE.to_owned()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(args)
}

fn tls_identity(args: &Args) -> Result<Option<TlsIdentity>, String> {
    match (&args.tls_cert, &args.tls_key, &args.self_signed_ca_out) {
        (None, None, None) => Ok(None),
        (Some(cert), Some(key), None) => {
            let read = |path: &str| {
                std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))
            };
            Ok(Some(TlsIdentity {
                cert_chain_pem: read(cert)?,
                key_pem: read(key)?,
            }))
        }
        (None, None, Some(ca_out)) => {
            let (identity, ca_pem) = self_signed_identity();
            std::fs::write(ca_out, ca_pem).map_err(|e| format!("cannot write {ca_out}: {e}"))?;
            Ok(Some(identity))
        }
        _ => Err(format!(
            "use either --tls-cert with --tls-key, or --tls-self-signed\n{USAGE}"
        )),
    }
}

/// `--mtls-client-out PREFIX`: the client CA to require, after writing a client identity it
/// signed to `PREFIX.pem` and `PREFIX.key`.
fn client_ca(args: &Args) -> Result<Option<String>, String> {
    let Some(prefix) = &args.mtls_client_out else {
        return Ok(None);
    };
    let (client, ca) = client_identity();
    for (ext, pem) in [("pem", &client.cert_chain_pem), ("key", &client.key_pem)] {
        let path = format!("{prefix}.{ext}");
        std::fs::write(&path, pem).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    Ok(Some(ca))
}

fn on_off(arg: &str) -> Result<bool, String> {
    match arg.trim() {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("expected on|off, got {other:?}")),
    }
}

/// Executes one command line. `Ok(None)` means "quit".
fn execute(peer: &Peer, line: &str) -> Result<Option<String>, String> {
    let (command, rest) = line.split_once(' ').unwrap_or((line, ""));
    match command {
        "close" => {
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let code: u16 = code
                .parse()
                .map_err(|e| format!("bad close code {code:?}: {e}"))?;
            peer.close_all(code, reason);
        }
        "drop" => peer.drop_all(),
        "stall" => peer.set_stalled(on_off(rest)?),
        "send-text" => peer.send_text_all(rest),
        "send-invalid-utf8" => peer.send_invalid_utf8_all(),
        "send-oversized" => {
            let len: usize = rest
                .trim()
                .parse()
                .map_err(|e| format!("bad length {rest:?}: {e}"))?;
            peer.send_oversized_all(len);
        }
        "echo" => peer.set_echo(on_off(rest)?),
        "reject" => {
            let status = match rest.trim() {
                "off" => None,
                s => Some(
                    s.parse::<u16>()
                        .map_err(|e| format!("bad status {s:?}: {e}"))?,
                ),
            };
            peer.set_reject_upgrade(status);
        }
        "stop" => peer.stop(),
        "restart" => peer
            .try_restart()
            .map_err(|e| format!("restart failed: {e}"))?,
        "count" => {
            return Ok(Some(format!(
                "OK {} {}",
                peer.connections_accepted(),
                peer.received().len()
            )))
        }
        "open" => return Ok(Some(format!("OK {}", peer.open_connections()))),
        "pings" => return Ok(Some(format!("OK {}", peer.pings_received()))),
        "last-close" => {
            return Ok(Some(match peer.last_close_received() {
                Some((code, reason)) => format!("OK {code} {reason}"),
                None => "OK none".to_owned(),
            }))
        }
        "quit" => return Ok(None),
        "" => return Err("empty command".to_owned()),
        other => return Err(format!("unknown command {other:?}")),
    }
    Ok(Some("OK".to_owned()))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let tls = match tls_identity(&args) {
        Ok(tls) => tls,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let client_ca = match client_ca(&args) {
        Ok(ca) => ca,
        Err(msg) => {
            eprintln!("{msg}");
            return ExitCode::from(2);
        }
    };
    let peer = match Peer::try_start_with(PeerOptions {
        port: args.port,
        tls,
        client_ca,
        single_use_header: args.single_use_header.clone(),
        ..PeerOptions::default()
    }) {
        Ok(peer) => peer,
        Err(e) => {
            eprintln!("tether-peer: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };

    let served = serve_stdin_commands(peer.port(), |line| {
        execute(&peer, line.strip_suffix('\r').unwrap_or(line))
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}
