use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// How long a service may take from spawn to SERVING (it migrates its store first).
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Path of a workspace binary (`inventory-pg`, `coordinator`, ...) next to the running
/// test executable: `target/<profile>/<name>`. Cargo builds a package's binary for
/// tests only when that package has integration tests, so `make test-only` runs
/// `cargo build --workspace --all-targets` first; the notifier has none of its own.
pub fn service_binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the running executable has a path");
    // A command-line tool in target/<profile>/ finds its siblings there; a test binary
    // in target/<profile>/deps/ finds them one folder up.
    let dir = exe.parent().expect("an executable lives in a folder");
    if dir.join(name).exists() {
        return dir.join(name);
    }
    dir.parent()
        .map(|profile| profile.join(name))
        .filter(|path| path.exists())
        .unwrap_or_else(|| Path::new(dir).join(name))
}

/// A service binary running as a child process, killed when dropped.
pub struct ServiceProcess {
    binary: PathBuf,
    args: Vec<String>,
    envs: Vec<(String, String)>,
    workdir: tempfile::TempDir,
    addr: SocketAddr,
    metrics_addr: SocketAddr,
    child: Option<Child>,
    starts: u32,
    /// The host it runs on (a network namespace), or the machine's own network.
    host: Option<crate::netns::Host>,
}

