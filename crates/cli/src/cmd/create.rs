//! `daxplug create REGION`: a new device carved from a dynamic region's (hmem, CXL) free
//! space, with `set`'s lock, journal, rollback, `--dry-run`, exit codes and JSON.

use daxplug_engine::{NewDevice, Target, create, placement_before, placement_since};

use crate::exit::{self, Exit};
use crate::machine::{Machine, on_machine};
use crate::transition::{TransitionArgs, output};
use crate::units::size_arg;

/// What `create` was asked for.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The region: its id, such as 0 or region0.
    #[arg(value_name = "REGION")]
    pub region: String,
    /// The size: bytes, or with K, M, G or T (binary), such as 512M or 1.5G; a multiple
    /// of the alignment (2 MiB at least). `max`, or no --size, takes all the region's
    /// free space.
    #[arg(short, long, value_name = "SIZE", default_value = "max")]
    pub size: String,
    /// The device's alignment, written before its size: 4K, 2M or 1G.
    #[arg(long, value_name = "BYTES")]
    pub align: Option<String>,
    /// The state the new device ends in: devdax, unplugged, online_movable, ...
    #[arg(long, value_name = "STATE", default_value = "devdax", value_parser = crate::args::TokenParser::<Target>::new())]
    pub state: Target,
    #[command(flatten)]
    pub common: TransitionArgs,
}

impl Args {
    /// `daxplug create REGION [--size SIZE|max] [--align BYTES] [--state STATE]`.
    pub fn run(self, m: &Machine) -> anyhow::Result<(String, Exit)> {
        let new = NewDevice {
            size: match self.size.as_str() {
                "max" => None,
                s => Some(size_arg(s, "--size")?),
            },
            align: self
                .align
                .as_deref()
                .map(|a| size_arg(a, "--align"))
                .transpose()?,
            target: self.state,
        };
        let region = crate::args::region(&self.region).map_err(exit::Usage)?;
        on_machine(m, !self.common.dry_run, |b| {
            let host = b.host();
            let opts = self.common.options()?;
            let before = placement_before(host.as_ref(), self.common.dry_run);
            let r = create(host.as_ref(), region, new, &opts)?;
            let reports = [r];
            let placement = placement_since(host.as_ref(), &reports, before.as_ref());
            output(&reports, &placement, self.common.json)
        })
    }
}
