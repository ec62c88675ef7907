//! The Debian package (packaging/build-deb.sh, cargo-deb): what it installs, that its
//! program runs, that systemd accepts its unit (`systemd-analyze verify`) and that the unit
//! is sandboxed to what the daemon needs. The real-kernel tests (e2e.rs) run the program
//! from this same package.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use common::package::{control, package};
use common::say;

/// The package's root, or a SKIP line when this machine cannot build one (no cargo-deb and
/// no network to install it, no dpkg-deb).
fn root() -> Option<std::path::PathBuf> {
    match package() {
        Ok(p) => Some(p.root),
        Err(why) if std::env::var_os("CI").is_some() => panic!("no package in CI: {why}"),
        Err(why) => {
            say(&format!("SKIP package: {why}"));
            None
        }
    }
}

#[test]
fn the_package_installs_program_unit_policy_manuals_and_completions() {
    let Some(root) = root() else { return };
    for file in [
        "usr/bin/daxplug",
        "usr/lib/systemd/system/daxplug.service",
        "usr/lib/systemd/system/daxplug-gate.service",
        "usr/share/man/man1/daxplug-gate.1.gz",
        "etc/daxplug/daxplug.toml.example",
        "usr/share/man/man1/daxplug.1.gz",
        "usr/share/man/man1/daxplug-daemon.1.gz",
        "usr/share/man/man1/daxplug-set.1.gz",
        "usr/share/man/man5/daxplug.toml.5.gz",
        "usr/share/bash-completion/completions/daxplug",
        "usr/share/zsh/vendor-completions/_daxplug",
        "usr/share/fish/vendor_completions.d/daxplug.fish",
        "usr/share/doc/daxplug/DAEMON.md",
        "usr/share/doc/daxplug/copyright",
        "usr/share/doc/daxplug/examples/kubernetes/daemonset.yaml",
    ] {
        assert!(root.join(file).is_file(), "{file} is not in the package");
    }
    // The policy is a conffile: dpkg keeps an administrator's edits on upgrade.
    let conffiles = control("conffiles").expect("conffiles");
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/daxplug/daxplug.toml.example"),
        "{conffiles}"
    );
    let ctl = control("control").expect("control");
    assert!(
        ctl.lines()
            .any(|l| l.starts_with("Depends:") && l.contains("kmod")),
        "{ctl}"
    );
    // Package life: the daemon is restarted on upgrade, the gate enabled but not started
    // on install; on removal the gate is opened, on purge the policy and the run directory
    // go.
    let postinst = control("postinst").expect("postinst");
    assert!(postinst.contains("daxplug-gate.service"), "{postinst}");
    let prerm = control("prerm").expect("prerm");
    assert!(prerm.contains("daxplug gate open"), "{prerm}");
    let postrm = control("postrm").expect("postrm");
    for needed in [
        "purge",
        "rm -f /etc/daxplug/daxplug.toml",
        "rm -rf /run/daxplug",
    ] {
        assert!(
            postrm.contains(needed),
            "postrm lacks {needed:?}:\n{postrm}"
        );
    }
    assert!(
        !postrm.contains("#DEBHELPER#"),
        "cargo-deb left its token:\n{postrm}"
    );
    // The packaged program runs, and the example policy is valid on an emulated machine.
    let bin = root.join("usr/bin/daxplug");
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = dir.path().join("m.json");
    let run = |args: &[&std::ffi::OsStr]| {
        Command::new(&bin)
            .env("DAXPLUG_REFUSE_HOST", "1")
            .args(args)
            .output()
            .expect("packaged daxplug runs")
    };
    let o = run(&["sim".as_ref(), "init".as_ref(), sim.as_os_str()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let example = root.join("etc/daxplug/daxplug.toml.example");
    let o = run(&[
        "--sim".as_ref(),
        sim.as_os_str(),
        "daemon".as_ref(),
        "--check-config".as_ref(),
        "--config".as_ref(),
        example.as_os_str(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stdout));
    // The completions are the program's own.
    let bash = std::fs::read_to_string(root.join("usr/share/bash-completion/completions/daxplug"))
        .expect("bash completions");
    assert!(
        bash.contains("daxplug__daemon") || bash.contains("daemon"),
        "{bash}"
    );
    assert!(bash.contains("--check-config"));
}

/// `Key=value` settings of a unit's `[Service]` section (a key may repeat).
fn service_settings(unit: &str) -> Vec<(String, String)> {
    let mut in_service = false;
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') {
            in_service = line == "[Service]";
        } else if in_service
            && !line.starts_with('#')
            && let Some((k, v)) = line.split_once('=')
        {
            out.push((k.to_owned(), v.to_owned()));
        }
    }
    out
}

