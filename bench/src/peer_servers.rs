//! The peers of `sluice-bench peers` as local processes: NATS JetStream, Redis and RabbitMQ
//! from their Debian packages (`scripts/bench.sh` installs them), each started here on
//! 127.0.0.1 with a fresh port and a data folder in the run's temp folder, in its own process
//! group, and killed by that group's id when dropped. Never a system service.

use crate::http_bench::free_port;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A peer server process (and its process group).
pub struct Server {
    children: Vec<Child>,
    pub port: u16,
    pub log: PathBuf,
    /// What runs, for the table's notes.
    pub version: String,
}

impl Server {
    /// The process whose tree is measured (the last one started: epmd comes before RabbitMQ).
    pub fn pid(&self) -> u32 {
        self.children.last().map(|c| c.id()).unwrap_or(0)
    }

    pub fn exited(&mut self) -> Option<String> {
        for c in &mut self.children {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(format!(
                    "{status}; last lines of {}:\n    {}",
                    self.log.display(),
                    tail(&self.log, 8)
                ));
            }
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for c in self.children.iter_mut().rev() {
            // Each child leads its own process group: end the group (wrapper scripts' children
            // too), then the child itself.
            let _ = Command::new("kill")
                .args(["-s", "KILL", "--"])
                .arg(format!("-{}", c.id()))
                .stderr(Stdio::null())
                .status();
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n    ")
}

/// `PATH` lookup, plus the Debian locations that are not on a plain user's `PATH`.
pub fn find_binary(name: &str, extra: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .chain(extra.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

fn version_of(bin: &Path, arg: &str) -> String {
    Command::new(bin)
        .arg(arg)
        .output()
        .ok()
        .map(|o| {
            let s = String::from_utf8_lossy(&o.stdout).to_string()
                + &String::from_utf8_lossy(&o.stderr);
            s.lines().next().unwrap_or_default().trim().to_string()
        })
        .unwrap_or_default()
}

fn spawn(mut cmd: Command, log: &Path) -> Result<Child, String> {
    let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let file2 = file.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(file)
        .stderr(file2)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub async fn wait_port(server: &mut Server, limit: Duration) -> Result<Duration, String> {
    let start = Instant::now();
    loop {
        if let Some(e) = server.exited() {
            return Err(format!("the server exited: {e}"));
        }
        if tokio::net::TcpStream::connect(("127.0.0.1", server.port))
            .await
            .is_ok()
        {
            return Ok(start.elapsed());
        }
        if start.elapsed() > limit {
            return Err(format!(
                "nothing listens on 127.0.0.1:{} after {} s:\n    {}",
                server.port,
                limit.as_secs(),
                tail(&server.log, 8)
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `nats-server` with JetStream on file storage in `dir`.
pub fn nats(dir: &Path) -> Result<Server, String> {
    let bin = find_binary("nats-server", &["/usr/sbin/nats-server"])
        .ok_or("no nats-server binary (apt-get install nats-server; scripts/bench.sh does)")?;
    let port = free_port().map_err(|e| e.to_string())?;
    // A folder of its own per start: a system may be listed more than once (paired rounds).
    let data = dir.join(format!("nats-{port}"));
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&bin);
    cmd.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(&data);
    let log = dir.join(format!("nats-{port}.log"));
    let child = spawn(cmd, &log)?;
    Ok(Server {
        children: vec![child],
        port,
        log,
        version: format!("nats-server {}", version_of(&bin, "--version")),
    })
}

/// `redis-server` with an append-only file synced `always` or `everysec`, no RDB snapshots.
pub fn redis(dir: &Path, appendfsync: &str) -> Result<Server, String> {
    let bin = find_binary("redis-server", &[])
        .ok_or("no redis-server binary (apt-get install redis-server; scripts/bench.sh does)")?;
    let port = free_port().map_err(|e| e.to_string())?;
    let data = dir.join(format!("redis-{appendfsync}"));
    std::fs::create_dir_all(&data).map_err(|e| e.to_string())?;
    let mut cmd = Command::new(&bin);
    cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--dir"])
        .arg(&data)
        .args([
            "--appendonly",
            "yes",
            "--appendfsync",
            appendfsync,
            "--save",
            "",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]);
    let log = dir.join(format!("redis-{appendfsync}.log"));
    let child = spawn(cmd, &log)?;
    Ok(Server {
        children: vec![child],
        port,
        log,
        version: version_of(&bin, "--version"),
    })
}

/// RabbitMQ (the Debian package's `rabbitmq-server`, Erlang) with its own `epmd`, node name,
/// ports and folders, all on 127.0.0.1, no plugins.
pub fn rabbitmq(dir: &Path) -> Result<Server, String> {
    // The server script itself: Debian's /usr/sbin/rabbitmq-server is a wrapper that switches to
    // the `rabbitmq` user, who cannot write into this run's (root-only) temp folder.
    let direct = PathBuf::from("/usr/lib/rabbitmq/bin/rabbitmq-server");
    let bin = if direct.is_file() {
        direct
    } else {
        find_binary("rabbitmq-server", &[])
            .ok_or("no rabbitmq-server (apt-get install rabbitmq-server; scripts/bench.sh does)")?
    };
    let epmd_bin = find_binary("epmd", &[]).ok_or("no epmd (comes with erlang-base)")?;
    let epmd_port = free_port().map_err(|e| e.to_string())?;
    let port = free_port().map_err(|e| e.to_string())?;
    let dist_port = free_port().map_err(|e| e.to_string())?;
    let home = dir.join("rabbitmq");
    std::fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    for sub in ["mnesia", "log"] {
        std::fs::create_dir_all(home.join(sub)).map_err(|e| e.to_string())?;
    }
    let plugins = home.join("enabled_plugins");
    std::fs::write(&plugins, "[].\n").map_err(|e| e.to_string())?;

    let mut epmd = Command::new(&epmd_bin);
    epmd.args(["-address", "127.0.0.1", "-port", &epmd_port.to_string()]);
    let epmd = spawn(epmd, &dir.join("epmd.log"))?;

    let mut cmd = Command::new(&bin);
    cmd.env("HOME", &home)
        .env("ERL_EPMD_PORT", epmd_port.to_string())
        .env("RABBITMQ_NODENAME", format!("bench{port}@localhost"))
        .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
        .env("RABBITMQ_NODE_PORT", port.to_string())
        .env("RABBITMQ_DIST_PORT", dist_port.to_string())
        .env(
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
            "-kernel inet_dist_use_interface {127,0,0,1}",
        )
        .env("RABBITMQ_MNESIA_BASE", home.join("mnesia"))
        .env("RABBITMQ_LOG_BASE", home.join("log"))
        .env("RABBITMQ_ENABLED_PLUGINS_FILE", &plugins)
        .env("RABBITMQ_CONFIG_FILE", home.join("rabbitmq"));
    let log = dir.join("rabbitmq.log");
    let child = spawn(cmd, &log)?;
    let version = std::fs::read_dir("/usr/lib/rabbitmq/lib")
        .ok()
        .and_then(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().to_string())
                .find(|n| n.starts_with("rabbitmq_server-"))
        })
        .map(|n| n.replace("rabbitmq_server-", "rabbitmq-server "))
        .unwrap_or_else(|| "rabbitmq-server".into());
    Ok(Server {
        children: vec![epmd, child],
        port,
        log,
        version,
    })
}
