//! A private mount namespace in which the emulated machine is the system's `/sys` and
//! `/proc` for the programs run there (`daxplug sim run`).
//!
//! Layout, all of it private to the namespace (the host sees none of these mounts):
//!
//! * the machine is served by FUSE on a staging tmpfs under the temporary directory;
//! * `/sys` becomes a tmpfs on which the emulated `bus/dax`, `devices/system/memory`,
//!   `devices/system/node`, `module`, `kernel/uevent_seqnum`, the placement files
//!   (`devices/virtual/memory_tiering`, `kernel/mm/numa`, `kernel/mm/mempolicy`) and each
//!   dax region's provider directory are bound,
//!   and every other entry of the host's `/sys` is bound back **read-only**, so a program
//!   run there can read the host's CPUs or PCI devices but cannot change anything;
//! * `/dev` holds the host's nodes plus a file per emulated dax device (`/dev/daxX.Y`,
//!   which libdaxctl needs to see; it opens only while device_dax drives the device);
//! * `/proc/iomem` and `/proc/meminfo` are the emulated files, `/proc/sys` is read-only;
//! * `/run` is the machine's run directory (`FILE.run`, as with `--sim FILE`), so daxplug's
//!   lock and journals belong to the machine and no host udev can be reached;
//! * kernel modules cannot reach the host: `/lib/modules` is hidden and modprobe's
//!   configuration says `install kmem` = load it into the model.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use daxplug_model::Sim;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

use crate::mount::{FuseError, Mount};

