//! The Debian package as the tests use it: built once by packaging/build-deb.sh (into
//! target/package, a target directory of its own so that the build does not wait on the
//! one `cargo test` holds), then extracted with `dpkg-deb -x`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn top() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The package file and where its contents were extracted.
#[derive(Debug, Clone)]
pub struct Package {
    /// The `.deb`.
    pub deb: PathBuf,
    /// Its files, as they would be installed under `/`.
    pub root: PathBuf,
}

/// The package, built and extracted under target/package once per test process; or why
/// there is none. `DAXPLUG_DEB` names a package built beforehand (`.ci/run` does that).
pub fn package() -> Result<Package, String> {
    static ONCE: OnceLock<Result<Package, String>> = OnceLock::new();
    ONCE.get_or_init(build_and_extract).clone()
}

fn build_and_extract() -> Result<Package, String> {
    let target = top().join("target/package");
    let deb = match std::env::var_os("DAXPLUG_DEB") {
        Some(deb) => PathBuf::from(deb),
        None => {
            let out = Command::new("bash")
                .arg(top().join("packaging/build-deb.sh"))
                .env("CARGO_TARGET_DIR", &target)
                .output()
                .map_err(|e| format!("packaging/build-deb.sh: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "packaging/build-deb.sh failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
        }
    };
    // Extracted afresh by each test binary (cargo runs them one after another), into one
    // directory, so that runs leave no copies behind.
    let dir = target.join("extracted");
    let _ = std::fs::remove_dir_all(&dir);
    let out = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&deb)
        .arg(&dir)
        .output()
        .map_err(|e| format!("dpkg-deb: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "dpkg-deb -x {} failed: {}",
            deb.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(Package { deb, root: dir })
}

/// A control file of the package (`conffiles`, `control`, a maintainer script).
pub fn control(name: &str) -> Result<String, String> {
    let p = package()?;
    let ctl = p.root.with_extension("control");
    let _ = std::fs::remove_dir_all(&ctl);
    let out = Command::new("dpkg-deb")
        .arg("-e")
        .arg(&p.deb)
        .arg(&ctl)
        .output()
        .map_err(|e| format!("dpkg-deb: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    std::fs::read_to_string(ctl.join(name)).map_err(|e| format!("{name}: {e}"))
}
