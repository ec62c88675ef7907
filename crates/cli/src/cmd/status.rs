//! `daxplug status DEV`: one device in detail, its ranges, `/proc/iomem` entries and a row
//! per memory block, read block by block.

use anyhow::Context as _;
use daxplug_engine::{Scope, discover};

use crate::exit::Exit;
use crate::machine::{Machine, on_machine, read_guard};
use crate::{human, json};

/// What `status` was asked for.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The device, such as dax0.0.
    #[arg(value_name = "DEV")]
    pub device: String,
    /// Print one JSON object (the same schema as `list --json --blocks`).
    #[arg(short, long)]
    pub json: bool,
}

impl Args {
    /// `daxplug status DEV`.
    pub fn run(self, m: &Machine) -> anyhow::Result<(String, Exit)> {
        on_machine(m, false, |b| {
            let _read = read_guard(b);
            let k = b.kernel();
            let run_dir = b.host().run_dir();
            let device = self.device.as_str();
            let topo = discover(k, &Scope::Devices(vec![device.to_owned()]))?;
            let d = topo
                .devices
                .iter()
                .find(|d| d.name == device)
                .with_context(|| format!("discovery did not return {device}"))?;
            let text = if self.json {
                super::list::to_json(&json::Report::new(
                    &topo,
                    true,
                    &daxplug_engine::rundir::holds::holds(&run_dir),
                ))?
            } else {
                let holds = daxplug_engine::rundir::holds::holds_of(&run_dir, d.name);
                human::status(&topo, d) + &human::holds(&holds)
            };
            Ok((text, Exit::Ok))
        })
    }
}
