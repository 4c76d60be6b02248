use anyhow::Context;
use tokio_postgres::NoTls;

/// The local stack's PostgreSQL server URL without a database name.
pub fn stack_pg_url() -> String {
    std::env::var("TICKETDROP_PG_URL")
        .unwrap_or_else(|_| "postgres://ticketdrop@127.0.0.1:55432".into())
}

/// A database of its own for one test, dropped (with its connections) when the value
/// is dropped.
pub struct TestDatabase {
    name: String,
    server_url: String,
}

impl TestDatabase {
    /// Creates an empty database named `<prefix>_<random>` on the local stack.
    pub async fn create(prefix: &str) -> anyhow::Result<Self> {
        let server_url = stack_pg_url();
        let name = crate::unique_name(prefix);
        let admin = admin_client(&server_url).await?;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .with_context(|| format!("creating database {name}"))?;
        Ok(Self { name, server_url })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL a service takes as `--database-url`.
    pub fn url(&self) -> String {
        format!("{}/{}", self.server_url, self.name)
    }

    /// A direct connection, for asserting on rows.
    pub async fn connect(&self) -> anyhow::Result<tokio_postgres::Client> {
        let (client, connection) = tokio_postgres::connect(&self.url(), NoTls)
            .await
            .with_context(|| format!("connecting to {}", self.name))?;
        tokio::spawn(connection);
        Ok(client)
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server_url = self.server_url.clone();
        let name = self.name.clone();
        // Drop runs outside async; a short-lived runtime on its own thread does the work.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let admin = admin_client(&server_url).await?;
                admin
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
        if let Ok(Err(error)) = dropped {
            eprintln!(
                "local-mesh: could not drop database {}: {error:#}",
                self.name
            );
        }
    }
}

async fn admin_client(server_url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let url = format!("{server_url}/postgres");
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .with_context(|| format!("connecting to {url}; is the stack up (make stack-up)?"))?;
    tokio::spawn(connection);
    Ok(client)
}
