//! `daxplug create`, `resize` and `destroy`: carving a dynamic region (hmem, CXL) into
//! devices, with `set`'s lock, journal, rollback, `--dry-run`, exit codes and JSON.

use std::time::Duration;

use daxplug_engine::{Host, LayoutChange, NewDevice, Target, change_layout, create};

use crate::exit::{self, Exit};
use crate::setcmd::{options, output, placement_before};

/// What every layout command takes besides its own arguments.
#[derive(Debug, Clone, Copy)]
pub struct Common {
    /// `--timeout`.
    pub timeout: Option<Duration>,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--json`.
    pub json: bool,
    /// `--force`.
    pub force: bool,
    /// `--override`.
    pub daemon_override: bool,
    /// `--yes`.
    pub yes: bool,
}

fn size(text: &str, what: &str) -> Result<u64, exit::Usage> {
    crate::units::parse_size(text).map_err(|e| exit::Usage(format!("{what}: {e}")))
}

/// `daxplug create REGION [--size SIZE|max] [--align BYTES] [--state STATE]`.
pub fn run_create(
    host: &dyn Host,
    region_arg: &str,
    size_arg: &str,
    align_arg: Option<&str>,
    state: Target,
    c: Common,
) -> anyhow::Result<(String, Exit)> {
    let new = NewDevice {
        size: match size_arg {
            "max" => None,
            s => Some(size(s, "--size")?),
        },
        align: align_arg.map(|a| size(a, "--align")).transpose()?,
        target: state,
    };
    let region = crate::args::region(region_arg).map_err(exit::Usage)?;
    let opts = options(c.timeout, c.force, c.dry_run, c.json, c.daemon_override)?;
    let before = placement_before(host, c.dry_run);
    let r = create(host, region, new, &opts)?;
    output(host, &[r], before.as_ref(), c.json)
}

/// `daxplug resize DEV SIZE`: the device keeps its mode (devdax stays devdax; unbound, or
/// kmem with no memory, ends unbound).
pub fn run_resize(
    host: &dyn Host,
    device: &str,
    size_arg: &str,
    c: Common,
) -> anyhow::Result<(String, Exit)> {
    let size = size(size_arg, "SIZE")?;
    daxplug_engine::discovery::require_device(host.kernel(), device)?;
    // The transition reads the device and keeps its mode.
    let change = LayoutChange::Resize {
        size,
        align: None,
        target: None,
    };
    let opts = options(c.timeout, c.force, c.dry_run, c.json, c.daemon_override)?;
    let before = placement_before(host, c.dry_run);
    let r = change_layout(host, device, change, &opts)?;
    output(host, &[r], before.as_ref(), c.json)
}

/// `daxplug destroy DEV`.
pub fn run_destroy(host: &dyn Host, device: &str, c: Common) -> anyhow::Result<(String, Exit)> {
    daxplug_engine::discovery::require_device(host.kernel(), device)?;
    if !c.dry_run && !crate::setcmd::confirmed(&format!("Destroy {device}?"), c.yes) {
        return Ok(crate::setcmd::declined());
    }
    let opts = options(c.timeout, c.force, c.dry_run, c.json, c.daemon_override)?;
    let r = change_layout(host, device, LayoutChange::Destroy, &opts)?;
    // A destroyed device had its memory out of the system already: nothing moves.
    output(host, &[r], None, c.json)
}
