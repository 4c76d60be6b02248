//! A private DynamoDB Local for tests that kill the database itself, with its data on
//! disk (`-dbPath`) so a restarted process finds what the killed one wrote.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

/// The DynamoDB Local process and its data folder.
pub struct PrivateDynamo {
    dist: PathBuf,
    data: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
}

impl PrivateDynamo {
    /// Starts DynamoDB Local from the stack's copy (`make stack-up` fetches it).
    pub fn start() -> anyhow::Result<Self> {
        let dist = stack_dir().join("dynamodb/dist");
        if !dist.join("DynamoDBLocal.jar").exists() {
            bail!(
                "{} has no DynamoDBLocal.jar; run make stack-up",
                dist.display()
            );
        }
        let mut dynamo = Self {
            dist,
            data: tempfile::tempdir()?,
            port: std::net::TcpListener::bind("127.0.0.1:0")?
                .local_addr()?
                .port(),
            child: None,
        };
        dynamo.start_process()?;
        Ok(dynamo)
    }

    /// The loopback address it listens on.
    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// SIGKILLs the process: no shutdown hook runs.
    /// Returns how the process ended (None when it was not running).
    pub fn kill(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        let Some(mut child) = self.child.take() else {
            return Ok(None);
        };
        child.kill()?;
        Ok(Some(child.wait()?))
    }

    /// Freezes the JVM (SIGSTOP).
    pub fn pause(&self) -> anyhow::Result<()> {
        let pid = self
            .child
            .as_ref()
            .context("DynamoDB Local is not running")?
            .id();
        crate::signals::send(pid, crate::signals::Signal::SIGSTOP)
    }

    /// Thaws it (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        let pid = self
            .child
            .as_ref()
            .context("DynamoDB Local is not running")?
            .id();
        crate::signals::send(pid, crate::signals::Signal::SIGCONT)
    }

    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Starts the process again on the same port and data.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill()?;
        self.start_process()
    }

    fn start_process(&mut self) -> anyhow::Result<()> {
        let child = Command::new("java")
            .current_dir(&self.dist)
            .arg("-Djava.library.path=./DynamoDBLocal_lib")
            .args([
                "-jar",
                "DynamoDBLocal.jar",
                "-sharedDb",
                "-disableTelemetry",
            ])
            .arg("-dbPath")
            .arg(self.data.path())
            .args(["-port", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting java (is Java 17 installed? run make stack-up)")?;
        self.child = Some(child);
        crate::wait_for_port(self.port, Duration::from_secs(60), "DynamoDB Local")
    }
}

impl Drop for PrivateDynamo {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// The stack folder: `TICKETDROP_STACK_DIR`, or `.stack` at the workspace root.
pub fn stack_dir() -> PathBuf {
    std::env::var_os("TICKETDROP_STACK_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.stack"))
}
