use std::process::Output;

use local_mesh::{Mesh, MeshOptions};
use serde_json::Value;

pub struct Cli {
    pub mesh: Mesh,
}

impl Cli {
    pub async fn start() -> Self {
        Self::start_with(MeshOptions::default()).await
    }

    pub async fn start_with(options: MeshOptions<'_>) -> Self {
        Self {
            mesh: Mesh::start(options).await.expect("the mesh starts"),
        }
    }

    /// Runs `ticketdrop` with the mesh's endpoints and stores.
    pub async fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().await.expect("ticketdrop runs")
    }

    /// `ticketdrop` with the mesh's endpoints and stores, to spawn.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_ticketdrop"));
        command
            .args(args)
            .envs(self.environment())
            .env_remove("TICKETDROP_TOKEN")
            .kill_on_drop(true);
        command
    }

    /// The `TICKETDROP_*` variables that point `ticketdrop` at this mesh: its endpoints,
    /// the stores the audit reads, and the key directory it mints tokens from. A flag
    /// given on the command line (`--coordinator ...`) still wins.
    pub fn environment(&self) -> Vec<(&'static str, String)> {
        let mesh = &self.mesh;
        vec![
            (
                "TICKETDROP_COORDINATOR_ENDPOINT",
                mesh.coordinator.endpoint(),
            ),
            ("TICKETDROP_INVENTORY_ENDPOINT", mesh.inventory.endpoint()),
            ("TICKETDROP_ORDERS_ENDPOINT", mesh.orders.endpoint()),
            ("TICKETDROP_PAYMENTS_ENDPOINT", mesh.payments.endpoint()),
            (
                "TICKETDROP_WAITING_ROOM_ENDPOINT",
                mesh.waiting_room.endpoint(),
            ),
            ("TICKETDROP_NOTIFIER_ENDPOINT", mesh.notifier.endpoint()),
            ("TICKETDROP_INVENTORY_DATABASE_URL", mesh.inventory_db.url()),
            ("TICKETDROP_PAYMENTS_DATABASE_URL", mesh.payments_db.url()),
            (
                "TICKETDROP_COORDINATOR_DATABASE_URL",
                mesh.coordinator_db.url(),
            ),
            ("TICKETDROP_NOTIFIER_DATABASE_URL", mesh.notifier_db.url()),
            ("TICKETDROP_ORDERS_TABLE", mesh.orders_table.clone()),
            (
                "TICKETDROP_WAITING_ROOM_KEY_PREFIX",
                mesh.room_prefix.clone(),
            ),
            (
                "TICKETDROP_AUTH_DIR",
                local_mesh::auth::auth_dir().display().to_string(),
            ),
        ]
    }

    /// Where the audit reads this mesh's stores.
    pub fn stores(&self) -> ticketdrop::stores::Stores {
        ticketdrop::stores::Stores::of_mesh(&self.mesh)
    }

    /// Runs a command that must succeed and print JSON.
    pub async fn json(&self, args: &[&str]) -> Value {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "ticketdrop {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        parse(&output)
    }

    pub async fn text(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "ticketdrop {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("utf-8")
    }

    /// An event with one section of `seats` seats at 50.00.
    pub async fn event(&self, event_id: &str, seats: u32, description: &str) -> Value {
        let section = format!("A:1x{seats}:5000");
        self.json(&[
            "events",
            "create",
            "--event-id",
            event_id,
            "--name",
            &format!("Show {event_id}"),
            "--description",
            description,
            "--section",
            &section,
            "--json",
        ])
        .await
    }
}

pub fn parse(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "not JSON ({error}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}