/// Setting up or leaving the namespace failed.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The process could not get a mount namespace of its own.
    #[error(
        "cannot create a private mount namespace (this needs root, and a process with one thread)"
    )]
    Unshare {
        #[source]
        source: io::Error,
    },
    /// One step of the layout failed.
    #[error("cannot {what} {}", .path.display())]
    Step {
        /// What was being done ("bind-mount the emulated files on").
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Serving the machine failed.
    #[error(transparent)]
    Fuse(#[from] FuseError),
}

fn step<T, E: Into<io::Error>>(
    what: &'static str,
    path: &Path,
    r: Result<T, E>,
) -> Result<T, SandboxError> {
    r.map_err(|e| SandboxError::Step {
        what,
        path: path.to_owned(),
        source: e.into(),
    })
}

/// The emulated directories bound over the host's, relative to `/sys`.
const EMULATED: [&str; 4] = [
    "bus/dax",
    "devices/system/memory",
    "devices/system/node",
    "module",
];
/// The emulated machine's `/sys/kernel/uevent_seqnum`, relative to `/sys`.
const UEVENT_SEQNUM: &str = "kernel/uevent_seqnum";
/// The emulated placement files (memory tiers, demotion, weighted interleave), relative to
/// `/sys`, bound over the host's where the machine has them.
const PLACEMENT: [&str; 3] = [
    "devices/virtual/memory_tiering",
    "kernel/mm/numa",
    "kernel/mm/mempolicy",
];
/// Where the emulated `/sys/dev/char` links (one per dax device) join the host's.
const CHAR_LINKS: &str = "dev/char";

/// Where modprobe looks for its configuration; the first that exists gets daxplug's, the
/// others are hidden.
const MODPROBE_DIRS: [&str; 5] = [
    "/etc/modprobe.d",
    "/run/modprobe.d",
    "/usr/local/lib/modprobe.d",
    "/lib/modprobe.d",
    "/usr/lib/modprobe.d",
];

/// Modules the emulated kernel provides; loading any of them goes to the model.
const MODULES: [&str; 5] = ["kmem", "device_dax", "dax_hmem", "dax_pmem", "dax_cxl"];

/// Where the emulated machine's files come from.
#[derive(Debug)]
pub enum Source {
    /// The model, served through FUSE (modprobe loads modules into it).
    Model(Arc<Sim>),
    /// A directory tree with `sys/`, `proc/` and optionally `dev/` (a captured fixture, a
    /// generated benchmark machine). Modules cannot be loaded.
    Tree(PathBuf),
}

/// The dax devices of a tree: the entry under `sys/bus/dax/devices` and the kernel path of
/// the device directory its link points to, resolved lexically against
/// `/sys/bus/dax/devices` (the tree's own links are relative).
fn tree_devices(tree: &Path) -> Vec<(PathBuf, String)> {
    let bus = tree.join("sys/bus/dax/devices");
    let mut out = Vec::new();
    for e in fs::read_dir(&bus).into_iter().flatten().flatten() {
        let Ok(target) = fs::read_link(e.path()) else {
            continue;
        };
        let mut parts: Vec<String> =
            vec!["sys".into(), "bus".into(), "dax".into(), "devices".into()];
        for c in target.components() {
            match c {
                std::path::Component::ParentDir => {
                    parts.pop();
                }
                std::path::Component::Normal(n) => parts.push(n.to_string_lossy().into_owned()),
                _ => {}
            }
        }
        out.push((e.path(), format!("/{}", parts.join("/"))));
    }
    out
}

/// The kernel paths of the dax region providers of a tree (the parents of its devices).
pub fn tree_providers(tree: &Path) -> Vec<String> {
    let providers: BTreeSet<String> = tree_devices(tree)
        .into_iter()
        .filter_map(|(_, dir)| Some(dir.rsplit_once('/')?.0.to_owned()))
        .collect();
    providers.into_iter().collect()
}

/// `/sys/dev/char` links for a tree that has none (captured fixtures): `MAJOR:MINOR` ->
/// the device's directory, from each device's `dev` attribute.
fn tree_char_links(tree: &Path) -> Vec<(PathBuf, PathBuf)> {
    tree_devices(tree)
        .into_iter()
        .filter_map(|(entry, dir)| {
            let number = fs::read_to_string(entry.join("dev")).ok()?;
            // /sys/dev/char is two levels below /sys.
            let rest = dir.strip_prefix("/sys/")?;
            Some((
                Path::new(CHAR_LINKS).join(number.trim()),
                Path::new("../..").join(rest),
            ))
        })
        .collect()
}

/// The namespace, entered. [`Sandbox::leave`] stops the server and removes the staging
/// directory; the rest goes away with the process.
#[derive(Debug)]
pub struct Sandbox {
    stage: PathBuf,
    mount: Option<Mount>,
}

impl Sandbox {
    /// Enters a new mount namespace and lays out the emulated machine `sim` in it.
    /// `run_dir` is bound on `/run`; `providers` are the kernel paths of the machine's dax
    /// region providers (`/sys/devices/platform/hmem.0`, …). Call it while the process
    /// has one thread: the kernel refuses a new mount namespace otherwise.
    pub fn enter(
        source: Source,
        run_dir: &Path,
        providers: &[String],
    ) -> Result<Self, SandboxError> {
        daxplug_kernel::namespace::unshare_mount_namespace()
            .map_err(|source| SandboxError::Unshare { source })?;
        // Nothing mounted from here on may propagate back to the host.
        step(
            "make every mount private under",
            Path::new("/"),
            rustix::mount::mount_change(
                "/",
                MountPropagationFlags::PRIVATE | MountPropagationFlags::REC,
            ),
        )?;
        let stage = std::env::temp_dir().join(format!(
            "daxplug-sim-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        ));
        step(
            "create the staging directory",
            &stage,
            fs::create_dir(&stage),
        )?;
        let mut sandbox = Self { stage, mount: None };
        sandbox.lay_out(source, run_dir, providers)?;
        Ok(sandbox)
    }

    fn lay_out(
        &mut self,
        source: Source,
        run_dir: &Path,
        providers: &[String],
    ) -> Result<(), SandboxError> {
        let stage = self.stage.clone();
        tmpfs(&stage, "0700")?;
        let (fuse, modprobe_cmd) = match source {
            Source::Model(sim) => {
                let fuse = stage.join("fuse");
                step("create", &fuse, fs::create_dir(&fuse))?;
                self.mount = Some(Mount::new(sim, &fuse)?);
                let control = fuse.join(crate::MODPROBE_FILE.trim_start_matches('/'));
                let cmd = format!("/bin/sh -c 'echo MODULE > {}'", control.display());
                (fuse, cmd)
            }
            Source::Tree(dir) => {
                // Held in the staging area: the tree may live under /dev or /sys, which
                // are about to be covered.
                let held = stage.join("machine");
                step("create", &held, fs::create_dir(&held))?;
                step(
                    "bind the machine's tree on",
                    &held,
                    rustix::mount::mount_bind_recursive(&dir, &held),
                )?;
                (held, "/bin/false".to_owned())
            }
        };

        // /sys: a tmpfs holding the host's entries (read-only) and the emulated ones.
        let host_sys = stage.join("host-sys");
        step("create", &host_sys, fs::create_dir(&host_sys))?;
        step(
            "bind the host's /sys on",
            &host_sys,
            rustix::mount::mount_bind_recursive("/sys", &host_sys),
        )?;
        tmpfs(Path::new("/sys"), "0755")?;
        let mut overrides: Vec<PathBuf> = EMULATED.iter().map(PathBuf::from).collect();
        overrides.extend(
            providers
                .iter()
                .filter_map(|p| p.strip_prefix("/sys/"))
                .map(PathBuf::from),
        );
        // The machine's uevent number, over the host's: daxplug fences its reads with it.
        if fuse.join("sys").join(UEVENT_SEQNUM).is_file() {
            overrides.push(PathBuf::from(UEVENT_SEQNUM));
        }
        overrides.extend(
            PLACEMENT
                .iter()
                .filter(|p| fuse.join("sys").join(p).is_dir())
                .map(PathBuf::from),
        );
        let char_links = fuse.join("sys").join(CHAR_LINKS);
        overrides.extend(
            fs::read_dir(&char_links)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| Path::new(CHAR_LINKS).join(e.file_name())),
        );
        let made_links = if char_links.is_dir() {
            Vec::new()
        } else {
            tree_char_links(&fuse)
        };
        overrides.extend(made_links.iter().map(|(rel, _)| rel.clone()));
        compose(
            Path::new("/sys"),
            &host_sys,
            &fuse.join("sys"),
            Path::new(""),
            &overrides,
            HostEntries::ReadOnly,
            &made_links,
        )?;
        // Submounts of the host's entries (cgroup, debugfs, …) came along writable.
        seal_sys()?;
        // The staging copy of the host's /sys is no longer needed, and must not stay
        // reachable as a writable path.
        step(
            "detach",
            &host_sys,
            rustix::mount::unmount(&host_sys, UnmountFlags::DETACH),
        )?;

        // /dev: the host's nodes (writable: /dev/null must work) and the dax devices'.
        let dev = if fuse.join("dev").is_dir() {
            fuse.join("dev")
        } else {
            // A captured tree has no /dev: make the nodes from each device's `dev`
            // attribute, on the staging tmpfs (nodev: they cannot be opened).
            self.make_dev_nodes(&fuse)?
        };
        self.compose_dev(&dev)?;
        // From now on a device the machine gains or loses gains or loses its node at once.
        if let Some(mount) = &self.mount {
            let served = fuse.clone();
            mount.on_devices_changed(std::sync::Arc::new(move |_| {
                let _ = sync_devices(&served);
            }));
        }

        // /proc: the two emulated files; the kernel's tunables read-only.
        for name in ["iomem", "meminfo"] {
            let target = Path::new("/proc").join(name);
            step(
                "bind the emulated file on",
                &target,
                rustix::mount::mount_bind(fuse.join("proc").join(name), &target),
            )?;
        }
        let proc_sys = Path::new("/proc/sys");
        step(
            "bind",
            proc_sys,
            rustix::mount::mount_bind_recursive(proc_sys, proc_sys),
        )?;
        read_only(proc_sys)?;

        // /run: the machine's own.
        step("create", run_dir, fs::create_dir_all(run_dir))?;
        step(
            "bind the machine's run directory on",
            Path::new("/run"),
            rustix::mount::mount_bind(run_dir, "/run"),
        )?;

        // Kernel modules: none of the host's, and modprobe feeds the model.
        let empty = stage.join("empty");
        step("create", &empty, fs::create_dir(&empty))?;
        let mut hidden = BTreeSet::new();
        for dir in ["/lib/modules", "/usr/lib/modules"] {
            if let Ok(real) = fs::canonicalize(dir)
                && hidden.insert(real.clone())
            {
                step("hide", &real, rustix::mount::mount_bind(&empty, &real))?;
            }
        }
        let conf_dir = stage.join("modprobe.d");
        step("create", &conf_dir, fs::create_dir(&conf_dir))?;
        let mut conf = String::from(
            "# daxplug sim run: modules load into the emulated machine, never into the host.\n",
        );
        for m in MODULES {
            conf.push_str(&format!(
                "install {m} {}\n",
                modprobe_cmd.replace("MODULE", m)
            ));
        }
        let conf_file = conf_dir.join("daxplug-sim.conf");
        step("write", &conf_file, fs::write(&conf_file, conf))?;
        let mut configured = false;
        for dir in MODPROBE_DIRS {
            let Ok(real) = fs::canonicalize(dir) else {
                continue;
            };
            if !hidden.insert(real.clone()) {
                continue;
            }
            let source = if configured { &empty } else { &conf_dir };
            configured = true;
            step("replace", &real, rustix::mount::mount_bind(source, &real))?;
        }
        Ok(())
    }

    fn make_dev_nodes(&self, tree: &Path) -> Result<PathBuf, SandboxError> {
        let dev = self.stage.join("dev");
        step("create", &dev, fs::create_dir(&dev))?;
        let bus = tree.join("sys/bus/dax/devices");
        for e in fs::read_dir(&bus).into_iter().flatten().flatten() {
            let Ok(number) = fs::read_to_string(e.path().join("dev")) else {
                continue;
            };
            let Some((major, minor)) = number
                .trim()
                .split_once(':')
                .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
            else {
                continue;
            };
            let node = dev.join(e.file_name());
            step(
                "create the device node",
                &node,
                rustix::fs::mknodat(
                    rustix::fs::CWD,
                    &node,
                    rustix::fs::FileType::CharacterDevice,
                    rustix::fs::Mode::from_raw_mode(0o600),
                    rustix::fs::makedev(major, minor),
                ),
            )?;
        }
        Ok(dev)
    }

    fn compose_dev(&self, emulated: &Path) -> Result<(), SandboxError> {
        let host_dev = self.stage.join("host-dev");
        step("create", &host_dev, fs::create_dir(&host_dev))?;
        step(
            "bind the host's /dev on",
            &host_dev,
            rustix::mount::mount_bind_recursive("/dev", &host_dev),
        )?;
        let dax: Vec<PathBuf> = step("list", emulated, fs::read_dir(emulated))?
            .flatten()
            .map(|e| PathBuf::from(e.file_name()))
            .collect();
        tmpfs(Path::new("/dev"), "0755")?;
        compose(
            Path::new("/dev"),
            &host_dev,
            emulated,
            Path::new(""),
            &dax,
            HostEntries::Writable,
            &[],
        )?;
        step(
            "detach",
            &host_dev,
            rustix::mount::unmount(&host_dev, UnmountFlags::DETACH),
        )?;
        Ok(())
    }

    /// The served machine.
    pub fn mount(&self) -> Option<&Mount> {
        self.mount.as_ref()
    }

    /// The file a module name is written to to load it into the served model (what the
    /// namespace's modprobe configuration does), for programs that load modules without
    /// `modprobe`; `None` for a directory tree, where nothing loads.
    pub fn modprobe_control(&self) -> Option<PathBuf> {
        self.mount.as_ref().map(|_| {
            self.stage
                .join("fuse")
                .join(crate::MODPROBE_FILE.trim_start_matches('/'))
        })
    }

    /// Stops serving and removes the staging directory.
    pub fn leave(mut self) -> Result<(), SandboxError> {
        self.teardown()
    }

    fn teardown(&mut self) -> Result<(), SandboxError> {
        if let Some(m) = self.mount.take() {
            m.unmount()?;
        }
        if self.stage.as_os_str().is_empty() {
            return Ok(());
        }
        let stage = std::mem::take(&mut self.stage);
        // The staging tmpfs exists in this namespace only; the host sees an empty directory.
        let _ = rustix::mount::unmount(&stage, UnmountFlags::DETACH);
        step("remove", &stage, fs::remove_dir(&stage))
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.teardown();
    }
}

fn tmpfs(dir: &Path, mode: &str) -> Result<(), SandboxError> {
    let data = std::ffi::CString::new(format!("mode={mode}")).unwrap_or_default();
    step(
        "mount a tmpfs on",
        dir,
        rustix::mount::mount(
            "daxplug-sim",
            dir,
            "tmpfs",
            MountFlags::NOSUID | MountFlags::NODEV,
            Some(data.as_c_str()),
        ),
    )
}

/// Makes every mount under `/sys` read-only except the emulated machine's.
fn seal_sys() -> Result<(), SandboxError> {
    let info_path = Path::new("/proc/self/mountinfo");
    let info = step("read", info_path, fs::read_to_string(info_path))?;
    // mountinfo escapes spaces and the like as octal; such paths are not in /sys.
    let points: BTreeSet<String> = crate::mount_table(&info)
        .into_iter()
        .filter(|m| m.point.starts_with("/sys/") && m.fstype != crate::FSTYPE)
        .map(|m| m.point)
        .collect();
    for p in points {
        read_only(Path::new(&p))?;
    }
    Ok(())
}

fn read_only(dir: &Path) -> Result<(), SandboxError> {
    step(
        "make read-only",
        dir,
        rustix::mount::mount_remount(
            dir,
            MountFlags::BIND
                | MountFlags::RDONLY
                | MountFlags::NOSUID
                | MountFlags::NODEV
                | MountFlags::NOEXEC,
            "",
        ),
    )
}

/// How the host's entries are bound back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HostEntries {
    ReadOnly,
    Writable,
}

fn mount_point(target: &Path, like: &fs::Metadata) -> Result<(), SandboxError> {
    if like.is_dir() {
        step("create", target, fs::create_dir(target))
    } else {
        step("create", target, fs::File::create(target).map(|_| ()))
    }
}

/// Gives a dax device created since the sandbox was entered its `/dev/daxX.Y` node and its
/// `/sys/dev/char/MAJOR:MINOR` link (from the served machine at `served`), and takes a
/// removed one's away, as devtmpfs and the driver core do on a real machine: libdaxctl stats
/// the node of a device it has just created and follows the link to its subsystem.
fn sync_devices(served: &Path) -> Result<(), SandboxError> {
    // Two workers that each saw the change may both get here.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    sync_char_links(&served.join("sys").join(CHAR_LINKS))?;
    let emulated = served.join("dev");
    let emulated = emulated.as_path();
    let dax = |dir: &Path| -> BTreeSet<std::ffi::OsString> {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            // daxX.Y (a host node of that name is hidden too: the machine is the model).
            .filter(|n| {
                n.to_str()
                    .and_then(|n| n.strip_prefix("dax"))
                    .is_some_and(|rest| rest.contains('.'))
            })
            .collect()
    };
    let want = dax(emulated);
    let have = dax(Path::new("/dev"));
    for name in want.difference(&have) {
        let t = Path::new("/dev").join(name);
        step("create", &t, fs::File::create(&t).map(|_| ()))?;
        let src = emulated.join(name);
        step(
            "bind the emulated node on",
            &t,
            rustix::mount::mount_bind(&src, &t),
        )?;
    }
    for name in have.difference(&want) {
        let t = Path::new("/dev").join(name);
        step(
            "detach",
            &t,
            rustix::mount::unmount(&t, UnmountFlags::DETACH),
        )?;
        step("remove", &t, fs::remove_file(&t))?;
    }
    Ok(())
}

/// The `/sys/dev/char` links of the served machine's devices (`DAX_MAJOR:N`), added and
/// removed on the `/sys` tmpfs.
fn sync_char_links(emulated: &Path) -> Result<(), SandboxError> {
    let major = format!("{}:", daxplug_model::DAX_MAJOR);
    let links = |dir: &Path| -> BTreeSet<std::ffi::OsString> {
        fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .filter(|n| n.to_str().is_some_and(|n| n.starts_with(&major)))
            .collect()
    };
    let target = Path::new("/sys").join(CHAR_LINKS);
    let want = links(emulated);
    let have = links(&target);
    for name in want.difference(&have) {
        let src = emulated.join(name);
        let link = step("read the link", &src, fs::read_link(&src))?;
        let t = target.join(name);
        step("create the link", &t, std::os::unix::fs::symlink(link, &t))?;
    }
    for name in have.difference(&want) {
        let t = target.join(name);
        // Only links into the machine's devices are the machine's to take away.
        if fs::read_link(&t).is_ok_and(|l| l.to_string_lossy().contains("/dax")) {
            step("remove", &t, fs::remove_file(&t))?;
        }
    }
    Ok(())
}

/// Fills `target/rel` (on a tmpfs) with the entries of `host/rel` and `emu/rel`: emulated
/// where `rel/name` is in `overrides`, composed again where an override lies beneath,
/// the host's (read-only) otherwise.
fn compose(
    target: &Path,
    host: &Path,
    emu: &Path,
    rel: &Path,
    overrides: &[PathBuf],
    host_entries: HostEntries,
    made_links: &[(PathBuf, PathBuf)],
) -> Result<(), SandboxError> {
    let mut names = BTreeSet::new();
    for dir in [host.join(rel), emu.join(rel)] {
        if let Ok(rd) = fs::read_dir(&dir) {
            names.extend(rd.flatten().map(|e| e.file_name()));
        }
    }
    names.extend(
        made_links
            .iter()
            .filter(|(r, _)| r.parent() == Some(rel))
            .filter_map(|(r, _)| r.file_name().map(std::ffi::OsStr::to_owned)),
    );
    for name in names {
        let r = rel.join(&name);
        let t = target.join(&r);
        if let Some((_, link)) = made_links.iter().find(|(m, _)| *m == r) {
            step("create the link", &t, std::os::unix::fs::symlink(link, &t))?;
        } else if overrides.contains(&r) {
            let src = emu.join(&r);
            let Ok(meta) = fs::symlink_metadata(&src) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let link = step("read the link", &src, fs::read_link(&src))?;
                step("create the link", &t, std::os::unix::fs::symlink(link, &t))?;
                continue;
            }
            mount_point(&t, &meta)?;
            step(
                "bind the emulated files on",
                &t,
                rustix::mount::mount_bind(&src, &t),
            )?;
        } else if overrides.iter().any(|o| o.starts_with(&r)) {
            step("create", &t, fs::create_dir(&t))?;
            compose(target, host, emu, &r, overrides, host_entries, made_links)?;
        } else {
            let src = host.join(&r);
            let Ok(meta) = fs::symlink_metadata(&src) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let link = step("read the link", &src, fs::read_link(&src))?;
                step("create the link", &t, std::os::unix::fs::symlink(link, &t))?;
            } else {
                mount_point(&t, &meta)?;
                step(
                    "bind the host's",
                    &t,
                    rustix::mount::mount_bind_recursive(&src, &t),
                )?;
                if host_entries == HostEntries::ReadOnly {
                    read_only(&t)?;
                }
            }
        }
    }
    Ok(())
}
