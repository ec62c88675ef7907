//! `daxplug doctor`: the risks on a machine, each with its evidence and its fix.
//!
//! It reads sysfs and procfs through the kernel interface (devices, policy, the kernel
//! command line) and, where there is a file system root to look at, the configuration of
//! the controllers daxplug would compete with: udev rules that online memory, daxctl's
//! reconfigure rule, service and configuration; and where device memory lands
//! ([`placement`]: tiers, demotion, interleave weights).

pub mod boot;
pub mod daxctl;
mod placement;
pub mod udev_rules;

use std::path::Path;

use daxplug_abi::OnlineType;
use daxplug_kernel::{Kernel, paths};
use serde::Serialize;

use crate::discovery::discover;
use crate::discovery::error::DiscoveryError;
use crate::discovery::observe::ObservedState;
use crate::discovery::topology::{KernelAbi, Scope, Topology};
use crate::doctor::udev_rules::{Competes, DAX_ADD, MEMORY_ADD, RuleFile, competing};
use crate::plan::policy::Policy;

/// Rules that match on a device's name alone: names move between boots (since Linux 7.1
/// the same range can be `dax0.0` under a CXL region or `dax6.0` under hmem, by probe
/// order), so such a rule can pick another device after a reboot.
pub fn policy_findings(
    k: &dyn Kernel,
    file: &Path,
    policy: &Policy,
    topo: &Topology,
) -> Vec<Finding> {
    let mut out: Vec<Finding> = policy
        .rules
        .iter()
        .filter_map(|r| {
            let m = &r.matcher;
            let name = m.name.as_ref()?;
            let only_name = m.region.is_none()
                && m.target_node.is_none()
                && m.min_size.is_none()
                && m.max_size.is_none()
                && m.within.is_none()
                && m.backing.is_none();
            if !only_name {
                return None;
            }
            let instead = topo
                .devices
                .iter()
                .find(|d| d.name == name.as_str())
                .and_then(|d| stable_match(k, topo, d))
                .unwrap_or_else(|| {
                    "match on backing, with within for a device carved from a region (daxplug list --json shows each device's backing and ranges)".to_owned()
                });
            Some(Finding {
                severity: Severity::Warning,
                code: "name_only_rule",
                subject: format!("{} rule {}", file.display(), r.index),
                evidence: format!(
                    "matches {name} by name only: device names follow probe order and can move between boots"
                ),
                fix: instead,
            })
        })
        .collect();
    if let Some(nfd) = &policy.nfd_file
        && let Some(dir) = nfd.parent().filter(|d| !d.is_dir())
    {
        out.push(Finding {
            severity: Severity::Warning,
            code: "nfd_dir_missing",
            subject: format!("{} [node_feature_discovery]", file.display()),
            evidence: format!(
                "{} does not exist: the daemon applies its rules, but writes no labels for Node Feature Discovery",
                dir.display()
            ),
            fix: "create it (nfd-worker reads /etc/kubernetes/node-feature-discovery/features.d), or drop the section; under systemd, also add it to ReadWritePaths= in a drop-in".to_owned(),
        });
    }
    out
}

/// A match that takes `dev` and no other present device, for the fix of a name-only rule:
/// its region's backing alone where the region has one device, else with the device's
/// extent (`within`). `None` when nothing but the name tells it apart.
fn stable_match(
    k: &dyn Kernel,
    topo: &Topology,
    dev: &crate::discovery::topology::Device,
) -> Option<String> {
    let backing = dev.backing.clone()?;
    let by_backing = crate::plan::policy::Match {
        backing: Some(backing.clone()),
        ..Default::default()
    };
    let only_this = |m: &crate::plan::policy::Match| {
        topo.devices
            .iter()
            .filter(|d| m.matches(k, topo, d))
            .map(|d| d.name)
            .eq([dev.name])
    };
    if only_this(&by_backing) {
        return Some(format!(
            "match = {{ backing = \"{backing}\" }} (what {} is now, and no other device)",
            dev.name
        ));
    }
    let start = dev.mappings.iter().map(|m| m.range.start).min()?;
    let end = dev.mappings.iter().map(|m| m.range.end).max()?;
    let within = daxplug_abi::PhysRange { start, end };
    let by_extent = crate::plan::policy::Match {
        within: Some(within),
        ..by_backing
    };
    only_this(&by_extent).then(|| {
        format!(
            "match = {{ backing = \"{backing}\", within = \"{start:#x}-{end:#x}\" }} ({} within its region, and no other device; a resize that moves it out of that range needs the rule changed)",
            dev.name
        )
    })
}