#[test]
fn the_unit_writes_only_sys_and_its_run_directory() {
    let Some(root) = root() else { return };
    let unit =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/daxplug.service")).expect("unit");
    let settings = service_settings(&unit);
    let get = |key: &str| -> Vec<&str> {
        settings
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    // The whole file system read-only, but for /sys and /run/daxplug.
    assert_eq!(get("ProtectSystem"), ["strict"]);
    assert_eq!(get("ReadWritePaths"), ["/sys"]);
    assert_eq!(get("RuntimeDirectory"), ["daxplug"]);
    assert_eq!(
        get("RuntimeDirectoryPreserve"),
        ["yes"],
        "a crash must keep the journal"
    );
    assert_eq!(get("NoNewPrivileges"), ["yes"]);
    let caps: BTreeSet<&str> = get("CapabilityBoundingSet")
        .iter()
        .flat_map(|v| v.split_whitespace())
        .collect();
    let needed: BTreeSet<&str> = [
        "CAP_SYS_ADMIN",
        "CAP_SYS_MODULE",
        "CAP_DAC_READ_SEARCH",
        "CAP_SYS_PTRACE",
    ]
    .into();
    assert_eq!(caps, needed);
    // Writing /sys and loading kmem must stay possible.
    for off in ["ProtectKernelTunables", "ProtectKernelModules"] {
        assert!(
            get(off).iter().all(|v| *v == "no"),
            "{off} would break the daemon"
        );
    }
}

/// `systemd-analyze verify` on the packaged unit: nothing to say, exit 0. The unit names
/// /usr/bin/daxplug, which is checked to be executable; here that path is the package's.
#[test]
fn systemd_accepts_the_unit() {
    let Some(root) = root() else { return };
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(std::env::var_os("CI").is_none(), "CI installs systemd");
        say("SKIP systemd-analyze verify: systemd-analyze is not installed (package systemd)");
        return;
    }
    let verify_as = |name: &str, unit_text: &str| {
        let dir = tempfile::tempdir().expect("tempdir");
        let unit = dir.path().join(name);
        std::fs::write(&unit, unit_text).expect("write unit");
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit)
            // The man page the unit's Documentation= names, from the package.
            .env("MANPATH", root.join("usr/share/man"))
            .output()
            .expect("systemd-analyze runs");
        let said = common::output_text(&out);
        (out.status.success() && said.trim().is_empty(), said)
    };
    let verify = |unit_text: &str| verify_as("daxplug.service", unit_text);
    let shipped =
        std::fs::read_to_string(root.join("usr/lib/systemd/system/daxplug.service")).expect("unit");
    let bin = root.join("usr/bin/daxplug");
    let unit = shipped.replace("/usr/bin/daxplug", &bin.display().to_string());
    let (ok, said) = verify(&unit);
    assert!(ok, "systemd-analyze verify:\n{said}");
    let gate = std::fs::read_to_string(root.join("usr/lib/systemd/system/daxplug-gate.service"))
        .expect("gate unit")
        .replace("/usr/bin/daxplug", &bin.display().to_string());
    let (ok, said) = verify_as("daxplug-gate.service", &gate);
    assert!(ok, "systemd-analyze verify daxplug-gate.service:\n{said}");
    // The check has teeth: a misspelt directive and a missing program are reported.
    let (ok, said) = verify(&unit.replace("NoNewPrivileges=", "NoNewPrivilege="));
    assert!(!ok, "a misspelt directive passed: {said}");
    let (ok, _) = verify(&unit.replace(&bin.display().to_string(), "/nonexistent/daxplug"));
    assert!(!ok);
    assert!(Path::new(&bin).is_file());
}
