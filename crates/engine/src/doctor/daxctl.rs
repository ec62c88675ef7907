//! Whether daxctl, as installed, can act on the devices present: a udev rule that runs it
//! competes only if the command it runs exists and is one daxctl accepts, and a
//! `daxctl.conf.d` section only if it can match a device here (`daxctl reconfigure-device
//! -C` matches sections on `nvdimm.uuid`, the uuid of an NVDIMM namespace). Advice names only
//! units the system has.

use std::path::{Path, PathBuf};

use crate::discovery::topology::Topology;

/// daxctl's per-device service, where upstream's udev rule starts it.
pub const RECONFIGURE_UNIT: &str = "daxdev-reconfigure@.service";

/// A `[reconfigure-device ...]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// `/etc/daxctl.conf.d/FILE`.
    pub file: PathBuf,
    /// Its line, from 1.
    pub line: usize,
    /// The header as written.
    pub header: String,
    /// Its `nvdimm.uuid`, the key daxctl matches devices on.
    pub uuid: Option<String>,
}

/// Every section of `ROOT/etc/daxctl.conf.d/*.conf`, in file order.
pub fn sections(root: &Path) -> Vec<Section> {
    let Ok(entries) = std::fs::read_dir(root.join("etc/daxctl.conf.d")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    let mut out: Vec<Section> = Vec::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let shown = Path::new("/").join(f.strip_prefix(root).unwrap_or(&f));
        let mut current: Option<usize> = None;
        for (n, line) in text.lines().enumerate() {
            let t = line.trim();
            if t.starts_with('[') {
                current = t.starts_with("[reconfigure-device").then(|| {
                    out.push(Section {
                        file: shown.clone(),
                        line: n + 1,
                        header: t.to_owned(),
                        uuid: None,
                    });
                    out.len() - 1
                });
            } else if let (Some(i), Some((k, v))) = (current, t.split_once('='))
                && k.trim() == "nvdimm.uuid"
            {
                out[i].uuid = Some(v.trim().to_ascii_lowercase());
            }
        }
    }
    out
}

/// The present devices a section matches (by their namespace's uuid).
pub fn matches(section: &Section, topo: &Topology) -> Vec<String> {
    let Some(uuid) = &section.uuid else {
        return Vec::new();
    };
    topo.devices
        .iter()
        .filter(|d| {
            d.backing
                .as_deref()
                .and_then(|b| b.strip_prefix("nd:"))
                .is_some_and(|u| u.eq_ignore_ascii_case(uuid))
        })
        .map(|d| d.name.to_string())
        .collect()
}

/// Why a udev rule's `RUN+="..."` of daxctl cannot act here, or `None` when it can.
pub fn rule_inert(root: &Path, rule: &str, topo: &Topology) -> Option<String> {
    if let Some(run) = rule
        .split("RUN+=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
    {
        let mut words = run.split_whitespace();
        let program = words.next().unwrap_or_default();
        if !root.join(program.trim_start_matches('/')).exists() {
            return Some(format!("{program}, which it runs, is not installed"));
        }
        let first = words.next().unwrap_or_default();
        if program.ends_with("/daxctl") && first.starts_with('-') {
            return Some(format!(
                "daxctl has no top-level option {first}: the rule fails with exit code 129 on every device (the reconfigure command is `daxctl reconfigure-device -C`)"
            ));
        }
    }
    // Upstream's rule starts the service (RUN of systemctl, or SYSTEMD_WANTS).
    if rule.contains("daxdev-reconfigure@") && !unit_exists(root) {
        return Some(format!(
            "{RECONFIGURE_UNIT}, which it starts, is not installed"
        ));
    }
    let all = sections(root);
    if !all.iter().any(|s| !matches(s, topo).is_empty()) {
        return Some(if all.is_empty() {
            "no /etc/daxctl.conf.d section tells daxctl to reconfigure anything".to_owned()
        } else {
            "no /etc/daxctl.conf.d section matches a device present (daxctl matches on nvdimm.uuid, which only NVDIMM namespaces have)".to_owned()
        });
    }
    None
}

/// Whether daxctl's reconfigure service is installed (so that advice may name it).
pub fn unit_exists(root: &Path) -> bool {
    [
        "etc/systemd/system",
        "usr/lib/systemd/system",
        "lib/systemd/system",
    ]
    .iter()
    .any(|d| root.join(d).join(RECONFIGURE_UNIT).exists())
}
