//! Real proxies for the proxy tests: Debian's `tinyproxy` (HTTP CONNECT, `BasicAuth`) and
//! `microsocks` (SOCKS5, `-u`/`-P`), each started on a free port with its own config in a
//! temporary directory and killed when dropped. `make test` installs them (`make proxies`);
//! a missing one fails the test.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A proxy daemon started by a test.
pub struct Daemon {
    child: Child,
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: PathBuf,
    name: &'static str,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn binary(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = PathBuf::from(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!("{name} is not installed: `make proxies` installs it (apt-get install {name})");
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "tether-{name}-{}-{}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

impl Daemon {
    /// tinyproxy on a free port; with `auth`, only that user and password get through.
    pub fn tinyproxy(auth: Option<(&str, &str)>) -> Daemon {
        let bin = binary("tinyproxy");
        let dir = temp_dir("tinyproxy");
        let port = free_port();
        let mut conf = format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 30\nMaxClients 64\nLogLevel Info\n\
             PidFile \"{}\"\n",
            dir.join("pid").display()
        );
        if let Some((user, pass)) = auth {
            conf += &format!("BasicAuth {user} {pass}\n");
        }
        let conf_path = dir.join("tinyproxy.conf");
        std::fs::write(&conf_path, conf).expect("write tinyproxy.conf");
        let mut cmd = Command::new(bin);
        cmd.arg("-d").arg("-c").arg(&conf_path);
        Daemon::spawn("tinyproxy", cmd, dir, port)
    }

    /// microsocks on a free port; with `auth`, RFC 1929 username/password is required.
    pub fn microsocks(auth: Option<(&str, &str)>) -> Daemon {
        let bin = binary("microsocks");
        let dir = temp_dir("microsocks");
        let port = free_port();
        let mut cmd = Command::new(bin);
        cmd.args(["-i", "127.0.0.1", "-p", &port.to_string()]);
        if let Some((user, pass)) = auth {
            cmd.args(["-u", user, "-P", pass]);
        }
        Daemon::spawn("microsocks", cmd, dir, port)
    }

    fn spawn(name: &'static str, mut cmd: Command, dir: PathBuf, port: u16) -> Daemon {
        let log = std::fs::File::create(dir.join("log")).expect("log file");
        let err = log.try_clone().expect("log file");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        let mut daemon = Daemon {
            child,
            port,
            dir,
            name,
        };
        daemon.wait_listening();
        daemon
    }

    /// A daemon has no readiness signal: poll its port (bounded), and fail at once if it
    /// exited.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}: {}", self.name, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "{} does not listen on {} after 10 s: {}",
                self.name,
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// `127.0.0.1:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A loopback address where TCP connects hang (a listener with a full backlog that never
/// accepts), as in `core/tests/addresses.rs`: for Happy Eyeballs over a proxy's addresses.
pub struct BlackHole {
    /// The address that hangs.
    pub addr: std::net::SocketAddr,
    _fill: Vec<TcpStream>,
    _listener: tokio::net::TcpListener,
    _runtime: tokio::runtime::Runtime,
}

impl BlackHole {
    /// Fill the backlog until a connect hangs (proving the black hole).
    pub fn start() -> BlackHole {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .expect("runtime");
        let listener = {
            let _enter = runtime.enter();
            let socket = tokio::net::TcpSocket::new_v4().expect("socket");
            socket
                .bind("127.0.0.1:0".parse().expect("addr"))
                .expect("bind");
            socket.listen(0).expect("listen")
        };
        let addr = listener.local_addr().expect("local addr");
        let mut fill = Vec::new();
        for _ in 0..16 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(stream) => fill.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return BlackHole {
                        addr,
                        _fill: fill,
                        _listener: listener,
                        _runtime: runtime,
                    }
                }
                Err(e) => panic!("filling the black hole's backlog: {e}"),
            }
        }
        panic!("the backlog of {addr} never filled: connects to it do not hang on this system");
    }
}
