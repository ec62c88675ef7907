//! Whether the boot path is protected: device memory a policy covers must not be bound and
//! onlined by anyone before the daemon decides. The evidence is the boot gate's record
//! (closed at boot, and what was already bound then), whether the gate's unit is enabled
//! for the next boot, drivers built into the kernel (which bind before any unit runs), and
//! devices the daemon reports blocked until a reboot.

use std::path::Path;

use daxplug_kernel::{Kernel, paths};

use super::{Finding, Severity};
use crate::gate::{self, ClosedBy, GateState};
use crate::rundir::holds::DaemonRecord;

/// Where the gate's unit is enabled (`systemctl enable` links it there).
const GATE_WANTS: &str = "etc/systemd/system/sysinit.target.wants/daxplug-gate.service";
/// The way out for memory onlined before daxplug could act.
const WAY_OUT: &str = "reboot: the boot gate (daxplug-gate.service) keeps the device unbound until the daemon applies its rule; or add memhp_default_state=offline to the kernel command line";

/// The boot-path findings. `root` is the file system root (none on the emulated machine);
/// `policy` whether a policy is in force (without one there is nothing to protect).
pub fn findings(
    k: &dyn Kernel,
    run_dir: &Path,
    root: Option<&Path>,
    policy: bool,
    daemon: Option<&DaemonRecord>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut add = |severity, code, subject: &str, evidence: String, fix: String| {
        out.push(Finding {
            severity,
            code,
            subject: subject.to_owned(),
            evidence,
            fix,
        });
    };
    for (device, state) in daemon.map_or(&[][..], |d| &d.blocked[..]) {
        add(
            Severity::Warning,
            "blocked_until_reboot",
            &device.to_string(),
            format!(
                "the daemon's rule wants {state}, but the memory is in a kernel zone and the kernel will not take it offline (it was onlined there before daxplug acted)"
            ),
            WAY_OUT.to_owned(),
        );
    }
    let gate = gate::state(k, run_dir);
    match &gate {
        Ok(GateState::Closed(r)) if r.bound_before.is_empty() || r.by != ClosedBy::Boot => add(
            Severity::Info,
            "boot_gate_closed",
            "boot gate",
            r.describe(),
            "nothing: dax devices bind only by the daemon's hand (or its admission, for devices no rule covers)".into(),
        ),
        Ok(GateState::Closed(r)) => add(
            Severity::Warning,
            "boot_gate_late",
            "boot gate",
            format!(
                "{}: the initramfs or a driver built into the kernel bound them before any unit ran",
                r.describe()
            ),
            "keep dax drivers out of the initramfs, or boot with memhp_default_state=offline so that what binds early stays offline for the daemon".into(),
        ),
        Ok(GateState::Breached(_)) => add(
            Severity::Warning,
            "boot_gate_breached",
            paths::DAX_DRIVERS_AUTOPROBE,
            "the gate's record says closed, but drivers_autoprobe is 1 again: dax devices that appear bind on their own".into(),
            "find what wrote it; daxplug gate close closes it again".into(),
        ),
        _ => {}
    }
    // The next boot: the gate's unit enabled, or the kernel told to add memory offline.
    let next_boot = root.is_none_or(|r| r.join(GATE_WANTS).exists()) || cmdline_offline(k);
    let open = matches!(gate, Ok(GateState::Open));
    if policy && (open || !next_boot) {
        let (mut evidence, mut fix) = (Vec::new(), Vec::new());
        if open {
            evidence.push("the boot gate is open while a policy is in force: a device that appears binds at once, and kmem onlines its memory as auto_online_blocks says before the daemon acts");
            fix.push("systemctl start daxplug (the daemon keeps the gate closed while it runs)");
        }
        if !next_boot {
            evidence.push("daxplug-gate.service is not enabled: at the next boot kmem can bind device memory and online it before the daemon starts");
            fix.push(
                "systemctl enable daxplug-gate.service (or boot with memhp_default_state=offline)",
            );
        }
        add(
            Severity::Warning,
            "boot_path_unprotected",
            "boot gate",
            evidence.join("; "),
            fix.join("; "),
        );
    }
    if let Some(root) = root
        && policy
        && let Some(builtin) = builtin_binders(k, root)
    {
        add(
            Severity::Warning,
            "dax_built_in",
            "kernel",
            format!(
                "{builtin} built into the kernel: they bind device memory during the kernel's own start, before any unit runs"
            ),
            "boot with memhp_default_state=offline: what binds early then stays offline for the daemon".into(),
        );
    }
    out
}

/// `memhp_default_state=offline` on the kernel command line.
fn cmdline_offline(k: &dyn Kernel) -> bool {
    k.read(paths::CMDLINE).is_ok_and(|c| {
        c.split_whitespace()
            .any(|w| w == "memhp_default_state=offline")
    })
}

/// kmem and a dax region driver both built into the running kernel (`modules.builtin`).
fn builtin_binders(k: &dyn Kernel, root: &Path) -> Option<String> {
    let release = k.read(paths::OSRELEASE).ok()?;
    let list = std::fs::read_to_string(
        root.join("lib/modules")
            .join(release.trim())
            .join("modules.builtin"),
    )
    .ok()?;
    let has = |m: &str| list.lines().any(|l| l.ends_with(&format!("/{m}.ko")));
    let regions: Vec<&str> = ["dax_hmem", "dax_cxl", "dax_pmem"]
        .into_iter()
        .filter(|m| has(m))
        .collect();
    (has("kmem") && !regions.is_empty()).then(|| format!("kmem and {}", regions.join(", ")))
}
