//! `daxplug doctor`'s output: the findings, most serious first, as text or JSON, and the
//! exit code (9 when anything is wrong).

use daxplug_kernel::Kernel;

use crate::exit::Exit;
use crate::json;
use crate::machine::{Backend, Machine, on_machine, read_guard};

/// What `doctor` was asked for.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print one JSON object.
    #[arg(short, long)]
    pub json: bool,
    /// The daemon's policy, checked against the devices (rules that match by name
    /// only). Default: ROOT/etc/daxplug/daxplug.toml when it exists (none with --sim).
    #[arg(long, value_name = "FILE")]
    pub config: Option<std::path::PathBuf>,
}

impl Args {
    /// `daxplug doctor [--config FILE]`.
    pub fn run(self, m: &Machine) -> anyhow::Result<(String, Exit)> {
        on_machine(m, false, |b| {
            let _read = read_guard(b);
            let root = match b {
                Backend::Root(_, root, _) => Some(root.as_path()),
                Backend::Sim(..) => None,
            };
            run(
                b.kernel(),
                &b.host().run_dir(),
                root,
                self.config.as_deref(),
                self.json,
            )
        })
    }
}

/// The machine's findings, the policy's (the file given, else
/// ROOT/etc/daxplug/daxplug.toml if there is one; an invalid one is an error finding, not
/// the end of the look), the boot path's and the maintenance holds.
fn run(
    kernel: &dyn Kernel,
    run_dir: &std::path::Path,
    root: Option<&std::path::Path>,
    config: Option<&std::path::Path>,
    json: bool,
) -> anyhow::Result<(String, Exit)> {
    let config = config.map(std::path::Path::to_path_buf).or_else(|| {
        root.map(|r| r.join("etc/daxplug/daxplug.toml"))
            .filter(|f| f.exists())
    });
    // An invalid policy is one finding among the machine's, not the end of the look.
    let loaded = config.as_deref().map(load_policy);
    let (policy, invalid) = match loaded {
        Some(Ok(p)) => (Some(p), None),
        Some(Err(f)) => (None, Some(f)),
        None => (None, None),
    };
    let policy = config.as_deref().zip(policy.as_ref());
    let holds = daxplug_engine::rundir::holds::holds(run_dir);
    let mut extra: Vec<_> = invalid.into_iter().collect();
    extra.extend(daxplug_engine::doctor::boot::findings(
        kernel,
        run_dir,
        root,
        policy.is_some(),
        daxplug_engine::rundir::holds::running_daemon(run_dir).as_ref(),
    ));
    extra.extend(holds.iter().map(daxplug_engine::doctor::hold_finding));
    doctor(kernel, root, policy, extra, json)
}

/// The policy in `file`, or the error finding that says why it cannot be used.
fn load_policy(
    file: &std::path::Path,
) -> Result<daxplug_engine::plan::policy::Policy, daxplug_engine::doctor::Finding> {
    daxplug_engine::plan::policy::Policy::load(file).map_err(|e| daxplug_engine::doctor::Finding {
        severity: daxplug_engine::doctor::Severity::Error,
        code: "policy_invalid",
        subject: file.display().to_string(),
        evidence: e
            .to_string()
            .trim_start_matches(&format!("{}:", file.display()))
            .trim_start()
            .to_owned(),
        fix: "correct the policy (daxplug daemon --config FILE --check-config checks it); the daemon will not start with it".to_owned(),
    })
}

/// Checks the machine (and the policy, if any) and prints the findings with `extra`.
pub fn doctor(
    kernel: &dyn Kernel,
    root: Option<&std::path::Path>,
    policy: Option<(&std::path::Path, &daxplug_engine::plan::policy::Policy)>,
    extra: Vec<daxplug_engine::doctor::Finding>,
    json: bool,
) -> anyhow::Result<(String, Exit)> {
    use daxplug_engine::doctor::{Severity, check_with_policy};
    let mut findings = check_with_policy(kernel, root, policy)?;
    findings.extend(extra);
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let wrong = findings.iter().any(|f| f.severity > Severity::Info);
    let code = if wrong { Exit::Risks } else { Exit::Ok };
    if json {
        let mut text = serde_json::to_string_pretty(&json::DoctorJson {
            schema_version: json::SCHEMA_VERSION,
            ok: !wrong,
            findings: findings.iter().map(json::FindingJson::new).collect(),
        })?;
        text.push('\n');
        return Ok((text, code));
    }
    let mut out = String::new();
    for f in &findings {
        // What is wrong shouts; a note does not.
        let level = match f.severity {
            Severity::Info => f.severity.as_str().to_owned(),
            _ => f.severity.as_str().to_uppercase(),
        };
        out.push_str(&format!(
            "{level:<8} {}: {}\n         fix: {}\n",
            f.subject, f.evidence, f.fix
        ));
    }
    let count = |s: Severity| findings.iter().filter(|f| f.severity == s).count();
    let n = |s: Severity, word: &str| {
        let c = count(s);
        format!("{c} {word}{}", if c == 1 { "" } else { "s" })
    };
    out.push_str(&format!(
        "\n{}, {}, {}{}\n",
        n(Severity::Error, "error"),
        n(Severity::Warning, "warning"),
        n(Severity::Info, "note"),
        if wrong {
            ""
        } else {
            ": nothing competes with daxplug here"
        }
    ));
    Ok((out, code))
}
