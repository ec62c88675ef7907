//! Helpers shared by the CLI's integration tests.

#![allow(dead_code)]

pub mod package;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The daxplug binary under test, with `DAXPLUG_REFUSE_HOST` set: it refuses to act on this
/// machine's own /sys, whatever a test gets wrong.
pub fn command() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_daxplug"));
    c.env("DAXPLUG_REFUSE_HOST", "1");
    c
}

/// Written past libtest's capture, so that a SKIP is seen in every run.
pub fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// What a finished command printed: its stdout, then its stderr.
pub fn output_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs daxplug with `args` to the end.
pub fn daxplug(args: &[&str]) -> Output {
    command().args(args).output().expect("daxplug runs")
}

/// A captured kernel state: `tests/fixtures/<kind>/<state>`.
pub fn fixture(kind: &str, state: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures")
        .join(kind)
        .join(state)
}

/// Copies a fixture tree, keeping symlinks as symlinks, so a test can change its copy.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().expect("type");
        if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src).expect("link"), &dst)
                .expect("symlink");
        } else if kind.is_dir() {
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

/// The lines where two texts differ, each pair as "`a_name`: line\n`b_name`: line"; a line
/// only one text has is shown against `<missing>`.
pub fn line_diff(a: &str, b: &str, a_name: &str, b_name: &str) -> Vec<String> {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    (0..a.len().max(b.len()))
        .filter_map(|i| {
            let (x, y) = (
                a.get(i).copied().unwrap_or("<missing>"),
                b.get(i).copied().unwrap_or("<missing>"),
            );
            (x != y).then(|| format!("{a_name}: {x}\n{b_name}: {y}"))
        })
        .collect()
}

/// A copy of the `hmem/07-devdax` fixture under `dir` with dax0.0 bound to `vfio_dax`, a
/// driver daxplug does not manage.
pub fn other_driver_tree(dir: &Path) -> PathBuf {
    let od = dir.join("od");
    copy_tree(&fixture("hmem", "07-devdax"), &od);
    let drivers = od.join("sys/bus/dax/drivers");
    std::fs::create_dir(drivers.join("vfio_dax")).expect("driver dir");
    std::fs::rename(
        drivers.join("device_dax/dax0.0"),
        drivers.join("vfio_dax/dax0.0"),
    )
    .expect("move binding");
    let link = od.join("sys/devices/platform/hmem.0/dax0.0/driver");
    std::fs::remove_file(&link).expect("old link");
    std::os::unix::fs::symlink("../../../../bus/dax/drivers/vfio_dax", &link).expect("link");
    od
}
