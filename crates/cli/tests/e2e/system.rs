//! The real-system layout's assertions: tests/e2e/system/check.sh prints raw facts (`@@FACT
//! key value`) and blocks of output (`@@BEGIN name` ... `@@END`) on each boot's console;
//! here they are held to what the product promises. Every result line names the layout,
//! the kernel and the boot: `E2E PASS system@KVER boot2: ...`.

use std::collections::BTreeMap;
use std::path::Path;

/// What one boot printed.
#[derive(Debug, Default)]
pub struct Boot {
    /// `@@FACT key value`.
    pub facts: BTreeMap<String, String>,
    /// `@@BEGIN name` ... `@@END`.
    pub blocks: BTreeMap<String, String>,
}

impl Boot {
    /// Reads a boot's console log.
    pub fn parse(text: &str) -> Self {
        let mut boot = Boot::default();
        let mut open: Option<(String, String)> = None;
        for line in text.lines() {
            if let Some((name, body)) = &mut open {
                if line == "@@END" {
                    boot.blocks.insert(name.clone(), std::mem::take(body));
                    open = None;
                } else {
                    body.push_str(line);
                    body.push('\n');
                }
            } else if let Some(rest) = line.strip_prefix("@@FACT ") {
                let (k, v) = rest.split_once(' ').unwrap_or((rest, ""));
                boot.facts.insert(k.to_owned(), v.trim().to_owned());
            } else if let Some(name) = line.strip_prefix("@@BEGIN ") {
                open = Some((name.trim().to_owned(), String::new()));
            }
        }
        boot
    }

    pub fn fact(&self, key: &str) -> &str {
        self.facts.get(key).map_or("(missing)", String::as_str)
    }

    pub fn block(&self, name: &str) -> &str {
        self.blocks.get(name).map_or("", String::as_str)
    }

    /// A JSON block (`daxplug ... --json`), or null.
    pub fn json(&self, name: &str) -> serde_json::Value {
        serde_json::from_str(self.block(name)).unwrap_or(serde_json::Value::Null)
    }
}

/// One journal line (`journalctl -o short-monotonic`): its time since boot and its text.
fn journal(text: &str) -> Vec<(f64, &str)> {
    text.lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix('[')?;
            let (t, msg) = rest.split_once(']')?;
            Some((t.trim().parse().ok()?, msg))
        })
        .collect()
}

/// The state `list --json` gives dax0.0.
fn state(boot: &Boot, block: &str) -> String {
    boot.json(block)["devices"]
        .as_array()
        .and_then(|d| d.iter().find(|d| d["name"] == "dax0.0"))
        .and_then(|d| d["state"].as_str())
        .unwrap_or("(no dax0.0)")
        .to_owned()
}

/// Eight blocks of the device, every one online in Movable (check.sh's `blocks`).
fn all_movable(blocks: &str) -> bool {
    let entries: Vec<&str> = blocks
        .split_whitespace()
        .filter(|e| e.contains('='))
        .collect();
    entries.len() == 8 && entries.iter().all(|e| e.ends_with("=online:Movable"))
}

