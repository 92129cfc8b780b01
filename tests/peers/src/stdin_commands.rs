//! The stdin/stdout control channel shared by the `tether-peer`,
//! `tether-proxy` and `tether-ref-server` binaries, so that tests in any
//! language drive all of them the same way.

use std::io::{self, BufRead, Write};

/// Serves the line protocol of the test binaries on stdin/stdout.
///
/// Prints exactly one line `PORT <port>`, then reads one command per line
/// from stdin and answers each with exactly one line:
///
/// - `Ok(Some(answer))`: `answer` is printed as is (it should start with
///   `OK`);
/// - `Ok(None)`: the command was "quit": `OK` is printed and this returns;
/// - `Err(msg)`: `ERR <msg>` is printed, with any newline in `msg` replaced
///   by a space so that the answer stays one line.
///
/// `execute` gets each line without its line ending (`\n` or `\r\n`) and
/// trims it as its protocol wants. Every answer is flushed at once, because
/// the driving test waits for it. Returns `Ok(())` when stdin closes (or
/// cannot be read), after "quit", or when an answer cannot be written (the
/// reader is gone); returns the error if the `PORT` line cannot be written.
pub fn serve_stdin_commands(
    port: u16,
    mut execute: impl FnMut(&str) -> Result<Option<String>, String>,
) -> io::Result<()> {
    write_line(&format!("PORT {port}"))?;
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = match execute(&line) {
            Ok(Some(answer)) => answer,
            Ok(None) => {
                let _ = write_line("OK");
                break;
            }
            Err(msg) => format!("ERR {}", msg.replace('\n', " ")),
        };
        if write_line(&answer).is_err() {
            break;
        }
    }
    Ok(())
}

/// Writes one line to stdout and flushes it.
fn write_line(line: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush())
}
