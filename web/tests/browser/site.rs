//! The whole mesh for one browser test, plus the web server serving the built page on a
//! port of its own (every service lets that origin call it), and the Playwright
//! scenarios in web/app/e2e run against it with the system's Chromium.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use local_mesh::{Mesh, MeshOptions, ServiceProcess, service_binary};
use proto::v1::inventory_service_client::InventoryServiceClient;
use proto::v1::orders_service_client::OrdersServiceClient;
use proto::v1::waiting_room_service_client::WaitingRoomServiceClient;
use proto::v1::*;
use serde_json::Value;
use server_kit::outgoing::MeshChannel;

pub struct Site {
    pub mesh: Mesh,
    pub web: ServiceProcess,
    /// The page's URL, `http://127.0.0.1:<port>`.
    pub base: String,
    pub inventory: InventoryServiceClient<MeshChannel>,
    pub room: WaitingRoomServiceClient<MeshChannel>,
    pub orders: OrdersServiceClient<MeshChannel>,
}

impl Site {
    pub async fn start(mut options: MeshOptions<'static>) -> Self {
        build_page().await;
        let port = local_mesh::free_port().expect("a free port");
        let base: &'static str = Box::leak(format!("http://127.0.0.1:{port}").into_boxed_str());
        // Every service lets this page's origin call it, and no other.
        options.env.push(("TICKETDROP_WEB_ORIGIN", base));
        let mesh = Mesh::start(options).await.expect("the mesh starts");
        let site_dir = app_dir().join("dist");
        let (coordinator, inventory, orders, room) = (
            mesh.coordinator.endpoint(),
            mesh.inventory.endpoint(),
            mesh.orders.endpoint(),
            mesh.waiting_room.endpoint(),
        );
        let web = ServiceProcess::start_on(
            ([127, 0, 0, 1], port).into(),
            service_binary("ticketdrop-web"),
            &[
                "--site-dir",
                site_dir.to_str().expect("a UTF-8 path"),
                "--coordinator-endpoint",
                &coordinator,
                "--inventory-endpoint",
                &inventory,
                "--orders-endpoint",
                &orders,
                "--waiting-room-endpoint",
                &room,
                "--dev-login",
            ],
            &[],
        )
        .await
        .expect("the web server starts");
        let channel = |endpoint: String| async move { local_mesh::auth::channel(&endpoint).await };
        Self {
            inventory: InventoryServiceClient::new(channel(mesh.inventory.endpoint()).await),
            room: WaitingRoomServiceClient::new(channel(mesh.waiting_room.endpoint()).await),
            orders: OrdersServiceClient::new(channel(mesh.orders.endpoint()).await),
            mesh,
            web,
            base: base.to_owned(),
        }
    }

    /// An event named as fans know it: `rows` x `per_row` seats in section A.
    pub async fn event(&self, event_id: &str, name: &str, venue: &str, rows: u32, per_row: u32) {
        self.inventory
            .clone()
            .create_event(CreateEventRequest {
                event_id: event_id.into(),
                name: name.into(),
                starts_at: Some(prost_types::Timestamp {
                    seconds: 1_900_000_000,
                    nanos: 0,
                }),
                description: format!("{name} live at {venue}"),
                currency: "EUR".into(),
                venue: Some(VenueLayout {
                    venue_name: venue.into(),
                    price_tiers: vec![PriceTier {
                        name: "stalls".into(),
                        price_cents: 4_500,
                    }],
                    sections: vec![SectionLayout {
                        name: "A".into(),
                        rows,
                        seats_per_row: per_row,
                        price_tier: "stalls".into(),
                    }],
                }),
            })
            .await
            .expect("event created");
    }

    pub async fn open_room(
        &self,
        event_id: &str,
        max_active: u32,
        ttl: Duration,
        opens_at: Option<SystemTime>,
        shuffle_seed: u64,
    ) -> Room {
        self.room
            .clone()
            .open_room(OpenRoomRequest {
                event_id: event_id.into(),
                max_active,
                admission_ttl: Some(prost_types::Duration {
                    seconds: i64::try_from(ttl.as_secs()).expect("short"),
                    nanos: 0,
                }),
                opens_at: opens_at.map(prost_types::Timestamp::from),
                shuffle_seed,
            })
            .await
            .expect("room opened")
            .into_inner()
            .room
            .expect("a room")
    }

