//! `daxplug create`, `resize` and `destroy` from the command line: a fresh hmem machine
//! carved in two and regrown, their output, exit codes and bad input.

mod common;

use common::daxplug;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = daxplug(args);
    (
        out.status.code().expect("code"),
        String::from_utf8(out.stdout).expect("utf-8"),
        String::from_utf8(out.stderr).expect("utf-8"),
    )
}

/// The output with its timings masked (they change from run to run).
fn masked(text: &str) -> String {
    text.lines()
        .map(|l| {
            if l.trim_start().starts_with("time:") {
                "  time: (masked)".to_owned()
            } else if let Some((head, _)) = l.split_once(": done in ") {
                format!("{head}: done in (masked)")
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn carve_regrow_and_destroy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = dir.path().join("m.json").display().to_string();
    let (c, _, e) = run(&["sim", "init", &f, "--preset", "hmem"]);
    assert_eq!(c, 0, "{e}");
    let mut transcript = String::new();
    let mut step = |args: &[&str], want: i32| {
        let mut all = vec!["--sim", f.as_str()];
        all.extend_from_slice(args);
        let (c, out, err) = run(&all);
        assert_eq!(c, want, "{args:?}: {out}{err}");
        transcript.push_str(&format!(
            "$ daxplug {}\n{}{}\n",
            args.join(" "),
            masked(&out),
            err
        ));
    };
    step(&["resize", "dax0.0", "512M"], 0);
    step(&["create", "0", "--size", "256M", "--dry-run"], 0);
    step(&["create", "region0", "--size", "256M"], 0);
    step(&["set", "dax0.0", "online_movable"], 0);
    step(&["resize", "dax0.0", "768M"], 5);
    step(&["set", "dax0.0", "unplugged"], 0);
    step(&["resize", "dax0.0", "768M"], 0);
    step(&["set", "dax0.0", "online_movable"], 0);
    step(&["list"], 0);
    step(&["destroy", "dax0.1"], 0);
    step(&["create", "0", "--size", "3M"], 5);
    step(&["create", "9", "--size", "2M"], 4);
    step(&["resize", "dax0.0", "lots"], 2);
    step(&["create", "zero", "--size", "2M"], 2);
    insta::assert_snapshot!("carve", transcript);
}
