//! `daxplug resize DEV SIZE`: grow or shrink a device of a dynamic region while its memory
//! is out of the system.

use daxplug_engine::{LayoutChange, change_layout, placement_before, placement_since};

use crate::exit::Exit;
use crate::machine::{Machine, on_machine};
use crate::transition::{TransitionArgs, output};
use crate::units::size_arg;

/// What `resize` was asked for.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The device, such as dax0.1.
    #[arg(value_name = "DEV")]
    pub device: String,
    /// The new size: bytes, or with K, M, G or T (binary), such as 256M.
    #[arg(value_name = "SIZE")]
    pub size: String,
    #[command(flatten)]
    pub common: TransitionArgs,
}

impl Args {
    /// `daxplug resize DEV SIZE`: the device keeps its mode (devdax stays devdax; unbound,
    /// or kmem with no memory, ends unbound).
    pub fn run(self, m: &Machine) -> anyhow::Result<(String, Exit)> {
        let size = size_arg(&self.size, "SIZE")?;
        on_machine(m, !self.common.dry_run, |b| {
            let host = b.host();
            daxplug_engine::discovery::require_device(host.kernel(), &self.device)?;
            // The transition reads the device and keeps its mode.
            let change = LayoutChange::Resize {
                size,
                align: None,
                target: None,
            };
            let opts = self.common.options()?;
            let before = placement_before(host.as_ref(), self.common.dry_run);
            let r = change_layout(host.as_ref(), &self.device, change, &opts)?;
            let reports = [r];
            let placement = placement_since(host.as_ref(), &reports, before.as_ref());
            output(&reports, &placement, self.common.json)
        })
    }
}
