//! `daxplug destroy DEV`: a device of a dynamic region gives its memory back to the
//! region's free space.

use daxplug_engine::{LayoutChange, change_layout};

use crate::exit::Exit;
use crate::machine::{Machine, on_machine};
use crate::transition::{TransitionArgs, confirmed, declined, output};

/// What `destroy` was asked for.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The device, such as dax0.1.
    #[arg(value_name = "DEV")]
    pub device: String,
    #[command(flatten)]
    pub common: TransitionArgs,
}

impl Args {
    /// `daxplug destroy DEV`.
    pub fn run(self, m: &Machine) -> anyhow::Result<(String, Exit)> {
        on_machine(m, !self.common.dry_run, |b| {
            let host = b.host();
            daxplug_engine::discovery::require_device(host.kernel(), &self.device)?;
            if !self.common.dry_run
                && !confirmed(&format!("Destroy {}?", self.device), self.common.yes)
            {
                return Ok(declined());
            }
            let opts = self.common.options()?;
            let r = change_layout(host.as_ref(), &self.device, LayoutChange::Destroy, &opts)?;
            // A destroyed device had its memory out of the system already: nothing moves.
            output(&[r], &[], self.common.json)
        })
    }
}
