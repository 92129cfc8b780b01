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

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The venv's Python (TETHER_PYTHON overrides), if there is one.
pub fn python() -> Option<PathBuf> {
    std::env::var_os("TETHER_PYTHON")
        .map(PathBuf::from)
        .or_else(|| Some(workspace().join(".venv/bin/python")).filter(|p| p.exists()))
}

/// Panic when TETHER_REQUIRE_INTEROP is set (as `make test` does), else print a skip notice.
pub fn missing(what: &str) {
    assert!(
        std::env::var_os("TETHER_REQUIRE_INTEROP").is_none(),
        "TETHER_REQUIRE_INTEROP is set but {what} cannot run (run `make test`)"
    );
    eprintln!("SKIPPED {what}: not built or dependencies missing (run `make test`)");
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
            let mut c = Command::new(python()?);
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
        missing(&format!("the {kind:?} reference server"));
    }
    found
}

/// A test peer in a child process that prints `PORT <n>` and then answers one line per stdin
/// command with `OK ...` or `ERR ...` (the convention of every peer in tests/peers). Killed on
/// drop.
pub struct PeerProcess {
    name: String,
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    pub port: u16,
}

impl PeerProcess {
    /// Spawn `cmd` and read its `PORT` line.
    pub fn spawn(name: &str, mut cmd: Command) -> PeerProcess {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} failed to start: {e}"));
        let stdin = child.stdin.take().expect("stdin piped");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout piped"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("PORT line");
        let port = line
            .trim()
            .strip_prefix("PORT ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("{name}: bad first line {line:?}"));
        PeerProcess {
            name: name.to_string(),
            child,
            stdin,
            stdout,
            port,
        }
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
        assert!(line.starts_with("OK"), "{} {cmd}: {line}", self.name);
        line.trim_start_matches("OK").trim().to_string()
    }
}

impl PeerProcess {
    /// Kill with SIGKILL and reap it (`Child::kill` is SIGKILL on Unix).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PeerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running reference server.
pub struct RefServer {
    pub kind: Kind,
    process: PeerProcess,
    pub port: u16,
    /// The extra CLI arguments it was started with (for [`RefServer::kill_and_restart`]).
    args: Vec<String>,
}

impl RefServer {
    /// Start `kind` with extra CLI arguments; None if it cannot run here.
    pub fn start(kind: Kind, args: &[&str]) -> Option<RefServer> {
        let mut cmd = command(kind)?;
        cmd.args(args);
        let process = PeerProcess::spawn(&format!("{kind:?} reference server"), cmd);
        let port = process.port;
        Some(RefServer {
            kind,
            process,
            port,
            args: args.iter().map(|a| a.to_string()).collect(),
        })
    }

    /// Lose every session state the way a crash or a deploy does: kill the process with
    /// SIGKILL (no close frames, nothing saved) and start a fresh one, same arguments, on the
    /// same port (the servers listen with SO_REUSEADDR).
    pub fn kill_and_restart(&mut self) {
        self.process.kill();
        let mut cmd = command(self.kind).expect("it ran before");
        let port = self.port.to_string();
        cmd.args(&self.args).args(["--port", port.as_str()]);
        let name = format!("{:?} reference server (restarted)", self.kind);
        self.process = PeerProcess::spawn(&name, cmd);
        assert_eq!(self.process.port, self.port, "restarted on another port");
    }

    pub fn url(&self) -> String {
        self.process.url()
    }

    /// Send a control command; returns the answer after `OK` (panics on `ERR`).
    pub fn command(&mut self, cmd: &str) -> String {
        self.process.command(cmd)
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
