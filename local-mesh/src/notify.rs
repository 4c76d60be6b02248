//! What the notifier's channels reach, for tests: a private maildev (a real SMTP server
//! with its HTTP API, stoppable and restartable on the same ports), a private SMS
//! provider (the stack's `scripts/sms-provider.mjs`), and a webhook receiver that records
//! every request and can be told to fail or to answer slowly.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use crate::dynamodb::stack_dir;

/// maildev on two free loopback ports: SMTP and its web inbox / HTTP API.
pub struct PrivateMaildev {
    smtp_port: u16,
    web_port: u16,
    child: Option<Child>,
}

impl PrivateMaildev {
    pub fn start() -> anyhow::Result<Self> {
        let mut maildev = Self {
            smtp_port: crate::free_port()?,
            web_port: crate::free_port()?,
            child: None,
        };
        maildev.start_process()?;
        Ok(maildev)
    }

    /// `smtp://127.0.0.1:<port>`, for the notifier's --smtp-url.
    pub fn smtp_url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.smtp_port)
    }

    /// The web inbox and HTTP API.
    pub fn web_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.web_port)
    }

    /// Stops the server (SIGKILL): SMTP connections are refused until `restart`.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts it again on the same ports (its inbox starts empty).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.start_process()
    }

    /// Every mail received for `to`, as maildev's API describes it (`id`, `subject`,
    /// `headers`, `text`, `html`, `attachments` with `generatedFileName` and
    /// `contentId`...).
    pub async fn emails_to(&self, to: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let url = format!("{}/api/email", self.web_url());
        let all: Vec<serde_json::Value> =
            serde_json::from_str(&reqwest::get(&url).await?.error_for_status()?.text().await?)
                .context("maildev's /api/email is a JSON list")?;
        Ok(all
            .into_iter()
            .filter(|mail| {
                mail["to"]
                    .as_array()
                    .is_some_and(|to_list| to_list.iter().any(|a| a["address"] == to))
            })
            .collect())
    }

    /// One attachment's bytes.
    pub async fn attachment(&self, mail_id: &str, file: &str) -> anyhow::Result<Vec<u8>> {
        let url = format!("{}/api/email/{mail_id}/attachment/{file}", self.web_url());
        Ok(reqwest::get(&url)
            .await?
            .error_for_status()?
            .bytes()
            .await?
            .to_vec())
    }

    fn start_process(&mut self) -> anyhow::Result<()> {
        let binary = stack_dir().join("node/node_modules/.bin/maildev");
        if !binary.exists() {
            bail!("{} is missing; run make stack-up", binary.display());
        }
        let child = Command::new(binary)
            .args(["--ip", "127.0.0.1", "--smtp", &self.smtp_port.to_string()])
            .args(["--web-ip", "127.0.0.1", "--web", &self.web_port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting maildev")?;
        self.child = Some(child);
        crate::wait_for_port(self.smtp_port, Duration::from_secs(30), "maildev smtp")?;
        crate::wait_for_port(self.web_port, Duration::from_secs(30), "maildev web")
    }
}

impl Drop for PrivateMaildev {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// The stack's SMS provider on a free loopback port, recording in memory.
pub struct PrivateSms {
    port: u16,
    child: Child,
}

impl PrivateSms {
    pub fn start() -> anyhow::Result<Self> {
        let port = crate::free_port()?;
        let script =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/sms-provider.mjs");
        let child = Command::new("node")
            .arg(script)
            .args(["--port", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting the SMS provider (node)")?;
        crate::wait_for_port(port, Duration::from_secs(30), "sms-provider")?;
        Ok(Self { port, child })
    }

    /// The base URL, for the notifier's --sms-url.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Messages recorded for `to`, oldest first (`sid`, `to`, `from`, `body`).
    pub async fn messages_to(&self, to: &str) -> anyhow::Result<Vec<serde_json::Value>> {
        let url = format!("{}/messages", self.url());
        let all: serde_json::Value =
            serde_json::from_str(&reqwest::get(&url).await?.error_for_status()?.text().await?)?;
        Ok(all["messages"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m["to"] == to)
            .collect())
    }
}

impl Drop for PrivateSms {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
pub struct ReceivedWebhook {
    /// Header names in lower case.
    pub headers: HashMap<String, String>,
    pub body: String,
    /// The status it was answered with.
    pub status: u16,
}

#[derive(Default)]
struct ReceiverState {
    received: Vec<ReceivedWebhook>,
    /// Requests still to answer 500.
    failures_left: u32,
    /// How long to wait before answering.
    delay: Duration,
}

/// An HTTP/1.1 server on a free loopback port that records every POST.
#[derive(Clone)]
pub struct WebhookReceiver {
    url: String,
    state: Arc<Mutex<ReceiverState>>,
}

impl WebhookReceiver {
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hooks/ticketdrop", listener.local_addr()?);
        let state: Arc<Mutex<ReceiverState>> = Arc::default();
        let shared = state.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, shared.clone()));
            }
        });
        Ok(Self { url, state })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The next `n` requests are answered 500.
    pub fn fail_next(&self, n: u32) {
        self.state.lock().expect("receiver lock").failures_left = n;
    }

    /// Every later request is answered only after `delay`.
    pub fn answer_after(&self, delay: Duration) {
        self.state.lock().expect("receiver lock").delay = delay;
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<ReceivedWebhook> {
        self.state.lock().expect("receiver lock").received.clone()
    }
}

async fn serve(socket: tokio::net::TcpStream, state: Arc<Mutex<ReceiverState>>) {
    let (read, mut write) = socket.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await.unwrap_or(0) == 0 {
            return;
        }
        let mut headers = HashMap::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.insert(name.trim().to_ascii_lowercase(), value.trim().to_owned());
            }
        }
        let length: usize = headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        let (status, delay) = {
            let mut state = state.lock().expect("receiver lock");
            let status = if state.failures_left > 0 {
                state.failures_left -= 1;
                500
            } else {
                200
            };
            state.received.push(ReceivedWebhook {
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
                status,
            });
            (status, state.delay)
        };
        tokio::time::sleep(delay).await;
        let reason = if status == 200 {
            "OK"
        } else {
            "Internal Server Error"
        };
        let answer = format!("HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\n\r\n");
        if write.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}
