//! `daxplug doctor`'s output: the findings, most serious first, as text or JSON, and the
//! exit code (9 when anything is wrong).

use daxplug_kernel::Kernel;

use crate::exit::Exit;
use crate::json;

/// Checks the machine (and the policy, if any) and prints the findings with `extra`.
pub fn doctor(
    kernel: &dyn Kernel,
    root: Option<&std::path::Path>,
    policy: Option<(&std::path::Path, &daxplug_engine::policy::Policy)>,
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
        let level = match f.severity {
            Severity::Error => "ERROR",
            Severity::Warning => "WARNING",
            Severity::Info => "note",
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
