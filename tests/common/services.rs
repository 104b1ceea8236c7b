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

/// A three-node Redis Cluster of the test's own on 127.0.0.1 (`--cluster-enabled yes`, no
/// replicas, no persistence), its slots spread by `redis-cli --cluster create`.
pub struct OwnCluster {
    pub ports: Vec<u16>,
    nodes: Vec<OwnRedis>,
    _dir: tempfile::TempDir,
}

impl OwnCluster {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut ports = Vec::new();
        // Each node also listens on its port + 10000 (the cluster bus).
        while ports.len() < 3 {
            let port = free_port();
            let bus_free =
                port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok();
            if bus_free && !ports.contains(&port) {
                ports.push(port);
            }
        }
        let nodes = ports
            .iter()
            .map(|port| {
                let conf = dir.path().join(format!("nodes-{port}.conf"));
                OwnRedis::start_with(
                    *port,
                    &[
                        "--port".into(),
                        port.to_string().into(),
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-config-file".into(),
                        conf.into_os_string(),
                        "--dir".into(),
                        dir.path().as_os_str().to_owned(),
                    ],
                )
            })
            .collect();
        let addresses: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli is installed");
        assert!(created.success(), "redis-cli --cluster create failed");
        let cluster = Self {
            ports,
            nodes,
            _dir: dir,
        };
        // The nodes agree on the slots within a few seconds.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cluster
            .ports
            .iter()
            .all(|p| cluster.info(*p).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        cluster
    }

    /// `REDIS_URL` for the cluster: every node, comma-separated.
    pub fn url(&self) -> String {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn info(&self, port: u16) -> String {
        self.cli(port, &["cluster", "info"])
    }

    /// `redis-cli -p port args…`: what it printed.
    pub fn cli(&self, port: u16, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The keys each node holds.
    pub fn keys_per_node(&self) -> Vec<Vec<String>> {
        self.ports
            .iter()
            .map(|p| {
                self.cli(*p, &["--scan"])
                    .lines()
                    .map(str::to_owned)
                    .collect()
            })
            .collect()
    }

    /// Stops the cluster's nodes.
    pub fn stop(&mut self) {
        for node in &mut self.nodes {
            node.stop();
        }
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