daxplug_abi::token_enum! {
    /// How bad a finding is, least first; the token is what JSON and the table print.
    Severity, "a severity" {
        /// Worth knowing; nothing wrong.
        Info = "note" | "info",
        /// A controller or setting that can tear or strand device memory.
        Warning = "warning",
        /// A device that is torn or leaked now.
        Error = "error",
    }
}

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// How bad.
    pub severity: Severity,
    /// A stable code for scripts.
    pub code: &'static str,
    /// What it is about (a device, a file, a setting).
    pub subject: String,
    /// What was seen.
    pub evidence: String,
    /// What to do about it.
    pub fix: String,
}

/// The udev rules directories, in the order udev reads them.
pub const UDEV_RULES_DIRS: [&str; 4] = [
    "etc/udev/rules.d",
    "run/udev/rules.d",
    "usr/lib/udev/rules.d",
    "lib/udev/rules.d",
];

/// Where to look for controller configuration: a file system root (`/`, or a copied tree),
/// or none (the emulated machine has no files besides sysfs and procfs).
pub fn check(k: &dyn Kernel, root: Option<&Path>) -> Result<Vec<Finding>, DiscoveryError> {
    check_with_policy(k, root, None)
}

/// [`check`], and the daemon's policy (its file and contents) checked against the devices.
pub fn check_with_policy(
    k: &dyn Kernel,
    root: Option<&Path>,
    policy: Option<(&Path, &Policy)>,
) -> Result<Vec<Finding>, DiscoveryError> {
    let topo = discover(k, &Scope::All)?;
    let mut out = Vec::new();
    if let Some((file, p)) = policy {
        out.extend(policy_findings(k, file, p, &topo));
    }
    let mut add = |severity, code, subject: String, evidence: String, fix: String| {
        out.push(Finding {
            severity,
            code,
            subject,
            evidence,
            fix,
        });
    };

    if topo.limited {
        add(
            Severity::Warning,
            "read_without_root",
            "doctor".into(),
            "read without root: the kernel hides /proc/iomem's addresses and the devices' ranges, so torn, leaked (stuck) and kernel-zone devices cannot be found; nothing here says the machine is healthy".into(),
            "run it as root (sudo daxplug doctor); a monitoring job needs CAP_SYS_ADMIN to read /proc/iomem".into(),
        );
    }
    match topo.kernel_abi {
        KernelAbi::Atomic => add(Severity::Info, "atomic_abi", "kernel".into(), "kmem-bound devices have daxX.Y/state".into(), "nothing: daxplug switches devices with one write".into()),
        KernelAbi::Legacy => add(Severity::Info, "legacy_abi", "kernel".into(), "a kmem-bound device has no daxX.Y/state".into(), "nothing: daxplug runs its own protocol (lock, policy at bind, rollback, fenced unbind); a kernel with the atomic series makes it one write".into()),
        KernelAbi::Unknown => {}
    }
    for o in &topo.orphans {
        add(
            Severity::Error,
            "stuck",
            o.name.clone(),
            o.sentence(),
            "reboot to free the range; nothing on the bus can release it".into(),
        );
    }
    for d in &topo.devices {
        match d.state {
            ObservedState::Stuck => add(
                Severity::Error,
                "stuck",
                d.name.to_string(),
                crate::discovery::problems::problems(d).into_iter().next().map_or_else(String::new, |p| p.message),
                "reboot to free the range; meanwhile leave the device alone (daxplug refuses to touch it)".into(),
            ),
            ObservedState::Mixed => add(
                Severity::Error,
                "mixed",
                d.name.to_string(),
                crate::discovery::problems::problems(d).into_iter().next().map_or_else(String::new, |p| p.message),
                format!("daxplug set {} online_movable (or unplugged) makes it whole", d.name),
            ),
            ObservedState::Famfs | ObservedState::OtherDriver => add(
                Severity::Info,
                "other_driver",
                d.name.to_string(),
                format!("bound to {}", d.driver.name().unwrap_or("?")),
                if d.state == ObservedState::Famfs {
                    format!("nothing, if a famfs file system uses it: daxplug moves it only with --force (daxplug set {} devdax --force)", d.name)
                } else {
                    "nothing: daxplug leaves devices of drivers it does not know alone".to_owned()
                },
            ),
            ObservedState::OnlineKernel => add(
                Severity::Warning,
                "kernel_zone",
                d.name.to_string(),
                format!("{} blocks online in a kernel zone", d.counts.normal),
                format!("kernel allocations land there and pin them: it can likely never be unplugged without a reboot; next time use daxplug set {} online_movable", d.name),
            ),
            _ => {}
        }
    }
    match topo.policy.auto_online_blocks {
        Some(OnlineType::Offline) | None => {}
        Some(t) => add(
            Severity::Warning,
            "auto_online_blocks",
            paths::AUTO_ONLINE_BLOCKS.into(),
            format!("auto_online_blocks={t}: the kernel onlines hot-added memory itself{}", if t == OnlineType::Online { ", into Normal under contig-zones" } else { "" }),
            "echo offline > /sys/devices/system/memory/auto_online_blocks (and memhp_default_state=offline on the kernel command line); daxplug applies the online type you ask for inside the add anyway".into(),
        ),
    }
    if let Some(p) = topo.policy.online_policy {
        add(
            Severity::Info,
            "online_policy",
            "memory_hotplug.online_policy".into(),
            format!("online_policy={p}"),
            "plain `online` picks Movable only under auto-movable; daxplug always names the zone"
                .into(),
        );
    }
    if let Some(m) = topo.policy.memmap_on_memory {
        add(Severity::Info, "memmap_on_memory", "memory_hotplug.memmap_on_memory".into(), format!("memmap_on_memory={m}"), "with Y, hot-added memory carries its own memmap (less MemTotal, but nothing to allocate elsewhere)".into());
    }
    if let Ok(cmdline) = k.read(paths::CMDLINE) {
        for word in cmdline.split_whitespace() {
            if let Some(v) = word.strip_prefix("memhp_default_state=") {
                add(
                    Severity::Warning,
                    "memhp_default_state",
                    paths::CMDLINE.into(),
                    word.into(),
                    format!(
                        "memory is onlined as {v} at hot-add unless auto_online_blocks is changed; set memhp_default_state=offline and let daxplug choose"
                    ),
                );
            }
            if word == "movable_node" {
                add(
                    Severity::Info,
                    "movable_node",
                    paths::CMDLINE.into(),
                    word.into(),
                    "plain `online` prefers Movable on hotpluggable nodes".into(),
                );
            }
        }
    }
    out.extend(placement::findings(&topo));
    if let Some(root) = root {
        udev_rules(root, &topo, &mut out);
        daxctl_config(root, &topo, &mut out);
    }
    out.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(out)
}

