//! `daxplug generate completions|man`: what is generated from the command-line definition.

use anyhow::Context as _;

use crate::exit::Exit;
use crate::machine::Machine;
use crate::manual;

/// What `generate` was asked for.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// `completions` (to stdout) or `man` (into --dir).
    #[arg(value_parser = ["completions", "man"])]
    pub what: String,
    /// Shell for completions: bash, zsh, fish, elvish, powershell.
    #[arg(long, default_value = "bash")]
    pub shell: String,
    /// Directory for man pages.
    #[arg(long, default_value = ".")]
    pub dir: std::path::PathBuf,
}

impl Args {
    /// `daxplug generate`: needs no machine.
    pub fn run(self, _: &Machine) -> anyhow::Result<(String, Exit)> {
        use clap::CommandFactory as _;
        generate(crate::Cli::command(), &self.what, &self.shell, &self.dir)
    }
}

/// `daxplug generate completions|man`: shell completions to stdout, or man pages into `dir`
/// (clap's, tidied, with the sections clap cannot know, and daxplug.toml(5)).
fn generate(
    mut cmd: clap::Command,
    what: &str,
    shell: &str,
    dir: &std::path::Path,
) -> anyhow::Result<(String, Exit)> {
    if what == "completions" {
        let shell: clap_complete::Shell = shell.parse().map_err(|_| {
            crate::exit::Usage(format!(
                "{shell:?} is not a shell: expected bash, zsh, fish, elvish or powershell"
            ))
        })?;
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut cmd, "daxplug", &mut buf);
        return Ok((String::from_utf8(buf)?, Exit::Ok));
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    clap_mangen::generate_to(cmd, dir)
        .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
    // What clap cannot know: the exit codes, examples, and the policy file's own page.
    let main = dir.join("daxplug.1");
    let page = std::fs::read_to_string(&main)
        .with_context(|| format!("cannot read {}", main.display()))?;
    let mut page = manual::tidy(&page);
    page.push_str(&manual::extra_sections());
    std::fs::write(&main, page).with_context(|| format!("cannot write {}", main.display()))?;
    let policy = dir.join("daxplug.toml.5");
    std::fs::write(&policy, manual::policy_page())
        .with_context(|| format!("cannot write {}", policy.display()))?;
    Ok((
        format!("man pages written to {}\n", dir.display()),
        Exit::Ok,
    ))
}
