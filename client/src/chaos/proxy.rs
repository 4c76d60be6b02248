//! A TCP proxy in front of one participant, so the lab can cut it off without tc netem
//! or toxiproxy: pass bytes through, delay them, black-hole the link (nothing moves in
//! either direction, as in a partition: connections stay open and data waits in the
//! kernel's buffers, delivered if the link heals before the callers give up), or reset
//! every connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does with the link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Pass,
    Delay(Duration),
    Blackhole,
    Reset,
}

pub struct Proxy {
    addr: SocketAddr,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
    stats: Arc<Stats>,
}

/// What the proxy did to the link: the lab's evidence that a fault touched traffic.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connection directions that had bytes waiting while the link was black-holed.
    held: AtomicU64,
    /// Chunks delayed.
    delayed: AtomicU64,
    /// Connections reset.
    reset: AtomicU64,
}

/// A reading of the stats, to subtract two of them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub held: u64,
    pub delayed: u64,
    pub reset: u64,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), upstream).await
    }

    /// Listens on `listen` (port 0: a free one) and forwards to `upstream`: how hosts of
    /// their own reach a store that listens on loopback.
    pub async fn start_on(listen: SocketAddr, upstream: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("binding the proxy on {listen}"))?;
        let addr = listener.local_addr()?;
        let (mode, watching) = watch::channel(Mode::Pass);
        let stats = Arc::new(Stats::default());
        let counting = stats.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let (mode, stats) = (watching.clone(), counting.clone());
                tokio::spawn(async move {
                    let _ = relay(client, upstream, mode, stats).await;
                });
            }
        });
        Ok(Self {
            addr,
            mode,
            task,
            stats,
        })
    }

    /// What the proxy has done to the link so far.
    pub fn counts(&self) -> Counts {
        Counts {
            held: self.stats.held.load(Ordering::Relaxed),
            delayed: self.stats.delayed.load(Ordering::Relaxed),
            reset: self.stats.reset.load(Ordering::Relaxed),
        }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`, what the caller is pointed at instead of the participant.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client: TcpStream,
    upstream: SocketAddr,
    mode: watch::Receiver<Mode>,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let current = *mode.borrow();
    if current == Mode::Reset {
        stats.reset.fetch_add(1, Ordering::Relaxed);
        return reset(client);
    }
    client.set_nodelay(true)?;
    let server = TcpStream::connect(upstream).await?;
    server.set_nodelay(true)?;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::select! {
        result = pump(client_read, server_write, mode.clone(), stats.clone()) => result,
        result = pump(server_read, client_write, mode, stats) => result,
    }
}

/// Copies one direction, obeying the mode for every chunk.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut mode: watch::Receiver<Mode>,
    stats: Arc<Stats>,
) -> std::io::Result<()> {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        // While black-holed nothing is read: the bytes wait, as on a cut link. Whether
        // any do is peeked at (once per black hole), as the evidence that it held traffic.
        let mut peeked = false;
        loop {
            let current = *mode.borrow_and_update();
            if current != Mode::Blackhole {
                break;
            }
            if peeked {
                if mode.changed().await.is_err() {
                    return Ok(());
                }
                continue;
            }
            let mut probe = [0u8; 1];
            tokio::select! {
                waiting = from.peek(&mut probe) => {
                    peeked = true;
                    if waiting.is_ok_and(|n| n > 0) {
                        stats.held.fetch_add(1, Ordering::Relaxed);
                    }
                }
                changed = mode.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        let read = tokio::select! {
            read = from.read(&mut buffer) => read?,
            changed = mode.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
                continue;
            }
        };
        if read == 0 {
            return Ok(());
        }
        let current = *mode.borrow();
        match current {
            Mode::Reset => {
                stats.reset.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Mode::Delay(delay) => {
                stats.delayed.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(delay).await;
            }
            Mode::Pass | Mode::Blackhole => {}
        }
        to.write_all(&buffer[..read]).await?;
    }
}

/// Closes a connection with RST (linger 0), as a crashed peer would.
fn reset(stream: TcpStream) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(&stream);
    socket.set_linger(Some(Duration::ZERO))?;
    drop(stream);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.expect("accept");
                tokio::spawn(async move {
                    let mut buffer = [0u8; 64];
                    while let Ok(n) = stream.read(&mut buffer).await {
                        if n == 0 || stream.write_all(&buffer[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn round_trip(stream: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
        stream.write_all(b"ping").await.ok()?;
        let mut answer = [0u8; 4];
        tokio::time::timeout(within, stream.read_exact(&mut answer))
            .await
            .ok()?
            .ok()?;
        Some(answer.to_vec())
    }

    #[tokio::test]
    async fn the_proxy_passes_holds_and_resets() {
        let proxy = Proxy::start(echo_server().await).await.expect("proxy");
        let mut stream = TcpStream::connect(proxy.addr).await.expect("connect");
        assert_eq!(
            round_trip(&mut stream, Duration::from_secs(2))
                .await
                .as_deref(),
            Some(&b"ping"[..])
        );
        proxy.set(Mode::Blackhole);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(
            round_trip(&mut stream, Duration::from_millis(300)).await,
            None
        );
        // The request waits at the proxy: counted once as held.
        assert_eq!(proxy.counts().held, 1);
        // Healed: the held request reaches the server and its echo comes back.
        proxy.set(Mode::Pass);
        let mut answer = [0u8; 4];
        tokio::time::timeout(Duration::from_secs(2), stream.read_exact(&mut answer))
            .await
            .expect("delivered after the heal")
            .expect("read");
        assert_eq!(&answer, b"ping");
        proxy.set(Mode::Reset);
        let mut fresh = TcpStream::connect(proxy.addr).await.expect("accepted");
        assert_eq!(round_trip(&mut fresh, Duration::from_secs(2)).await, None);
    }
}
