//! A private Redis for tests and the chaos lab that kill or pause Redis itself, with
//! its append-only file on disk, so a restarted server finds what the killed one wrote.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::Context;

use crate::signals::{self, Signal};

/// The redis-server process and its data folder.
pub struct PrivateRedis {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    /// Starts `redis-server` on a free loopback port, append-only (fsync every second,
    /// as the stack runs it).
    pub fn start() -> anyhow::Result<Self> {
        let mut redis = Self {
            dir: tempfile::Builder::new()
                .prefix("ticketdrop-redis-")
                .tempdir()?,
            port: crate::free_port()?,
            child: None,
        };
        redis.start_process()?;
        Ok(redis)
    }

    /// The loopback address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILLs the server: the last second of writes may be lost, as after a crash.
    /// Returns how the process ended (None when it was not running).
    pub fn kill(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        child.kill()?;
        Ok(Some(child.wait()?))
    }

    /// Freezes the server (SIGSTOP): connections stay open, nothing is answered.
    pub fn pause(&self) -> anyhow::Result<()> {
        signals::send(self.pid().context("redis is not running")?, Signal::SIGSTOP)
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        signals::send(self.pid().context("redis is not running")?, Signal::SIGCONT)
    }

    /// Starts the server again on the same port and data (after a kill, or to restart).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.start_process()
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// A copy of the append-only file as it is now (Redis tolerates a last command cut
    /// short by the copy).
    pub fn snapshot(&self) -> anyhow::Result<tempfile::TempDir> {
        let copy = tempfile::Builder::new()
            .prefix("ticketdrop-redis-snapshot-")
            .tempdir()?;
        copy_dir(&self.data_dir(), copy.path())?;
        Ok(copy)
    }

    /// SIGKILLs the server and starts it again from `snapshot`: every write made after
    /// the snapshot is lost, as a crash loses what `appendfsync everysec` had not yet
    /// written out.
    pub fn restart_from(&mut self, snapshot: &tempfile::TempDir) -> anyhow::Result<()> {
        self.kill()?;
        let data = self.data_dir();
        for entry in std::fs::read_dir(&data)? {
            let path = entry?.path();
            if path.is_dir() {
                std::fs::remove_dir_all(&path)?;
            } else {
                std::fs::remove_file(&path)?;
            }
        }
        copy_dir(snapshot.path(), &data)?;
        self.start_process()
    }

    fn start_process(&mut self) -> anyhow::Result<()> {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--dir")
            .arg(self.data_dir())
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
            ])
            .args(["--protected-mode", "yes", "--daemonize", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (run make stack-up to install it)")?;
        self.child = Some(child);
        crate::wait_for_port(self.port, Duration::from_secs(30), "redis-server")
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .with_context(|| format!("copying {}", entry.path().display()))?;
        }
    }
    Ok(())
}