    pub async fn get_room(&self, event_id: &str) -> Room {
        self.room
            .clone()
            .get_room(GetRoomRequest {
                event_id: event_id.into(),
            })
            .await
            .expect("the room")
            .into_inner()
            .room
            .expect("a room")
    }

    /// The fan's place (joining is idempotent: this is the place they have).
    pub async fn place(&self, event_id: &str, user: &str) -> Place {
        self.room
            .clone()
            .join(JoinRequest {
                event_id: event_id.into(),
                user_id: user.into(),
            })
            .await
            .expect("joined")
            .into_inner()
            .place
            .expect("a place")
    }

    pub async fn leave(&self, event_id: &str, user: &str) {
        self.room
            .clone()
            .leave(LeaveRequest {
                event_id: event_id.into(),
                user_id: user.into(),
            })
            .await
            .expect("left");
    }

    pub async fn seat_status(&self, event_id: &str, seat_id: &str) -> SeatStatus {
        self.inventory
            .clone()
            .get_event(GetEventRequest {
                event_id: event_id.into(),
                include_seats: true,
                consistent_read: false,
            })
            .await
            .expect("the event")
            .into_inner()
            .seats
            .into_iter()
            .find(|seat| seat.seat_id == seat_id)
            .map(|seat| seat.status())
            .expect("the seat exists")
    }

    /// Starts a Playwright scenario (`web/app/e2e/<name>.mjs`) with `args` (the page's
    /// URL added); its result is the JSON line it prints.
    pub fn scenario(&self, name: &str, mut args: Value) -> tokio::task::JoinHandle<Value> {
        args["base"] = Value::String(self.base.clone());
        let name = name.to_owned();
        let web_log = self.web.log();
        // What the scenario reports as it goes (each step), kept in a file that a test
        // which times out names.
        let log = scenario_log(&name);
        tokio::spawn(async move {
            let output = tokio::process::Command::new("node")
                .current_dir(app_dir())
                .arg(format!("e2e/{name}.mjs"))
                .arg(args.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::fs::File::create(&log).expect("the scenario's log"))
                .kill_on_drop(true)
                .spawn()
                .expect("node runs (make stack-up installs the page's packages and Chromium)")
                .wait_with_output()
                .await
                .expect("the scenario ends");
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                output.status.success(),
                "scenario {name} failed:\n{stdout}\n{stderr}\nweb server:\n{web_log}"
            );
            let line = stdout.lines().last().unwrap_or_default();
            serde_json::from_str(line).unwrap_or_else(|e| {
                panic!("scenario {name} printed no JSON ({e}):\n{stdout}\n{stderr}")
            })
        })
    }

    /// `ticketdrop` pointed at this mesh, as the command line's tests do.
    pub fn ticketdrop(&self, args: &[&str]) -> tokio::process::Command {
        let mesh = &self.mesh;
        let mut command = tokio::process::Command::new(service_binary("ticketdrop"));
        command
            .args(args)
            .env_remove("TICKETDROP_TOKEN")
            .env(
                "TICKETDROP_COORDINATOR_ENDPOINT",
                mesh.coordinator.endpoint(),
            )
            .env("TICKETDROP_INVENTORY_ENDPOINT", mesh.inventory.endpoint())
            .env("TICKETDROP_ORDERS_ENDPOINT", mesh.orders.endpoint())
            .env("TICKETDROP_PAYMENTS_ENDPOINT", mesh.payments.endpoint())
            .env(
                "TICKETDROP_WAITING_ROOM_ENDPOINT",
                mesh.waiting_room.endpoint(),
            )
            .env("TICKETDROP_NOTIFIER_ENDPOINT", mesh.notifier.endpoint())
            .env("TICKETDROP_INVENTORY_DATABASE_URL", mesh.inventory_db.url())
            .env("TICKETDROP_PAYMENTS_DATABASE_URL", mesh.payments_db.url())
            .env(
                "TICKETDROP_COORDINATOR_DATABASE_URL",
                mesh.coordinator_db.url(),
            )
            .env("TICKETDROP_NOTIFIER_DATABASE_URL", mesh.notifier_db.url())
            .env("TICKETDROP_ORDERS_TABLE", &mesh.orders_table)
            .env("TICKETDROP_WAITING_ROOM_KEY_PREFIX", &mesh.room_prefix)
            .env("TICKETDROP_AUTH_DIR", local_mesh::auth::auth_dir())
            .kill_on_drop(true);
        command
    }

    /// `ticketdrop audit --event E --json`, which must find every invariant holding.
    pub async fn audit(&self, event_id: &str) -> Value {
        let output = self
            .ticketdrop(&["audit", "--event", event_id, "--json"])
            .output()
            .await
            .expect("ticketdrop runs");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
            panic!(
                "audit printed no JSON ({e}): {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        assert!(
            output.status.success(),
            "the audit of {event_id} failed: {report:#}"
        );
        assert_eq!(report["violations"], serde_json::json!([]), "{report:#}");
        report
    }
}

