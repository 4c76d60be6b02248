use std::process::Output;

use serde_json::Value;
use test_harness::{Mesh, MeshOptions};

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
            .args(["--coordinator", &self.mesh.coordinator.endpoint()])
            .args(["--inventory", &self.mesh.inventory.endpoint()])
            .args(["--orders", &self.mesh.orders.endpoint()])
            .args(["--payments", &self.mesh.payments.endpoint()])
            .args(["--waiting-room", &self.mesh.waiting_room.endpoint()])
            .args(["--notifier", &self.mesh.notifier.endpoint()])
            .args(args)
            .env(
                "TICKETDROP_INVENTORY_DATABASE_URL",
                self.mesh.inventory_db.url(),
            )
            .env(
                "TICKETDROP_PAYMENTS_DATABASE_URL",
                self.mesh.payments_db.url(),
            )
            .env(
                "TICKETDROP_COORDINATOR_DATABASE_URL",
                self.mesh.coordinator_db.url(),
            )
            .env("TICKETDROP_ORDERS_TABLE", &self.mesh.orders_table)
            .env("TICKETDROP_AUTH_DIR", test_harness::auth::auth_dir())
            .kill_on_drop(true);
        command
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
