//! Regression test for the one untrue report the reliability run found (seed 1, legacy
//! kernel, online_movable → online_kernel, all competitors, ENOMEM on add): daxplug said
//! "rolled back, online_movable" while a block was offline. An admin's write landed while
//! the verdict read the blocks one by one, after the block it changed had been read, and
//! two reads in a row agreed on the old state. The verdict's read is now fenced: no uevent
//! about the device may come while it reads (the running kernel's netlink group, the
//! model's log), or else `/sys/kernel/uevent_seqnum`, which every online/offline moves,
//! must not move.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering::SeqCst};

use common::harness::{Competitor, Fault, Start, arm, prepared};
use daxplug_abi::OnlineType;
use daxplug_engine::{Host, ObservedState, Options, Outcome, Scope, Target, discover, set};
use daxplug_kernel::{Kernel, Result};
use daxplug_model::Flavour;

/// The model, with an admin who offlines memory40 while daxplug reads memory47 for the
/// `nth` time once the rollback has brought every block back online.
struct AdminDuringRead<'a> {
    host: &'a common::TestHost,
    armed: AtomicBool,
    reads: AtomicU32,
    nth: u32,
    fired: AtomicBool,
    /// Whether the kernel's uevents can be watched (as on a running kernel), or only
    /// `/sys/kernel/uevent_seqnum` read (as under `sim run`).
    watch: bool,
}

impl Kernel for AdminDuringRead<'_> {
    fn read(&self, path: &str) -> Result<String> {
        let back_online = || {
            self.host.sim.with(|m| {
                m.blocks
                    .range(40..48)
                    .all(|(_, b)| b.state == daxplug_abi::BlockState::Online)
            })
        };
        if self.armed.load(SeqCst) && path.ends_with("/memory47/valid_zones") && back_online() {
            let reads = self.reads.fetch_add(1, SeqCst) + 1;
            if reads == self.nth && !self.fired.swap(true, SeqCst) {
                self.host
                    .sim
                    .write("/sys/devices/system/memory/memory40/state", "offline")
                    .unwrap_or_else(|e| {
                        panic!(
                            "the admin's offline: {e:?}; blocks {:?}",
                            self.host.sim.with(|m| m
                                .blocks
                                .range(40..48)
                                .map(|(i, b)| (*i, b.state))
                                .collect::<Vec<_>>())
                        )
                    });
            }
        }
        self.host.sim.read(path)
    }
    fn write(&self, path: &str, value: &str) -> Result<()> {
        let r = self.host.sim.write(path, value);
        if path.ends_with("/kmem/bind") && r.is_err() {
            // The transition failed: from here on, daxplug puts the device back.
            self.armed.store(true, SeqCst);
        }
        r
    }
    fn list_dir(&self, path: &str) -> Result<Vec<String>> {
        self.host.sim.list_dir(path)
    }
    fn read_link(&self, path: &str) -> Result<String> {
        self.host.sim.read_link(path)
    }
    fn exists(&self, path: &str) -> bool {
        self.host.sim.exists(path)
    }
    fn watch_uevents(&self) -> Option<Box<dyn daxplug_kernel::UeventWatch + '_>> {
        if self.watch {
            self.host.sim.watch_uevents()
        } else {
            None
        }
    }
}

struct Wrapped<'a>(AdminDuringRead<'a>);

impl Host for Wrapped<'_> {
    fn kernel(&self) -> &dyn Kernel {
        &self.0
    }
    fn run_dir(&self) -> std::path::PathBuf {
        self.0.host.run_dir()
    }
    fn udev_running(&self) -> bool {
        self.0.host.udev_running()
    }
    fn set_udev_queue(
        &self,
        running: bool,
    ) -> std::result::Result<(), daxplug_engine::host::UdevError> {
        self.0.host.set_udev_queue(running)
    }
    fn load_module(
        &self,
        module: daxplug_abi::DaxDriver,
    ) -> std::result::Result<(), daxplug_engine::host::ModuleError> {
        self.0.host.load_module(module)
    }
    fn dax_users(&self, device: daxplug_abi::DaxName) -> Vec<u32> {
        self.0.host.dax_users(device)
    }
}

#[test]
fn a_change_during_the_verdicts_read_is_reported_not_hidden() {
    let mut mixed_at_end = 0;
    for (nth, watch) in (1..=3).flat_map(|n| [(n, true), (n, false)]) {
        let host = prepared(Flavour::Legacy, 1, Start::Online(OnlineType::OnlineMovable));
        arm(&host, Competitor::None, Fault::EnomemOnAdd);
        let wrapped = Wrapped(AdminDuringRead {
            host: &host,
            armed: AtomicBool::new(false),
            reads: AtomicU32::new(0),
            nth,
            fired: AtomicBool::new(false),
            watch,
        });
        let opts = Options {
            force: true,
            ..common::quick()
        };
        let r = set(
            &wrapped,
            "dax0.0",
            Target::Online(OnlineType::OnlineKernel),
            &opts,
        )
        .expect("set runs");
        assert!(
            wrapped.0.fired.load(SeqCst),
            "the admin never acted (read {nth} of memory47 after the rollback): the test no longer reaches the case; {r:?}"
        );
        let now = discover(&host.sim, &Scope::All)
            .expect("discover")
            .devices
            .into_iter()
            .find(|d| d.name == "dax0.0")
            .expect("dax0.0")
            .state;
        mixed_at_end += u32::from(now == ObservedState::Mixed);
        assert_eq!(
            r.end,
            Some(now),
            "read {nth}: daxplug reported {:?} ({:?}) while the device is {now:?}",
            r.end,
            r.outcome
        );
        if now == ObservedState::Mixed {
            assert_eq!(r.outcome, Outcome::Torn, "read {nth}: {r:?}");
        }
    }
    assert!(
        mixed_at_end > 0,
        "no schedule left the admin's offline standing at the end: the test no longer reaches the case"
    );
}
