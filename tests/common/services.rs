//! Services a test starts for itself: a `redis-server`, and the server binary as a
//! process of its own (to kill it, or to send it signals).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `redis-server` of the test's own on a free port, without persistence.
pub struct OwnRedis {
    child: Option<Child>,
}

impl OwnRedis {
    pub fn start(port: u16) -> Self {
        Self::start_with(port, &["--port".into(), port.to_string().into()])
    }

    /// Starts one with `listen` saying where (plain `--port`, or `--tls-port` and its
    /// certificate), bound to 127.0.0.1 without persistence; `port` is where it answers.
    pub fn start_with(port: u16, listen: &[std::ffi::OsString]) -> Self {
        let child = Command::new("redis-server")
            .args(listen)
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let mut redis = Self { child: Some(child) };
        if !wait_listening(port) {
            redis.stop();
            panic!("redis-server did not start");
        }
        redis
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits up to 10 s until something accepts connections on 127.0.0.1:`port`.
pub fn wait_listening(port: u16) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// A child process killed when dropped, also by a panicking test.
pub struct KillOnDrop(pub Option<Child>);

impl KillOnDrop {
    pub fn into_inner(mut self) -> Child {
        self.0.take().expect("a child")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The server binary in a process of its own.
pub struct ServerProcess {
    pub child: Child,
    pub port: u16,
    pub data: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `bypass-idp serve` on a free port with its own data folder and `env` on top,
    /// and waits until it answers.
    pub fn spawn(env: &[(&str, &str)]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Self::start(port, data.path(), env);
        Self { child, port, data }
    }

    /// Starts it again on the same port and folder (after a kill).
    pub fn restart(&mut self, env: &[(&str, &str)]) {
        self.child = Self::start(self.port, self.data.path(), env);
    }

    fn start(port: u16, data: &std::path::Path, env: &[(&str, &str)]) -> Child {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bypass-idp"));
        command
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("BYPASS_IDP_LISTEN", format!("127.0.0.1:{port}"))
            .env("BYPASS_IDP_DATA_DIR", data)
            .env("BYPASS_IDP_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in env {
            command.env(k, v);
        }
        let child = KillOnDrop(Some(command.spawn().unwrap()));
        wait_answering(port);
        child.into_inner()
    }
}

/// Waits until a server on `port` answers `/healthz` (not merely accepts: the port is bound
/// before start-up ends).
pub fn wait_answering(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answered = std::net::TcpStream::connect(("127.0.0.1", port)).is_ok_and(|mut s| {
            use std::io::{Read, Write};
            let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
            let mut buf = [0u8; 12];
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .is_ok()
                && s.read_exact(&mut buf).is_ok()
                && buf.starts_with(b"HTTP/1.1 200")
        });
        if answered {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
