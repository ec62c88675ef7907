//! The emulated machine as a real filesystem.
//!
//! [`Mount`] serves a [`daxplug_model::Sim`] through the kernel's FUSE protocol (spoken
//! directly on `/dev/fuse`, see [`proto`]): every read renders the model's value, every
//! write runs the model's kernel code and fails with its errno, directories list what
//! exists at that moment, links are links, and a write that blocks in the model blocks the
//! writer until it finishes or a signal interrupts it. [`namespace`] builds private mount
//! namespaces in which unmodified programs see the served files at `/sys` and `/proc`.

pub mod mount;
pub mod namespace;
pub mod proto;
mod server;

pub use mount::{FSTYPE, FuseError, Mount, MountEntry, mount_table};
pub use server::{CONTROL_DIR, DEV_DIR, MODPROBE_FILE};
