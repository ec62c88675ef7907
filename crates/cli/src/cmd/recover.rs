//! `daxplug recover`: finish or roll back a transition a crash interrupted.

use daxplug_engine::{Options, recover};

use crate::exit::Exit;
use crate::machine::{Machine, on_machine};

/// What `recover` was asked for.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object.
    #[arg(short, long)]
    pub json: bool,
}

impl Args {
    /// `daxplug recover`.
    pub fn run(self, m: &Machine) -> anyhow::Result<(String, Exit)> {
        on_machine(m, true, |b| {
            let opts = Options {
                cancel: crate::transition::cancel_flag()?,
                ..Options::default()
            };
            let done = recover(b.host().as_ref(), &opts)?;
            if self.json {
                let mut text = serde_json::to_string_pretty(&crate::json::RecoverJson {
                    schema_version: crate::json::SCHEMA_VERSION,
                    recovered: &done,
                })?;
                text.push('\n');
                return Ok((text, Exit::Ok));
            }
            if done.is_empty() {
                return Ok((
                    "Nothing to recover: no interrupted transition in the journal.\n".to_owned(),
                    Exit::Ok,
                ));
            }
            Ok((done.into_iter().map(|l| l + "\n").collect(), Exit::Ok))
        })
    }
}