/// Where scenario `name` of this test process writes its progress.
pub fn scenario_log(name: &str) -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-{name}-{}.log", std::process::id()))
}

/// web/app: the page's sources, its packages and its build.
pub fn app_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("app")
}

/// Builds the page (`npm run build`) unless its build is newer than every source, once
/// for all the test processes that run at the same time (a lock file serializes them).
async fn build_page() {
    tokio::task::spawn_blocking(|| {
        let app = app_dir();
        let lock = std::fs::File::create(std::env::temp_dir().join("ticketdrop-web-build.lock"))
            .expect("a lock file");
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("locking the page's build");
        let built = modified(&app.join("dist/index.html"));
        let sources = [
            app.join("src"),
            app.join("e2e"),
            app.join("index.html"),
            app.join("package-lock.json"),
            app.join("../../proto/ticketdrop/v1"),
        ];
        let newest = sources.iter().filter_map(|path| newest(path)).max();
        if built.is_some() && built >= newest {
            return;
        }
        let run = |args: &[&str]| {
            let output = std::process::Command::new("npm")
                .current_dir(&app)
                .args(args)
                .output()
                .expect("npm runs (make stack-up installs Node's packages)");
            assert!(
                output.status.success(),
                "npm {args:?}: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        };
        if !app.join("node_modules/.package-lock.json").exists() {
            run(&["ci", "--no-audit", "--no-fund"]);
        }
        run(&["run", "--silent", "build"]);
    })
    .await
    .expect("the build task ends");
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time under `path` (generated code left out).
fn newest(path: &Path) -> Option<SystemTime> {
    if path.is_file() {
        return modified(path);
    }
    std::fs::read_dir(path)
        .ok()?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name() != "gen")
        .filter_map(|entry| newest(&entry.path()))
        .max()
}

/// Waits until `condition` holds, as `local_mesh::eventually` does, but fails at once
/// with the scenario's own report when the browser ends first.
pub async fn while_browsing<F, Fut>(
    browser: &mut tokio::task::JoinHandle<Value>,
    what: &str,
    timeout: Duration,
    mut condition: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if condition().await {
            return;
        }
        if browser.is_finished() {
            let ended = (&mut *browser).await;
            panic!("the browser ended before {what}: {ended:?}");
        }
        if std::time::Instant::now() > deadline {
            let logs: Vec<String> = std::fs::read_dir(env!("CARGO_TARGET_TMPDIR"))
                .into_iter()
                .flatten()
                .filter_map(Result::ok)
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .ends_with(&format!("-{}.log", std::process::id()))
                })
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .collect();
            panic!(
                "timed out after {timeout:?} waiting for {what}; the browser's log:\n{}",
                logs.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