/// The rule files udev would read under `root`: by name, the highest-priority directory's
/// (`/etc` over `/run` over the system's); an empty file or a link to /dev/null masks one.
fn rule_files(root: &Path) -> Vec<RuleFile> {
    let mut candidates = Vec::new();
    for (priority, dir) in UDEV_RULES_DIRS.iter().enumerate() {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_none_or(|x| x != "rules") {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            let masked = std::fs::read_link(&path).is_ok_and(|t| t == Path::new("/dev/null"));
            let file = (!masked)
                .then(|| std::fs::read_to_string(&path).ok())
                .flatten()
                .filter(|t| !t.trim().is_empty())
                .map(|text| RuleFile {
                    path: Path::new("/")
                        .join(path.strip_prefix(root).unwrap_or(&path))
                        .display()
                        .to_string(),
                    text,
                });
            // /lib and /usr/lib are one level: the system's.
            candidates.push((priority.min(2), name, file));
        }
    }
    crate::doctor::udev_rules::effective(candidates)
        .into_iter()
        .map(|(_, f)| f)
        .collect()
}

fn udev_rules(root: &Path, topo: &Topology, out: &mut Vec<Finding>) {
    let files = rule_files(root);
    let name = |path: &str| path.rsplit('/').next().unwrap_or(path).to_owned();
    for hit in competing(&files, &MEMORY_ADD) {
        let Competes::OnlinesMemory(values) = &hit.competes else {
            continue;
        };
        out.push(Finding {
            severity: Severity::Warning,
            code: "udev_onlines_memory",
            subject: format!("{}:{}", hit.path, hit.line),
            evidence: format!(
                "{} (on a memory block's add it writes {})",
                hit.text,
                values.iter().cloned().collect::<Vec<_>>().join(" or ")
            ),
            fix: format!(
                "it races any whole-device transition; override it with an empty /etc/udev/rules.d/{} (or delete it) and let daxplug daemon apply the policy",
                name(&hit.path)
            ),
        });
    }
    let unit = daxctl::unit_exists(root);
    for hit in competing(&files, &DAX_ADD) {
        let mask = format!(
            "an empty /etc/udev/rules.d/{}{}",
            name(&hit.path),
            if unit {
                format!(" and systemctl mask {}", daxctl::RECONFIGURE_UNIT)
            } else {
                String::new()
            }
        );
        out.push(match daxctl::rule_inert(root, &hit.text, topo) {
            None => Finding {
                severity: Severity::Warning,
                code: "daxctl_udev_rule",
                subject: format!("{}:{}", hit.path, hit.line),
                evidence: format!(
                    "{} (it can act: a daxctl.conf.d section matches a device here)",
                    hit.text
                ),
                fix: format!(
                    "daxctl reconfigures every new dax device per daxctl.conf.d, racing daxplug daemon: override it with {mask}"
                ),
            },
            Some(why) => Finding {
                severity: Severity::Info,
                code: "daxctl_udev_rule_inert",
                subject: format!("{}:{}", hit.path, hit.line),
                evidence: format!("{}: it cannot act here: {why}", hit.text),
                fix: format!("nothing now; if it is fixed or configured later it will race daxplug daemon: override it with {mask}"),
            },
        });
    }
}

