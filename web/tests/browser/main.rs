//! The fans' page and the operator's view in a real browser: Debian's Chromium driven by
//! Playwright (web/app/e2e) against a whole mesh of real services and the web server,
//! each test asserting what the fan saw and what the databases hold.

mod crowd;
mod journey;
mod queue;
mod screenshots;
mod site;
