//! One file per command: each holds the command's arguments (a `clap::Args` struct, or the
//! subcommand enum of `gate` and `sim`) and its `run`, which opens the machine it needs
//! (`crate::machine`), calls the engine and renders the answer. `main.rs` holds the table
//! that maps each command to its file.

pub mod create;
pub mod daemon;
pub mod demo;
pub mod destroy;
pub mod doctor;
pub mod gate;
pub mod generate;
pub mod hold;
pub mod list;
pub mod recover;
pub mod release;
pub mod resize;
pub mod set;
pub mod sim;
pub mod status;