fn daxctl_config(root: &Path, topo: &Topology, out: &mut Vec<Finding>) {
    let unit = daxctl::unit_exists(root);
    if unit {
        out.push(Finding {
            severity: Severity::Info,
            code: "daxctl_service",
            subject: daxctl::RECONFIGURE_UNIT.into(),
            evidence: "daxctl's per-device reconfigure service is installed".into(),
            fix: format!("harmless without daxctl.conf.d sections; with them it competes with daxplug daemon: systemctl mask {}", daxctl::RECONFIGURE_UNIT),
        });
    }
    for section in daxctl::sections(root) {
        let subject = format!("{}:{}", section.file.display(), section.line);
        let hits = daxctl::matches(&section, topo);
        out.push(if hits.is_empty() {
            Finding {
                severity: Severity::Info,
                code: "daxctl_conf_no_match",
                subject,
                evidence: format!(
                    "{}: matches no device present ({})",
                    section.header,
                    section.uuid.as_deref().map_or_else(
                        || "it has no nvdimm.uuid, the key daxctl matches on".to_owned(),
                        |u| format!("no NVDIMM namespace with nvdimm.uuid {u}")
                    )
                ),
                fix: "nothing now; a namespace with that uuid would be reconfigured by daxctl, racing daxplug: move the intent to a daxplug rule and delete the section".into(),
            }
        } else {
            Finding {
                severity: Severity::Warning,
                code: "daxctl_conf",
                subject,
                evidence: format!("{}: matches {}", section.header, hits.join(", ")),
                fix: "daxctl reconfigures this device when it appears, racing daxplug; move the intent to a daxplug rule and delete the section".into(),
            }
        });
    }
}

/// A maintenance hold, as a finding: not a problem, but what keeps the daemon away.
pub fn hold_finding(h: &crate::rundir::holds::Hold) -> Finding {
    Finding {
        severity: Severity::Info,
        code: "held",
        subject: h.device.to_string(),
        evidence: h.phrase(),
        fix: format!(
            "the daemon leaves it alone until every hold on it ends (`daxplug release {} --holder {}`)",
            h.device, h.holder
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udev_lines_that_online_memory() {
        let flagged = |line: &str| {
            !competing(
                &[RuleFile {
                    path: "t.rules".into(),
                    text: line.into(),
                }],
                &MEMORY_ADD,
            )
            .is_empty()
        };
        assert!(flagged(
            r#"SUBSYSTEM=="memory", ACTION=="add", ATTR{state}=="offline", ATTR{state}="online_movable""#
        ));
        assert!(flagged(
            r#"SUBSYSTEM=="memory", ACTION=="add", ATTR{online}="1""#
        ));
        assert!(flagged(
            r#"SUBSYSTEM=="memory", ACTION=="add", RUN+="/bin/sh -c 'echo online > /sys$devpath/state'""#
        ));
        assert!(!flagged(
            r#"SUBSYSTEM=="memory", ACTION=="add", ATTR{state}=="offline", GOTO="end""#
        ));
        assert!(!flagged(r#"# SUBSYSTEM=="memory", ATTR{state}="online""#));
        assert!(!flagged(r#"SUBSYSTEM=="block", ATTR{state}="running""#));
    }
}