/// The checks of one kernel's boots: a PASS or FAIL line each.
pub fn checks(logs: &Path, kver: &str, atomic: bool) -> Vec<Result<String, String>> {
    let mut out = Vec::new();
    let read = |phase: &str| {
        std::fs::read_to_string(logs.join(format!("system@{kver}-{phase}.log")))
            .map(|t| Boot::parse(&t))
    };
    let mut check = |phase: &str, ok: bool, what: String| {
        let line = format!("system@{kver} {phase}: {what}");
        out.push(if ok {
            Ok(format!("E2E PASS {line}"))
        } else {
            Err(format!("E2E FAIL {line}"))
        });
    };

    // ---- install on a running system
    let Ok(b) = read("install") else {
        check("install", false, "no console log".into());
        return out;
    };
    check(
        "install",
        b.fact("pid1") == "systemd" && b.fact("udevd") == "active",
        format!(
            "systemd is PID 1 ({}), systemd-udevd {}",
            b.fact("pid1"),
            b.fact("udevd")
        ),
    );
    check(
        "install",
        b.fact("dpkg_status").starts_with("install ok installed")
            && b.fact("enabled_daemon") == "enabled"
            && b.fact("enabled_gate") == "enabled"
            && b.fact("active_without_policy") == "inactive",
        format!(
            "apt-get install ./daxplug.deb: {}; daxplug.service {}, daxplug-gate.service {}, inactive without a policy ({})",
            b.fact("dpkg_status"),
            b.fact("enabled_daemon"),
            b.fact("enabled_gate"),
            b.fact("active_without_policy")
        ),
    );
    let stock = state(&b, "list_before");
    let lines = journal(b.block("daemon_journal"));
    let decisions: Vec<&str> = lines
        .iter()
        .map(|(_, m)| *m)
        .filter(|m| m.contains("device=dax0.0"))
        .collect();
    if stock == "online_kernel" {
        // The stock kernel onlined it into ZONE_NORMAL before daxplug existed here.
        let blocked = decisions
            .iter()
            .filter(|m| m.contains("result=blocked_until_reboot"))
            .count();
        let tries = decisions
            .iter()
            .filter(|m| m.contains("result=rolled_back") || m.contains("result=done"))
            .count();
        check(
            "install",
            blocked == 1 && tries == 0 && state(&b, "list_after_json") == "online_kernel",
            format!(
                "memory pinned in ZONE_NORMAL by the stock boot: the daemon said blocked_until_reboot {blocked} time(s) and retried {tries} times in 15 s; dax0.0 stays {}",
                state(&b, "list_after_json")
            ),
        );
        let doctor = b.json("doctor");
        let named = doctor["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["code"] == "blocked_until_reboot"));
        let listed = b.block("list_after").contains("reboot");
        let metric = b
            .block("metrics")
            .contains("daxplug_device_blocked_until_reboot{device=\"dax0.0\"} 1");
        check(
            "install",
            named && listed && metric,
            format!(
                "said where an operator looks: doctor {named}, list {listed}, metric daxplug_device_blocked_until_reboot {metric}"
            ),
        );
    } else {
        let reached = decisions
            .iter()
            .any(|m| m.contains("result=done") && m.contains("end=online_movable"));
        check(
            "install",
            reached && state(&b, "list_after_json") == "online_movable",
            format!(
                "stock boot left dax0.0 {stock}; with the policy the daemon took it to {}",
                state(&b, "list_after_json")
            ),
        );
    }

    // ---- three reboots with the policy and the competitors
    for n in 1..=3 {
        let phase = format!("boot{n}");
        let Ok(b) = read(&phase) else {
            check(&phase, false, "no console log".into());
            continue;
        };
        let unit = |k: &str| b.fact(&format!("unit_{k}")).to_owned();
        check(
            &phase,
            b.fact("active") == "active"
                && b.fact("gate_active") == "active"
                && unit("ProtectSystem") == "strict"
                && unit("NoNewPrivileges") == "yes"
                && unit("ReadWritePaths").contains("/sys"),
            format!(
                "daxplug.service {} and sandboxed (ProtectSystem={}, NoNewPrivileges={}, ReadWritePaths={}, exposure {}), daxplug-gate.service {}",
                b.fact("active"),
                unit("ProtectSystem"),
                unit("NoNewPrivileges"),
                unit("ReadWritePaths"),
                b.fact("exposure"),
                b.fact("gate_active")
            ),
        );
        let gate = b.json("gate");
        let lines = journal(b.block("boot_journal"));
        let closed_at = lines
            .iter()
            .find(|(_, m)| m.contains("boot gate closed"))
            .map(|(t, _)| *t);
        // The first thing udev saw of the device or its blocks (the trace rule).
        let first_seen = lines
            .iter()
            .find(|(_, m)| {
                m.contains("e2e-trace") && (m.contains("dax0.0") || m.contains("memory4"))
            })
            .map(|(t, _)| *t);
        let first = lines
            .iter()
            .find(|(_, m)| m.contains("daxplug-daemon: device=dax0.0"))
            .map(|(_, m)| *m)
            .unwrap_or("(no decision)");
        let ordered = closed_at.is_some_and(|c| first_seen.is_none_or(|f| c < f));
        check(
            &phase,
            gate["gate"] == "closed"
                && gate["closed_by"] == "boot"
                && gate["bound_before"].as_array().is_some_and(Vec::is_empty)
                && ordered
                && first.contains("from=unbound")
                && first.contains("result=done"),
            format!(
                "order: the gate closed at {} s, before udev saw dax0.0 or its blocks ({}), with nothing bound; the daemon's first act on dax0.0: {}",
                closed_at.map_or("(never)".into(), |t| format!("{t:.3}")),
                first_seen.map_or("never".into(), |t| format!("{t:.3} s")),
                first.split("daxplug-daemon: ").nth(1).unwrap_or(first)
            ),
        );
        check(
            &phase,
            state(&b, "list_boot_json") == "online_movable",
            format!(
                "dax0.0 is {} after boot with daxctl's rule, a daxctl.conf.d section and a RHEL-style hot-add rule present",
                state(&b, "list_boot_json")
            ),
        );
        let doctor = b.json("doctor");
        let protected = doctor["findings"]
            .as_array()
            .is_some_and(|f| f.iter().any(|f| f["code"] == "boot_gate_closed"));
        check(
            &phase,
            protected,
            "doctor says the boot path is protected (boot_gate_closed)".into(),
        );
        if n == 1 {
            competitors(&doctor, &phase, &mut check);
        }
        if b.fact("day") == "run" {
            day(&b, &phase, atomic, &mut check);
        }
    }

    // ---- purge
    let Ok(b) = read("purge") else {
        check("purge", false, "no console log".into());
        return out;
    };
    let gone = |k: &str| b.fact(k).contains("No such file");
    check(
        "purge",
        b.fact("dpkg_status_purged").contains("no packages found")
            && gone("run_dir")
            && gone("etc_dir")
            && gone("units")
            && b.fact("drivers_autoprobe_after") == "1",
        format!(
            "apt-get purge: package {}, /run/daxplug {}, /etc/daxplug {}, units {}, drivers_autoprobe {}",
            b.fact("dpkg_status_purged"),
            b.fact("run_dir"),
            b.fact("etc_dir"),
            b.fact("units"),
            b.fact("drivers_autoprobe_after")
        ),
    );
    out
}

/// doctor on the competitors the image carries: the RHEL-style rule can act (a warning);
/// Debian 12's daxctl rule and the daxctl.conf.d section cannot, and it says why; no advice
/// names daxctl's service, which Debian 12 does not ship.
fn competitors(
    doctor: &serde_json::Value,
    phase: &str,
    check: &mut impl FnMut(&str, bool, String),
) {
    let findings = doctor["findings"].as_array().cloned().unwrap_or_default();
    let find = |code: &str| findings.iter().find(|f| f["code"] == code);
    let rhel = find("udev_onlines_memory").is_some_and(|f| f["severity"] == "warning");
    let inert = find("daxctl_udev_rule_inert").is_some_and(|f| {
        f["severity"] == "note" && f["evidence"].as_str().is_some_and(|e| e.contains("129"))
    });
    let conf = find("daxctl_conf_no_match").is_some_and(|f| f["severity"] == "note");
    let unshipped = findings.iter().any(|f| {
        f["fix"]
            .as_str()
            .is_some_and(|x| x.contains("daxdev-reconfigure"))
    });
    check(
        phase,
        rhel && inert && conf && !unshipped,
        format!(
            "doctor: the RHEL-style rule can act (warning: {rhel}); daxctl's rule cannot, exit 129 (note: {inert}); the daxctl.conf.d section matches no device (note: {conf}); advice naming the unshipped daxdev-reconfigure@.service: {unshipped}"
        ),
    );
}

/// The operator's day on the first reboot: set --override, release, drift, upgrade.
fn day(b: &Boot, phase: &str, atomic: bool, check: &mut impl FnMut(&str, bool, String)) {
    let over = b.json("override");
    let result = &over["results"][0];
    let actions = result["actions"].to_string() + &result["plan"].to_string();
    let queue = actions.contains("stop-exec-queue");
    check(
        phase,
        result["outcome"] == "done"
            && (atomic || queue)
            && b.fact("after_override").ends_with("none"),
        format!(
            "set --override unplugged: {} ({}), udev's exec queue stopped: {queue}; after: {}",
            result["outcome"],
            if atomic {
                "daxX.Y/state"
            } else {
                "daxplug's protocol"
            },
            b.fact("after_override")
        ),
    );
    let day = journal(b.block("day_journal"));
    let release_at: f64 = b.fact("release_at").parse().unwrap_or(f64::MAX);
    // The daemon's transition after the release: its end, less its own duration, is when
    // it began.
    let applied = day.iter().find(|(t, m)| {
        *t >= release_at && m.contains("device=dax0.0") && m.contains("result=done")
    });
    let began = applied.map(|(t, m)| {
        let took: f64 = m
            .split("after_event_ms=")
            .nth(1)
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        (t - took / 1000.0 - release_at, t - release_at)
    });
    check(
        phase,
        began.is_some_and(|(s, _)| s <= 1.0)
            && b.fact("after_release").starts_with("kmem ")
            && all_movable(b.fact("after_release")),
        match began {
            Some((s, e)) => format!(
                "release: the daemon began applying its rule {s:.3} s after it and was done {e:.3} s after; {}",
                b.fact("after_release")
            ),
            None => format!(
                "release: no transition by the daemon; {}",
                b.fact("after_release")
            ),
        },
    );
    let drift_at: f64 = b.fact("drift_at").parse().unwrap_or(f64::MAX);
    let restored = day
        .iter()
        .find(|(t, m)| *t >= drift_at && m.contains("from=mixed") && m.contains("result=done"));
    check(
        phase,
        restored.is_some() && all_movable(b.fact("after_drift")),
        format!(
            "drift from a real uevent (memory47 offlined by hand): {}; {}",
            restored.map_or("not restored".to_owned(), |(t, _)| format!(
                "restored {:.3} s later",
                t - drift_at
            )),
            b.fact("after_drift")
        ),
    );
    let (before, after) = (b.fact("pid_before_upgrade"), b.fact("pid_after_upgrade"));
    check(
        phase,
        b.fact("dpkg_status_upgraded").ends_with("-2")
            && before != after
            && after != "0"
            && b.fact("policy_sum_before") == b.fact("policy_sum_after"),
        format!(
            "upgrade to {}: daemon restarted (pid {before} -> {after}), policy kept ({})",
            b.fact("dpkg_status_upgraded"),
            if b.fact("policy_sum_before") == b.fact("policy_sum_after") {
                "unchanged"
            } else {
                "CHANGED"
            }
        ),
    );
}
