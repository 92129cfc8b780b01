//! Spawning the protocol reference servers (Rust, Python `websockets`, Node `ws`) that live in
//! tests/peers, and talking to their stdin control channel.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// Which reference server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Rust,
    Python,
    Node,
}

pub const ALL: [Kind; 3] = [Kind::Rust, Kind::Python, Kind::Node];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The command that runs `kind`, or None when its runtime or dependencies are missing (then the
/// test skips it, unless TETHER_REQUIRE_INTEROP is set as `make test` does).
fn command(kind: Kind) -> Option<Command> {
    let found = match kind {
        Kind::Rust => {
            // Built next to this test binary by `cargo test --workspace` / `make test`.
            let exe = std::env::current_exe().ok()?;
            let bin = exe.parent()?.parent()?.join("tether-ref-server");
            bin.exists().then(|| Command::new(bin))
        }
        Kind::Python => {
            let python = std::env::var_os("TETHER_PYTHON")
                .map(PathBuf::from)
                .or_else(|| Some(workspace().join(".venv/bin/python")).filter(|p| p.exists()))?;
            let mut c = Command::new(python);
            c.arg(workspace().join("tests/peers/python/tether_server.py"));
            Some(c)
        }
        Kind::Node => {
            let dir = workspace().join("tests/peers/node");
            dir.join("node_modules/ws").exists().then(|| {
                let mut c = Command::new("node");
                c.arg(dir.join("tether_server.js"));
                c
            })
        }
    };
    if found.is_none() {
        assert!(
            std::env::var_os("TETHER_REQUIRE_INTEROP").is_none(),
            "TETHER_REQUIRE_INTEROP is set but the {kind:?} reference server cannot run (run `make test`)"
        );
        eprintln!("SKIPPED {kind:?} reference server: not built or dependencies missing (run `make test`)");
    }
    found
}

/// A running reference server, killed on drop.
pub struct RefServer {
    pub kind: Kind,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub port: u16,
}

impl RefServer {
    /// Start `kind` with extra CLI arguments; None if it cannot run here.
    pub fn start(kind: Kind, args: &[&str]) -> Option<RefServer> {
        let mut cmd = command(kind)?;
        let mut child = cmd
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{kind:?} reference server failed to start: {e}"));
        let stdin = child.stdin.take().expect("stdin piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("PORT line");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{kind:?}: bad first line {line:?}"));
        Some(RefServer {
            kind,
            child,
            stdin,
            stdout,
            port,
        })
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/", self.port)
    }

    /// Send a control command; returns the answer after `OK` (panics on `ERR`).
    pub fn command(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").expect("write command");
        self.stdin.flush().expect("flush command");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("answer");
        let line = line.trim();
        assert!(line.starts_with("OK"), "{:?} {cmd}: {line}", self.kind);
        line.trim_start_matches("OK").trim().to_string()
    }

    /// The `stats` JSON.
    pub fn stats(&mut self) -> serde_json::Value {
        serde_json::from_str(&self.command("stats")).expect("stats is JSON")
    }

    /// Payloads delivered to the server application, per session, in order.
    pub fn delivered(&mut self, sid: &str) -> Vec<String> {
        let path = std::env::temp_dir().join(format!(
            "tether-dump-{}-{:?}-{}.json",
            std::process::id(),
            self.kind,
            self.port
        ));
        self.command(&format!("dump {}", path.display()));
        let text = std::fs::read_to_string(&path).expect("dump file");
        let _ = std::fs::remove_file(&path);
        let json: serde_json::Value = serde_json::from_str(&text).expect("dump is JSON");
        json.get(sid)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Drop for RefServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
