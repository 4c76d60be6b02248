//! The `ticketdrop` command line: everything lives in the library.

#[global_allocator]
static ALLOCATOR: server_kit::Allocator = server_kit::Allocator {};

#[tokio::main]
async fn main() {
    ticketdrop::main().await;
}
