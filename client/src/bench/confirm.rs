//! Confirmations never slow a purchase: the same drop under each protocol with no contact,
//! with every fan's email while SMTP is up, and with every fan's email while SMTP is down.
//! The purchase answers of the three should not differ; the mails of the last one arrive
//! once SMTP is back, and the bench measures how long after.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::Serialize;

use super::{BenchArgs, Measured};
use crate::json;
use crate::stores;

/// How the fans of one confirmation drop were confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// No contact on the purchase: nothing in the outbox.
    NoContact,
    /// Every fan's email; the SMTP server is up.
    SmtpUp,
    /// Every fan's email; the SMTP server is down for the whole drop.
    SmtpDown,
}

impl Mode {
    pub fn label(self) -> &'static str {
        match self {
            Mode::NoContact => "no contact",
            Mode::SmtpUp => "email, SMTP up",
            Mode::SmtpDown => "email, SMTP down",
        }
    }
}

/// One confirmation drop and what became of its mails.
#[derive(Debug, Clone, Serialize)]
pub struct ConfirmRun {
    pub mode: Mode,
    pub measured: Measured,
    /// Emails the notifier delivered for the drop's sales by the end of the wait.
    pub delivered: u64,
    /// Failed attempts to send them (SMTP refused, for the SMTP-down drop).
    pub failed_attempts: u64,
    /// Seconds until every sale's mail was delivered, from the drop's end (SMTP up) or
    /// from SMTP coming back (SMTP down). None when no contact, or when the wait ran out.
    pub all_delivered_s: Option<f64>,
}

/// How long the bench waits for one drop's mails before it reports them undelivered.
const DELIVERY_CEILING: Duration = Duration::from_secs(300);

pub async fn measure(
    endpoints: &crate::endpoints::Endpoints,
    args: &BenchArgs,
    run: &str,
    raw_sales_per_s: f64,
) -> anyhow::Result<Vec<ConfirmRun>> {
    let notifier_db = args
        .stores
        .notifier_db
        .as_deref()
        .context("the confirmation bench reads the notifier's database: --notifier-db")?;
    let notifier = stores::postgres("notifier", notifier_db).await?;
    let mut runs = Vec::new();
    for protocol in super::PROTOCOLS {
        for mode in [Mode::NoContact, Mode::SmtpUp, Mode::SmtpDown] {
            let event = format!(
                "bench-{run}-confirm-{}-{}",
                json::protocol(protocol),
                match mode {
                    Mode::NoContact => "none",
                    Mode::SmtpUp => "up",
                    Mode::SmtpDown => "down",
                }
            );
            if mode == Mode::SmtpDown {
                stack_script(&args.stack_script, "smtp-down")?;
            }
            let measured = super::measured(
                endpoints,
                args,
                protocol,
                &event,
                super::Shape {
                    fans: args.confirm_fans,
                    seats: args.seats,
                    email_fans: mode != Mode::NoContact,
                    ops: false,
                },
                raw_sales_per_s,
            )
            .await;
            if mode == Mode::SmtpDown {
                // SMTP comes back whatever the drop did, so the next runs find it up.
                stack_script(&args.stack_script, "smtp-up")?;
            }
            let measured = measured?;
            let waited_from = Instant::now();
            let mut all_delivered_s = None;
            let mut counts = mail_counts(&notifier, &event).await?;
            if mode != Mode::NoContact {
                loop {
                    if counts.delivered >= measured.drop.sold {
                        all_delivered_s = Some(waited_from.elapsed().as_secs_f64());
                        break;
                    }
                    if waited_from.elapsed() > DELIVERY_CEILING {
                        eprintln!(
                            "bench: {} of {} mails of {event} delivered after {}s; reported as is",
                            counts.delivered,
                            measured.drop.sold,
                            DELIVERY_CEILING.as_secs()
                        );
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    counts = mail_counts(&notifier, &event).await?;
                }
            }
            eprintln!(
                "bench: {} {}: every fan answered in {:.2}s, {} of {} mails delivered ({} failed attempts)",
                json::protocol(protocol),
                mode.label(),
                measured.drop.duration_s,
                counts.delivered,
                measured.drop.sold,
                counts.failed_attempts
            );
            runs.push(ConfirmRun {
                mode,
                measured,
                delivered: counts.delivered,
                failed_attempts: counts.failed_attempts,
                all_delivered_s,
            });
        }
    }
    Ok(runs)
}

struct MailCounts {
    delivered: u64,
    failed_attempts: u64,
}

/// The event's email deliveries, read from the notifier's own database.
async fn mail_counts(notifier: &tokio_postgres::Client, event: &str) -> anyhow::Result<MailCounts> {
    let row = notifier
        .query_one(
            "SELECT count(*) FILTER (WHERE d.state = 'DELIVERED'),
                    coalesce(sum((SELECT count(*) FROM attempts a
                                   WHERE a.delivery_id = d.delivery_id AND NOT a.delivered)), 0)::bigint
               FROM deliveries d JOIN confirmations c USING (txid)
              WHERE c.event_id = $1 AND d.channel = 'email'",
            &[&event],
        )
        .await
        .context("counting the drop's mails in the notifier's database")?;
    Ok(MailCounts {
        delivered: u64::try_from(row.get::<_, i64>(0)).unwrap_or(0),
        failed_attempts: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
    })
}

/// Runs `scripts/stack.sh <command>` (the stack the bench measures).
fn stack_script(script: &Path, command: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new(script)
        .arg(command)
        .status()
        .with_context(|| format!("running {} {command}", script.display()))?;
    anyhow::ensure!(
        status.success(),
        "{} {command} failed: {status}",
        script.display()
    );
    Ok(())
}
