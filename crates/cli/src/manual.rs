//! The parts of the manual clap cannot generate: EXIT STATUS and EXAMPLES for daxplug(1),
//! and daxplug.toml(5), the daemon's policy file.

use crate::exit::Exit;

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
\fBmax_size\fR (bytes), \fBwithin\fR ("0xSTART\-0xEND": every range of the device lies
inside), \fBbacking\fR (hmem:0xSTART\-0xEND, cxl:regionN, nd:UUID, as \fBdaxplug list
\-\-wide\fR shows).
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
.SH METRICS
.TP
[metrics] listen = "127.0.0.1:9477"
Serve Prometheus metrics on a loopback address.
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
