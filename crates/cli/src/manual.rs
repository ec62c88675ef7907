//! The manual and completions: `daxplug generate`, and the parts clap cannot generate: EXIT
//! STATUS and EXAMPLES for daxplug(1),
//! and daxplug.toml(5), the daemon's policy file.

use crate::exit::Exit;

/// What clap_mangen renders poorly in daxplug.1: the synopsis's global options without
/// their values, and the indented lists of `--help` (states, exit codes), which roff would
/// run together: each list line becomes a tagged paragraph.
pub fn tidy(page: &str) -> String {
    let mut out = String::new();
    for line in page.lines() {
        if line.starts_with("\\fBdaxplug\\fR [") {
            out.push_str(
                &line
                    .replace("[\\fB\\-\\-root\\fR]", "[\\fB\\-\\-root\\fR \\fIDIR\\fR]")
                    .replace(
                        "[\\fB\\-\\-run\\-dir\\fR]",
                        "[\\fB\\-\\-run\\-dir\\fR \\fIDIR\\fR]",
                    )
                    .replace("[\\fB\\-\\-sim\\fR]", "[\\fB\\-\\-sim\\fR \\fIFILE\\fR]"),
            );
            out.push('\n');
            continue;
        }
        // `  token   meaning`: two spaces, a word, at least two spaces, the text.
        if let Some(rest) = line.strip_prefix("  ")
            && let Some((tag, text)) = rest.split_once("  ")
            && !tag.is_empty()
            && !tag.contains(' ')
        {
            out.push_str(&format!(".TP\n\\fB{tag}\\fR\n{}\n", text.trim_start()));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// roff for the sections appended to daxplug.1.
pub fn extra_sections() -> String {
    let mut s = String::from(".SH \"EXIT STATUS\"\n");
    for e in Exit::ALL {
        s.push_str(&format!(".TP\n{}\n{}\n", e.code(), e.meaning()));
    }
    s.push_str(".TP\nN\n");
    s.push_str(Exit::Command(0).meaning());
    s.push('\n');
    s.push_str(
        r#".SH EXAMPLES
.TP
daxplug list
The devices, their observed state, node, size and blocks (\-\-wide for ranges and backing).
.TP
daxplug set dax0.0 online_movable \-\-dry\-run
Every write the transition would make, in order; nothing changes.
.TP
daxplug set dax0.0 unplugged
Take the device's memory out of the system, whole or not at all.
.TP
daxplug create 0 \-\-size 512M \-\-state online_movable
Carve a new device from region 0's free space and bring it online in ZONE_MOVABLE.
.TP
daxplug hold dax0.0 \-\-for 2h \-\-reason "firmware update"
Keep the daemon's hands off a device for maintenance.
.TP
daxplug doctor
The controllers and settings that compete with daxplug, each with its fix.
.SH "SEE ALSO"
daxplug.toml(5), daxctl(1)
"#,
    );
    s
}

/// daxplug.toml(5).
pub fn policy_page() -> String {
    r#".TH DAXPLUG.TOML 5 "" daxplug
.SH NAME
daxplug.toml \- the policy of the daxplug daemon
.SH DESCRIPTION
A TOML file of rules, each saying which devices it takes and the state they are kept in. The
first rule that matches a device takes it. Unknown keys, bad values and rules that can never
act are refused with the file, the line and the key; \fBdaxplug daemon \-\-check\-config\fR
also prints which devices each rule takes on this machine.
.SH RULES
.TP
[[rule]]
One rule; a file has at least one.
.TP
match = { ... }
Every key given must match: \fBname\fR (daxX.Y; names follow probe order and move between
boots, prefer \fBbacking\fR), \fBregion\fR, \fBtarget_node\fR, \fBmin_size\fR,
\fBmax_size\fR (bytes, or a string with a binary unit such as "1G"), \fBwithin\fR
("0xSTART\-0xEND": every range of the device lies inside), \fBbacking\fR (hmem:0xSTART\-0xEND,
cxl:regionN, nd:UUID, as \fBdaxplug list \-\-wide\fR shows). Every device carved from one
region shares its backing: to take one of them, add \fBwithin\fR (its extent), as
\fBdaxplug doctor \-\-config\fR suggests for a rule that matches by name only.
.TP
state = "..."
online_movable, online_kernel, online, unplugged, devdax or famfs.
.TP
on_drift = "restore" | "report"
What to do when another controller changes the device: put it back (with backoff), or only
log it. Default restore.
.TP
force = true
Pass the safety checks \fBset \-\-force\fR passes; required for online_kernel.
.SH "NEW DEVICES"
.TP
new_devices = "operator" | "policy"
A device an operator makes or resizes (\fBdaxplug create\fR, \fBresize\fR) that a rule
would take: "operator" (the default) holds it for them until \fBdaxplug release\fR;
"policy" leaves it to the daemon at once. Either way the command says which.
.SH METRICS
.TP
[metrics] listen = "127.0.0.1:9477"
Serve Prometheus metrics; a loopback address unless \fBallow_remote\fR.
.TP
[metrics] allow_remote = true
Allow an address other than loopback (a pod scraped over the node's network).
.SH "NODE FEATURE DISCOVERY"
.TP
[node_feature_discovery] file = "/etc/kubernetes/node\-feature\-discovery/features.d/daxplug"
Keep a feature file of labels for nfd\-worker (an absolute path). The labels are an extra: a
file that cannot be written (its directory missing, or outside the unit's ReadWritePaths=) is
logged and counted (daxplug_nfd_file_written), and the rules apply all the same;
\fB\-\-check\-config\fR and \fBdaxplug doctor \-\-config\fR warn of a missing directory.
.SH EXAMPLE
.nf
[[rule]]
match = { backing = "cxl:region3" }
state = "online_movable"
.fi
.SH "SEE ALSO"
daxplug(1)
"#
    .to_owned()
}
