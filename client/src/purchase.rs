//! `ticketdrop purchase` and `ticketdrop ticket verify`: buy seats and print the tickets
//! with their QR codes (terminal, or PNG/SVG with `--qr-out`).

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use proto::v1::*;
use qrcode::QrCode;
use serde_json::json;

use crate::endpoints::{self, Endpoints};
use crate::json;

/// The protocols a purchase can run under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProtocolArg {
    #[value(name = "2pc")]
    TwoPc,
    Saga,
    Lease,
}

impl ProtocolArg {
    pub fn proto(self) -> Protocol {
        match self {
            ProtocolArg::TwoPc => Protocol::TwoPhaseCommit,
            ProtocolArg::Saga => Protocol::Saga,
            ProtocolArg::Lease => Protocol::Lease,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct PurchaseArgs {
    /// Buyer.
    #[arg(long)]
    pub user: String,
    /// Event id.
    #[arg(long)]
    pub event: String,
    /// Named seats, comma-separated (A-1-1,A-1-2).
    #[arg(
        long,
        value_delimiter = ',',
        conflicts_with = "quantity",
        required_unless_present = "quantity"
    )]
    pub seats: Vec<String>,
    /// Or: the best N available seats.
    #[arg(long)]
    pub quantity: Option<u32>,
    /// Protocol.
    #[arg(long, value_enum)]
    pub protocol: ProtocolArg,
    /// Card token (test cards: tok_visa, tok_declined, tok_insufficient_funds, ...).
    #[arg(long, default_value = "tok_visa")]
    pub card: String,
    /// Idempotency key (a fresh one when omitted).
    #[arg(long)]
    pub idempotency_key: Option<String>,
    /// The waiting room's admission token (from `ticketdrop room watch`).
    #[arg(long, conflicts_with = "room")]
    pub admission_token: Option<String>,
    /// Wait in the event's waiting room first: join, wait until admitted, then buy with
    /// the admission token.
    #[arg(long)]
    pub room: bool,
    /// Email the tickets (with their QR codes) here once the purchase commits.
    #[arg(long)]
    pub email: Option<String>,
    /// Send an SMS to this number (E.164, +4915112345678) once the purchase commits.
    #[arg(long)]
    pub phone: Option<String>,
    /// Write the tickets' QR codes to this file (.png or .svg; one file per ticket,
    /// numbered, when there are several).
    #[arg(long)]
    pub qr_out: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum TicketCommand {
    /// Check a ticket token's signature and that its order stands.
    Verify {
        /// The token.
        token: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Waits in the event's room until admitted; the admission token.
async fn admitted(endpoints: &Endpoints, args: &PurchaseArgs) -> anyhow::Result<String> {
    let mut room = endpoints.waiting_room().await?;
    let quiet = args.json;
    let wait = crate::room::wait_in_room(&mut room, &args.event, &args.user, |place| {
        if !quiet && place.state() == FanState::Waiting {
            eprintln!(
                "waiting in the room of {}: position {}",
                place.event_id, place.position
            );
        }
    })
    .await
    .map_err(|status| anyhow::anyhow!("waiting room: {}", endpoints::describe(&status)))?;
    match wait.outcome {
        crate::room::Final::Admitted(admission) => Ok(admission.token),
        crate::room::Final::SoldOut(_) => bail!("sold out: every seat of {} is sold", args.event),
        crate::room::Final::Expired(_) => {
            bail!("the admission to {} expired before it was used", args.event)
        }
    }
}

pub async fn run(endpoints: &Endpoints, args: PurchaseArgs) -> anyhow::Result<()> {
    // Check where the QR codes go before buying: a purchase must not succeed and then fail.
    if let Some(path) = &args.qr_out {
        check_qr_path(path)?;
    }
    let admission_token = match (&args.admission_token, args.room) {
        (Some(token), _) => token.clone(),
        (None, true) => admitted(endpoints, &args).await?,
        (None, false) => String::new(),
    };
    let mut coordinator = endpoints.coordinator().await?;
    let request = PurchaseRequest {
        user_id: args.user.clone(),
        event_id: args.event.clone(),
        seat_ids: args.seats.clone(),
        quantity: args.quantity.unwrap_or(0),
        card_token: args.card.clone(),
        idempotency_key: args
            .idempotency_key
            .clone()
            .unwrap_or_else(|| format!("cli-{}", uuid::Uuid::new_v4().simple())),
        protocol: args.protocol.proto().into(),
        deadline: None,
        admission_token,
        contact: (args.email.is_some() || args.phone.is_some()).then(|| Contact {
            email: args.email.clone().unwrap_or_default(),
            phone: args.phone.clone().unwrap_or_default(),
        }),
    };
    let bought = match coordinator.purchase(request).await {
        Ok(response) => response.into_inner(),
        Err(status) => {
            let refusal = proto::error::Refusal::of(&status);
            let reason = refusal
                .as_ref()
                .map(|r| r.reason.name())
                .unwrap_or_default();
            let metadata = refusal.map(|r| r.metadata).unwrap_or_default();
            if args.json {
                json::print(&json!({
                    "error": {"code": format!("{:?}", status.code()), "message": status.message(),
                              "reason": reason, "metadata": metadata}
                }))?;
            }
            bail!("purchase failed: {}", endpoints::describe(&status));
        }
    };
    let written = match &args.qr_out {
        Some(path) => write_qr_files(path, &bought.tickets)?,
        None => Vec::new(),
    };
    // The CLI's own trace, which the coordinator and every participant continued.
    let trace_id = server_kit::trace::current_trace_id().unwrap_or_default();
    if args.json {
        let mut value = json::purchase(&bought);
        value["trace_id"] = json!(trace_id);
        value["qr_files"] = json!(
            written
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        );
        return json::print(&value);
    }
    println!(
        "purchased {} seat(s) under {} — order {}, txid {}{}",
        bought.seats.len(),
        json::protocol(bought.protocol()),
        bought.order_id,
        bought.txid,
        if bought.replayed { " (replayed)" } else { "" }
    );
    for (seat, ticket) in bought.seats.iter().zip(&bought.tickets) {
        println!(
            "  {:<10} {:>8.2} {}  ticket {}",
            seat.seat_id,
            seat.price_cents as f64 / 100.0,
            bought.currency,
            ticket.ticket_id
        );
    }
    println!(
        "  total {:.2} {}, payment {}",
        bought.amount_cents as f64 / 100.0,
        bought.currency,
        bought.payment_id
    );
    println!("  trace {trace_id}");
    let phases: Vec<String> = bought
        .phases
        .iter()
        .map(|p| format!("{} {:.1} ms", p.phase, json::millis(&p.duration)))
        .collect();
    println!(
        "  phases: {} (total {:.1} ms)",
        phases.join(", "),
        json::millis(&bought.total)
    );
    for ticket in &bought.tickets {
        println!("\n  ticket {} — seat {}", ticket.ticket_id, ticket.seat_id);
        println!("{}", terminal_qr(&ticket.token)?);
    }
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}

pub async fn ticket(endpoints: &Endpoints, command: TicketCommand) -> anyhow::Result<()> {
    let TicketCommand::Verify {
        token,
        json: json_out,
    } = command;
    let verdict = endpoints
        .orders()
        .await?
        .verify_ticket(VerifyTicketRequest { token })
        .await
        .map_err(|s| anyhow::anyhow!(endpoints::describe(&s)))?
        .into_inner();
    if json_out {
        json::print(&json!({
            "valid": verdict.valid, "reason": verdict.reason,
            "ticket": verdict.ticket.as_ref().map(json::ticket),
        }))?;
    } else if verdict.valid {
        let t = verdict.ticket.unwrap_or_default();
        println!(
            "valid: ticket {} — seat {} of {}, order {}, {}",
            t.ticket_id, t.seat_id, t.event_id, t.order_id, t.user_id
        );
    } else {
        println!("not valid: {}", verdict.reason);
    }
    if verdict.valid {
        Ok(())
    } else {
        bail!("ticket not valid: {}", verdict.reason)
    }
}

fn terminal_qr(token: &str) -> anyhow::Result<String> {
    let code = QrCode::new(token.as_bytes()).context("encoding the ticket as a QR code")?;
    Ok(code
        .render::<qrcode::render::unicode::Dense1x2>()
        .dark_color(qrcode::render::unicode::Dense1x2::Light)
        .light_color(qrcode::render::unicode::Dense1x2::Dark)
        .build())
}

/// `--qr-out` ends in .png or .svg and its folder exists (created when missing).
fn check_qr_path(path: &Path) -> anyhow::Result<()> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if extension != "png" && extension != "svg" {
        bail!("--qr-out must end in .png or .svg, got {}", path.display());
    }
    if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("--qr-out: cannot create {}", folder.display()))?;
    }
    Ok(())
}

/// Writes one QR code per ticket: `path` itself for one ticket, `stem-N.ext` for more.
fn write_qr_files(path: &Path, tickets: &[Ticket]) -> anyhow::Result<Vec<PathBuf>> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let mut written = Vec::new();
    for (i, ticket) in tickets.iter().enumerate() {
        let target = if tickets.len() == 1 {
            path.to_path_buf()
        } else {
            let stem = path
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("ticket");
            path.with_file_name(format!("{stem}-{}.{extension}", i + 1))
        };
        let code =
            QrCode::new(ticket.token.as_bytes()).context("encoding the ticket as a QR code")?;
        if extension == "svg" {
            let svg = code
                .render::<qrcode::render::svg::Color<'_>>()
                .min_dimensions(256, 256)
                .build();
            std::fs::write(&target, svg)
                .with_context(|| format!("writing {}", target.display()))?;
        } else {
            write_png(&target, &ticket.token)?;
        }
        written.push(target);
    }
    Ok(written)
}

/// The ticket's QR code as a PNG file.
fn write_png(path: &Path, token: &str) -> anyhow::Result<()> {
    let png = tickets::qr_png(token).map_err(anyhow::Error::msg)?;
    std::fs::write(path, png).with_context(|| format!("writing {}", path.display()))
}