impl ServiceProcess {
    /// Spawns `binary` listening on `127.0.0.1:0` with `args` and `envs`, and waits until
    /// its health check answers SERVING.
    pub async fn start(
        binary: impl Into<PathBuf>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), binary, args, envs).await
    }

    /// The same on `addr`: a port chosen beforehand ([`crate::free_port`]), for a service
    /// whose address another must know before it starts (the coordinator, which the
    /// waiting room asks about purchases, and which calls the room).
    pub async fn start_on(
        addr: SocketAddr,
        binary: impl Into<PathBuf>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut process = Self {
            binary: binary.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            workdir: tempfile::tempdir().context("creating the process work dir")?,
            addr,
            metrics_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            child: None,
            starts: 0,
            host: None,
        };
        process.spawn_and_wait().await?;
        Ok(process)
    }

    /// The same on a host of its own: run with `ip netns exec` in `host`'s namespace (the
    /// pid is the service's), listening on `host`'s address and `port` (0: any), its
    /// metrics too.
    pub async fn start_on_host(
        host: &crate::netns::Host,
        port: u16,
        binary: impl Into<PathBuf>,
        args: &[&str],
        envs: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut process = Self {
            binary: binary.into(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            envs: envs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            workdir: tempfile::tempdir().context("creating the process work dir")?,
            addr: SocketAddr::from((host.addr, port)),
            metrics_addr: SocketAddr::from((host.addr, 0)),
            child: None,
            starts: 0,
            host: Some(host.clone()),
        };
        process.spawn_and_wait().await?;
        Ok(process)
    }

    /// The host it runs on, when it has one of its own.
    pub fn host(&self) -> Option<&crate::netns::Host> {
        self.host.as_ref()
    }

    /// The address the service listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, for tonic clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://<addr>/metrics`: the service's Prometheus metrics.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.metrics_addr)
    }

    /// The sum of a counter's series in the service's metrics (every label set): what a
    /// test waits on to know that something it cannot see (a late call) has happened.
    pub async fn metric_total(&self, name: &str) -> anyhow::Result<u64> {
        let text = reqwest::get(self.metrics_url()).await?.text().await?;
        Ok(text
            .lines()
            .filter(|line| {
                line.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>() as u64)
    }

    /// The process id of the running child.
    pub fn pid(&self) -> anyhow::Result<Pid> {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .context("the service is not running")?;
        Ok(Pid::from_raw(
            i32::try_from(pid).context("pid out of range")?,
        ))
    }

    /// The service's log (stderr) of every start so far, for failure messages.
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|n| std::fs::read_to_string(self.log_path(n)).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n--- restart ---\n")
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub async fn terminate(&mut self) -> anyhow::Result<ExitStatus> {
        self.signal(Signal::SIGTERM)?;
        self.wait_exit(Duration::from_secs(60)).await
    }

    /// Sends SIGKILL and waits for the process to exit.
    pub async fn kill(&mut self) -> anyhow::Result<ExitStatus> {
        self.signal(Signal::SIGKILL)?;
        self.wait_exit(Duration::from_secs(10)).await
    }

    /// Freezes the process (SIGSTOP): it keeps its sockets and locks but does nothing.
    /// Returns once the kernel reports it stopped (state `T`), so a caller's next probe
    /// never races the signal.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal(Signal::SIGSTOP)?;
        let stat = format!("/proc/{}/stat", self.pid()?);
        for _ in 0..200 {
            let state = std::fs::read_to_string(&stat)
                .ok()
                .and_then(|text| text.rsplit_once(") ").map(|(_, rest)| rest.chars().next()))
                .flatten();
            if state == Some('T') {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        bail!("the process did not stop within 1 s of SIGSTOP")
    }

    /// Thaws a paused process (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal(Signal::SIGCONT)
    }

    /// Sends `signal` to the child.
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        signal::kill(self.pid()?, signal).with_context(|| format!("sending {signal}"))
    }

    /// Waits up to `timeout` for the child to exit and returns its status.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let child = self.child.as_mut().context("the service is not running")?;
        let status = tokio::time::timeout(timeout, child.wait())
            .await
            .with_context(|| format!("the service did not exit within {timeout:?}"))?
            .context("waiting for the service")?;
        self.child = None;
        Ok(status)
    }

    /// Starts the service again with the same arguments, address and data, after it
    /// exited or was killed, and waits until it is SERVING.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut()
            && child.try_wait()?.is_none()
        {
            bail!("restart needs a stopped service; terminate or kill it first");
        }
        self.spawn_and_wait().await
    }

    /// Sets (Some) or removes (None) an environment variable for the next start.
    pub fn set_env(&mut self, key: &str, value: Option<&str>) {
        self.envs.retain(|(k, _)| k != key);
        if let Some(value) = value {
            self.envs.push((key.to_owned(), value.to_owned()));
        }
    }

    /// How the child ended, once it has (None while it runs, or when it was never
    /// started).
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|child| child.try_wait().ok().flatten())
    }

    /// Whether the child runs (it may have crashed).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// The binary's file name, for people reading a report.
    pub fn name(&self) -> String {
        self.binary
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Asks the service's health endpoint for the whole server's status.
    pub async fn health(&self) -> anyhow::Result<ServingStatus> {
        health_status(&self.endpoint()).await
    }

    fn log_path(&self, start: u32) -> PathBuf {
        self.workdir.path().join(format!("service-{start}.log"))
    }

    async fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let addr_file = self.workdir.path().join("addr");
        let metrics_file = self.workdir.path().join("metrics-addr");
        let _ = std::fs::remove_file(&addr_file);
        let _ = std::fs::remove_file(&metrics_file);
        let log = std::fs::File::create(self.log_path(self.starts)).context("creating the log")?;
        let mut command = match &self.host {
            Some(host) => {
                let [program, prefix @ ..] = host.exec_prefix();
                let mut command = Command::new(program);
                command.args(prefix).arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        let metrics_ip = self
            .host
            .as_ref()
            .map_or(std::net::IpAddr::from([127, 0, 0, 1]), |host| {
                std::net::IpAddr::V4(host.addr)
            });
        let child = command
            .args(&self.args)
            .arg("--listen")
            .arg(self.addr.to_string())
            .arg("--addr-file")
            .arg(&addr_file)
            // A fresh port each start: a restart must not fail because another test's
            // process took the old one meanwhile.
            .arg("--metrics-listen")
            .arg(SocketAddr::from((metrics_ip, 0)).to_string())
            .arg("--metrics-addr-file")
            .arg(&metrics_file)
            .env("TICKETDROP_AUTH_DIR", crate::auth::auth_dir())
            // Every test's fans come from 127.0.0.1; the rate limit test sets its own.
            .env("TICKETDROP_RATE_LIMIT_ADDRESS_PER_SEC", "0")
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .env("TICKETDROP_DRAIN_DELAY_MS", "200")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawning {}", self.binary.display()))?;
        self.child = Some(child);

        let deadline = tokio::time::Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = self.child.as_mut().and_then(|c| c.try_wait().transpose()) {
                bail!(
                    "{} exited during start with {:?}; log:\n{}",
                    self.binary.display(),
                    status?,
                    self.log()
                );
            }
            if let Ok(text) = std::fs::read_to_string(&addr_file)
                && let Ok(addr) = text.trim().parse::<SocketAddr>()
            {
                self.addr = addr;
                // Written before the gRPC address.
                if let Ok(text) = std::fs::read_to_string(&metrics_file)
                    && let Ok(metrics_addr) = text.trim().parse::<SocketAddr>()
                {
                    self.metrics_addr = metrics_addr;
                }
                if matches!(self.health().await, Ok(ServingStatus::Serving)) {
                    return Ok(());
                }
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "{} not SERVING within {START_TIMEOUT:?}; log:\n{}",
                    self.binary.display(),
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The whole server's health status at `endpoint`.
pub async fn health_status(endpoint: &str) -> anyhow::Result<ServingStatus> {
    let channel = tonic::transport::Endpoint::from_shared(endpoint.to_owned())?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await?;
    let mut client = HealthClient::new(channel);
    let response = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await?;
    Ok(response.into_inner().status())
}
