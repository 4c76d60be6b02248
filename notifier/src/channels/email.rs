//! Email over SMTP: an HTML mail with one inline QR image per ticket (cid: links) and
//! the tickets' tokens, with a plain-text alternative. Its Message-ID is the delivery
//! id, the same on every attempt, so a mail client can drop a repeat.

use std::time::Duration;

use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::shows::Show;
use crate::store::Claimed;

pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Email {
    pub fn new(smtp_url: &str, from: &str, timeout: Duration) -> anyhow::Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(smtp_url)
            .map_err(|e| anyhow::anyhow!("--smtp-url {smtp_url:?}: {e}"))?
            .timeout(Some(timeout))
            .build();
        let from = from
            .parse()
            .map_err(|e| anyhow::anyhow!("--email-from {from:?}: {e}"))?;
        Ok(Self { transport, from })
    }

    pub async fn send(&self, claimed: &Claimed, show: &Show) -> Result<(), String> {
        let message = self.message(claimed, show)?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("smtp: {e}"))
    }

    fn message(&self, claimed: &Claimed, show: &Show) -> Result<Message, String> {
        let confirmation = &claimed.confirmation;
        let to: Mailbox = claimed
            .target
            .parse()
            .map_err(|e| format!("email address {:?}: {e}", claimed.target))?;
        let summary = super::summary(confirmation, show);
        let seats = super::seats(confirmation);
        let total = super::money(confirmation.amount_cents, &confirmation.currency);
        let details = format!(
            "Order {}, event {}, purchase {}.",
            confirmation.order_id, confirmation.event_id, confirmation.txid
        );

        let mut text =
            format!("Your purchase is confirmed: {summary}.\nSeats: {seats}.\nTotal: {total}.\n\n");
        let mut html = format!(
            "<h2>{}</h2><p>{}<br>{}</p><p>Your purchase is confirmed: {}.</p>\
             <p>Seats: {}.</p><p>Total: {}.</p>",
            escape(&show.name),
            escape(&show.when()),
            escape(&show.venue),
            escape(&summary),
            escape(&seats),
            escape(&total)
        );
        let mut images = Vec::new();
        for (i, ticket) in confirmation.tickets.iter().enumerate() {
            let cid = format!("ticket-{}", i + 1);
            let seat = proto::seat_label(&ticket.seat_id);
            text.push_str(&format!(
                "{seat} (ticket {}, seat {}): {}\n",
                ticket.ticket_id, ticket.seat_id, ticket.token
            ));
            html.push_str(&format!(
                "<h3>{seat}</h3><p><img src=\"cid:{cid}\" alt=\"QR code of the ticket for {seat}\" \
                 width=\"256\" height=\"256\"></p><p>Ticket {id}<br><code>{token}</code></p>",
                seat = escape(&seat),
                id = escape(&ticket.ticket_id),
                token = escape(&ticket.token),
            ));
            let png = tickets::qr_png(&ticket.token)?;
            images.push(
                Attachment::new_inline(cid)
                    .body(png, ContentType::parse("image/png").expect("a valid type")),
            );
        }
        text.push_str(&format!("\n{details}\n"));
        html.push_str(&format!("<p><small>{}</small></p>", escape(&details)));
        let mut related = MultiPart::related().singlepart(SinglePart::html(html));
        for image in images {
            related = related.singlepart(image);
        }
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(format!("Your tickets for {}", show.title()))
            .message_id(Some(format!(
                "<{}@ticketdrop.localhost>",
                claimed.delivery_id
            )))
            .multipart(
                MultiPart::alternative()
                    .singlepart(SinglePart::plain(text))
                    .multipart(related),
            )
            .map_err(|e| format!("building the mail: {e}"))
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
