//! A private PostgreSQL server for tests that must stop and start the database itself
//! (prepared transactions surviving a restart), without disturbing the shared stack.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// A PostgreSQL server of its own: initdb in a temp dir, on a free loopback port, run as
/// the `postgres` user when the tests run as root (PostgreSQL refuses root).
pub struct PrivatePostgres {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    os_user: Option<String>,
}

impl PrivatePostgres {
    /// Initialises and starts a server with `max_prepared_transactions` > 0.
    pub fn start() -> anyhow::Result<Self> {
        let bin = bindir()?;
        let dir = tempfile::Builder::new()
            .prefix("ticketdrop-pg-")
            .tempdir_in(std::env::temp_dir())?;
        let os_user = if nix::unistd::Uid::effective().is_root() {
            let user = nix::unistd::User::from_name("postgres")?
                .context("running as root needs a `postgres` user (make stack-up creates it)")?;
            nix::unistd::chown(dir.path(), Some(user.uid), Some(user.gid))?;
            Some("postgres".to_owned())
        } else {
            None
        };
        let port = crate::free_port()?;
        let server = Self {
            bin,
            dir,
            port,
            os_user,
        };
        let data = server.data_dir();
        server.run(
            "initdb",
            &[
                "-D",
                path(&data),
                "-U",
                "ticketdrop",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ],
        )?;
        let config = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n\
             max_prepared_transactions = 50\nmax_connections = 100\nfsync = on\n",
            server.dir.path().display()
        );
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str(&config);
        std::fs::write(&conf, text)?;
        server.start_server()?;
        Ok(server)
    }

    /// The loopback address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `postgres://ticketdrop@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://ticketdrop@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server (fast shutdown: sessions end, prepared transactions stay).
    pub fn stop(&self) -> anyhow::Result<()> {
        let data = self.data_dir();
        self.run("pg_ctl", &["-D", path(&data), "-m", "fast", "-w", "stop"])
    }

    /// The postmaster's pid, from `postmaster.pid`.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
            .filter(|pid| crate::signals::alive(*pid))
    }

    /// SIGKILLs the postmaster and every backend, as a power cut would: no checkpoint,
    /// prepared transactions stay in the WAL. Returns once they are all gone, with how
    /// many processes were killed (0 when the server was not running).
    pub fn kill(&self) -> anyhow::Result<usize> {
        let Some(pid) = self.pid() else {
            return Ok(0);
        };
        let family = self.family(pid);
        for member in &family {
            let _ = crate::signals::send(*member, crate::signals::Signal::SIGKILL);
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while family.iter().any(|p| crate::signals::alive(*p)) {
            if std::time::Instant::now() > deadline {
                bail!("postgres processes still alive 10 s after SIGKILL");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(family.len())
    }

    /// Freezes the postmaster and every backend (SIGSTOP): connections stay open,
    /// queries wait.
    pub fn pause(&self) -> anyhow::Result<()> {
        let pid = self.pid().context("postgres is not running")?;
        for member in self.family(pid) {
            let _ = crate::signals::send(member, crate::signals::Signal::SIGSTOP);
        }
        Ok(())
    }

    /// Thaws them (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        let pid = self.pid().context("postgres is not running")?;
        for member in self.family(pid) {
            let _ = crate::signals::send(member, crate::signals::Signal::SIGCONT);
        }
        Ok(())
    }

    /// Whether the server runs.
    pub fn is_running(&self) -> bool {
        self.pid().is_some()
    }

    fn family(&self, pid: u32) -> Vec<u32> {
        let mut family = vec![pid];
        family.extend(crate::signals::children(pid));
        family
    }

    /// Starts the server again on the same data and port (crash recovery replays the
    /// WAL after a kill).
    pub fn start_server(&self) -> anyhow::Result<()> {
        let data = self.data_dir();
        let log = self.dir.path().join("postgres.log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                path(&data),
                "-l",
                path(&log),
                "-w",
                "-t",
                "60",
                "start",
            ],
        )
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn run(&self, tool: &str, args: &[&str]) -> anyhow::Result<()> {
        let program = self.bin.join(tool);
        let mut command = match &self.os_user {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&program);
                c
            }
            None => Command::new(&program),
        };
        let output = command
            .args(args)
            .output()
            .with_context(|| format!("running {tool}"))?;
        if !output.status.success() {
            bail!(
                "{tool} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let data = self.data_dir();
        let _ = self.run(
            "pg_ctl",
            &["-D", path(&data), "-m", "immediate", "-w", "stop"],
        );
    }
}

fn bindir() -> anyhow::Result<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists())
        .collect();
    dirs.sort();
    dirs.pop()
        .context("no PostgreSQL server binaries under /usr/lib/postgresql (run make stack-up)")
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}
