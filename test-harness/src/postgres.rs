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
        let port = free_port()?;
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

    /// `postgres://ticketdrop@127.0.0.1:<port>/<database>`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://ticketdrop@127.0.0.1:{}/{database}", self.port)
    }

    /// Stops the server (fast shutdown: sessions end, prepared transactions stay).
    pub fn stop(&self) -> anyhow::Result<()> {
        let data = self.data_dir();
        self.run("pg_ctl", &["-D", path(&data), "-m", "fast", "-w", "stop"])
    }

    /// Starts the server again on the same data and port.
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

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temp paths are UTF-8")
}
