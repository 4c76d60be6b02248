//! Crash tests: real coordinator processes SIGKILLed or SIGSTOPped at named points
//! (failpoints) mid-purchase, then restarted; recovery must finish or undo every
//! purchase and the invariants must hold. Built only with `--features failpoints`.

#[path = "../common/mod.rs"]
mod common;
