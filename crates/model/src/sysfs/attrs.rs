//! Every attribute file of the emulated tree, declared once per kind of object as the
//! kernel does with `DEVICE_ATTR_RW()` and `is_visible()`: its name, how it is shown, how
//! a write is stored, when it is there, and whether a write holds the device-hotplug lock.
//! Listing, reading, writing and the FUSE server's cache rules all read these tables.

use std::fmt::{Display, Write as _};

use daxplug_abi::{BlockState, NodeList, OnlinePolicy, OnlineType};
use daxplug_kernel::Errno;

use crate::machine::Caller;
use crate::machine::{DaxDevice, DaxDriver, DevRange, Flavour, KmemState, Machine};

use super::DAX_MAJOR;
use super::tree::Object;
use crate::kstr::kstrtobool;

/// How an attribute may be used: the kernel's file mode, reduced to what matters here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Access {
    pub read: bool,
    pub write: bool,
}

const R: Access = Access {
    read: true,
    write: false,
};
const RW: Access = Access {
    read: true,
    write: true,
};

type Show = fn(&Machine, Object) -> Option<String>;
type Store = fn(&mut Machine, Object, &str, Caller) -> Result<(), Errno>;
/// The kernel's `is_visible()`: `None` hides the attribute for this object, otherwise
/// what it allows there (at most what is declared).
type Visible = fn(&Machine, Object) -> Option<Access>;

/// One attribute file.
pub(crate) struct Attribute {
    pub name: &'static str,
    show: Option<Show>,
    store: Option<Store>,
    visible: Option<Visible>,
    /// A write holds the device-hotplug lock for its whole duration, every migration
    /// pass of an offline included.
    pub hotplug_lock: bool,
}

impl Attribute {
    const fn ro(name: &'static str, show: Show) -> Self {
        Attribute {
            name,
            show: Some(show),
            store: None,
            visible: None,
            hotplug_lock: false,
        }
    }

    const fn rw(name: &'static str, show: Show, store: Store) -> Self {
        Attribute {
            store: Some(store),
            ..Attribute::ro(name, show)
        }
    }

    const fn wo(name: &'static str, store: Store) -> Self {
        Attribute {
            name,
            show: None,
            store: Some(store),
            visible: None,
            hotplug_lock: false,
        }
    }

    const fn when(self, visible: Visible) -> Self {
        Attribute {
            visible: Some(visible),
            ..self
        }
    }

    const fn locked(self) -> Self {
        Attribute {
            hotplug_lock: true,
            ..self
        }
    }

    /// What the attribute allows on `obj`, or `None` if it is not there.
    pub(crate) fn access(&self, m: &Machine, obj: Object) -> Option<Access> {
        let declared = Access {
            read: self.show.is_some(),
            write: self.store.is_some(),
        };
        let allowed = match self.visible {
            Some(visible) => visible(m, obj)?,
            None => declared,
        };
        Some(Access {
            read: declared.read && allowed.read,
            write: declared.write && allowed.write,
        })
    }

    /// Whether the attribute is there whatever the machine's state.
    pub(crate) fn always_there(&self) -> bool {
        self.visible.is_none()
    }

    pub(crate) fn show(&self, m: &Machine, obj: Object) -> Option<String> {
        self.show.and_then(|show| show(m, obj))
    }

    pub(crate) fn store(
        &self,
        m: &mut Machine,
        obj: Object,
        token: &str,
        caller: Caller,
    ) -> Result<(), Errno> {
        self.store.ok_or(Errno::EACCES)?(m, obj, token, caller)
    }
}

/// The attributes of an object.
pub(crate) fn table(obj: Object) -> &'static [Attribute] {
    match obj {
        Object::Fixed("/proc") => PROC,
        Object::Fixed("/sys/bus/dax") => DAX_BUS,
        Object::Fixed("/sys/kernel") => KERNEL,
        Object::Fixed("/sys/devices/system/memory") => MEMORY_ROOT,
        Object::Fixed("/sys/devices/system/node") => NODE_ROOT,
        Object::Fixed("/sys/module/memory_hotplug/parameters") => HOTPLUG_PARAMETERS,
        Object::Block(_) => BLOCK,
        Object::Node(_) => NODE,
        Object::Tier(_) => TIER,
        Object::Fixed("/sys/kernel/mm/numa") => NUMA,
        Object::Fixed("/sys/kernel/mm/mempolicy/weighted_interleave") => WEIGHTED_INTERLEAVE,
        Object::Driver(_) => DRIVER,
        Object::Region(_) => REGION,
        Object::Device(_) => DEVICE,
        Object::Mapping(..) => MAPPING,
        Object::Fixed(_) | Object::Module(_) | Object::Provider(_) | Object::Path => &[],
    }
}

fn line(v: impl Display) -> Option<String> {
    Some(format!("{v}\n"))
}

fn hex(v: u64) -> Option<String> {
    Some(format!("{v:#x}\n"))
}

fn empty(_: &Machine, _: Object) -> Option<String> {
    Some(String::new())
}

fn ignore(_: &mut Machine, _: Object, _: &str, _: Caller) -> Result<(), Errno> {
    Ok(())
}

/// Poisoning pages is not modelled.
fn not_modelled(_: &mut Machine, _: Object, _: &str, _: Caller) -> Result<(), Errno> {
    Err(Errno::EOPNOTSUPP)
}

fn parse<T: std::str::FromStr>(token: &str) -> Result<T, Errno> {
    token.parse().map_err(|_| Errno::EINVAL)
}

fn nodes(m: &Machine, f: impl Fn(u32) -> bool) -> Option<String> {
    line(
        m.nodes
            .iter()
            .map(|n| n.id)
            .filter(|n| f(*n))
            .collect::<NodeList>(),
    )
}

impl Object {
    fn block_id(self) -> Option<u64> {
        match self {
            Object::Block(id) => Some(id),
            _ => None,
        }
    }

    fn driver(self) -> Option<DaxDriver> {
        match self {
            Object::Driver(d) => Some(d),
            _ => None,
        }
    }

    fn device(self, m: &Machine) -> Option<&DaxDevice> {
        match self {
            Object::Device(i) => m.devices.get(i),
            _ => None,
        }
    }

    fn device_name(self, m: &Machine) -> Result<String, Errno> {
        self.device(m).map(|d| d.name.clone()).ok_or(Errno::ENOENT)
    }

    fn region_index(self) -> Option<usize> {
        match self {
            Object::Region(i) => Some(i),
            _ => None,
        }
    }

    fn device_index(self) -> Option<usize> {
        match self {
            Object::Device(i) => Some(i),
            _ => None,
        }
    }

    fn region(self, m: &Machine) -> Option<&crate::machine::Region> {
        match self {
            Object::Region(i) => m.regions.get(i),
            _ => None,
        }
    }

    fn mapping(self, m: &Machine) -> Option<&DevRange> {
        match self {
            Object::Mapping(d, r) => m.devices.get(d)?.ranges.get(r),
            _ => None,
        }
    }

    /// Whether a region or device belongs to a region whose devices can be created and
    /// resized (hmem, CXL), as opposed to a static one (pmem).
    fn dynamic(self, m: &Machine) -> bool {
        let region = match self {
            Object::Region(i) => m.regions.get(i),
            Object::Device(i) => m.devices.get(i).and_then(|d| m.region(d.region)),
            _ => None,
        };
        region.is_some_and(crate::machine::Region::is_dynamic)
    }
}

fn kmem_state(m: &Machine, d: &DaxDevice) -> Option<KmemState> {
    (m.flavour == Flavour::Atomic).then_some(())?;
    d.kmem.as_ref().map(|k| k.state)
}

static PROC: &[Attribute] = &[
    Attribute::ro("iomem", |m, _| Some(m.iomem().to_string())),
    Attribute::ro("zoneinfo", |m, _| Some(m.zoneinfo().to_string())),
    Attribute::ro("meminfo", |m, _| {
        let kb = m.mem_total() / 1024;
        Some(format!(
            "MemTotal:       {kb:>8} kB\nMemFree:        {kb:>8} kB\nMemAvailable:   {kb:>8} kB\n"
        ))
    }),
];

static DAX_BUS: &[Attribute] = &[
    Attribute::rw(
        "drivers_autoprobe",
        |m, _| line(u8::from(m.drivers_autoprobe)),
        |m, _, token, _| {
            m.drivers_autoprobe = kstrtobool(token).ok_or(Errno::EINVAL)?;
            Ok(())
        },
    ),
    Attribute::wo("drivers_probe", |m, _, token, _| m.drivers_probe(token)),
    Attribute::wo("uevent", ignore),
];

/// `/sys/kernel`: what the model has of it.
static KERNEL: &[Attribute] = &[Attribute::ro("uevent_seqnum", |m, _| line(m.uevent_seqnum))];

static TIER: &[Attribute] = &[Attribute::ro("nodelist", |m, o| {
    let Object::Tier(t) = o else { return None };
    let tiers = m.memory_tiers();
    let members = tiers.get(&daxplug_abi::MemoryTier(t))?;
    nodes(m, |n| members.contains(&n))
})];

static NUMA: &[Attribute] = &[Attribute::rw(
    "demotion_enabled",
    |m, _| line(m.placement.demotion_enabled),
    |m, _, token, _| {
        m.placement.demotion_enabled = kstrtobool(token).ok_or(Errno::EINVAL)?;
        Ok(())
    },
)];

/// `weighted_interleave/`: `auto` where the kernel has it, and `nodeN` for the nodes that
/// have a file (see [`Machine::interleave_file`]), up to [`crate::MAX_NODES`].
macro_rules! weighted_interleave {
    ($($n:literal),*) => {
        &[
            Attribute::rw(
                "auto",
                |m, _| line(m.interleave_in_auto_mode()),
                |m, _, token, _| {
                    m.set_interleave_auto(kstrtobool(token).ok_or(Errno::EINVAL)?)
                },
            )
            .when(|m, _| m.has_interleave_auto().then_some(RW)),
            $(
                Attribute::rw(
                    concat!("node", $n),
                    |m, _| line(m.interleave_weight($n)),
                    |m, _, token, _| m.set_interleave_weight($n, token),
                )
                .when(|m, _| m.interleave_file($n).then_some(RW)),
            )*
        ]
    };
}

static WEIGHTED_INTERLEAVE: &[Attribute] =
    weighted_interleave!(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);

static MEMORY_ROOT: &[Attribute] = &[
    Attribute::rw(
        "auto_online_blocks",
        |m, _| line(m.auto_online_blocks),
        |m, _, token, _| {
            m.auto_online_blocks = parse(token)?;
            Ok(())
        },
    ),
    Attribute::ro("block_size_bytes", |m, _| {
        Some(format!("{:x}\n", m.block_size))
    }),
    Attribute::ro("crash_hotplug", |_, _| line(0)),
    Attribute::wo("hard_offline_page", not_modelled),
    Attribute::wo("soft_offline_page", not_modelled),
    Attribute::rw("uevent", empty, ignore),
];

static NODE_ROOT: &[Attribute] = &[
    Attribute::ro("has_cpu", |m, _| {
        nodes(m, |n| m.nodes.iter().any(|x| x.id == n && x.has_cpu))
    }),
    Attribute::ro("has_generic_initiator", |_, _| line("")),
    Attribute::ro("has_memory", |m, _| {
        nodes(m, |n| m.node_has_memory(n, false))
    }),
    Attribute::ro("has_normal_memory", |m, _| {
        nodes(m, |n| m.node_has_memory(n, true))
    }),
    Attribute::ro("online", |m, _| nodes(m, |n| m.node_online(n))),
    Attribute::ro("possible", |m, _| nodes(m, |_| true)),
    Attribute::rw("uevent", empty, ignore),
];

static HOTPLUG_PARAMETERS: &[Attribute] = &[
    Attribute::rw(
        "auto_movable_numa_aware",
        |m, _| line(if m.auto_movable_numa_aware { "Y" } else { "N" }),
        |m, _, token, _| {
            m.auto_movable_numa_aware = kstrtobool(token).ok_or(Errno::EINVAL)?;
            Ok(())
        },
    ),
    Attribute::rw(
        "auto_movable_ratio",
        |m, _| line(m.auto_movable_ratio),
        |m, _, token, _| {
            m.auto_movable_ratio = parse(token)?;
            Ok(())
        },
    ),
    Attribute::ro("memmap_on_memory", |m, _| line(m.memmap_on_memory)),
    Attribute::rw(
        "online_policy",
        |m, _| line(m.online_policy),
        |m, _, token, _| {
            m.online_policy = parse::<OnlinePolicy>(token)?;
            Ok(())
        },
    ),
];

static BLOCK: &[Attribute] = &[
    Attribute::rw(
        "online",
        |m, o| {
            line(u8::from(
                m.blocks.get(&o.block_id()?)?.state != BlockState::Offline,
            ))
        },
        |m, o, token, caller| {
            let id = o.block_id().ok_or(Errno::ENOENT)?;
            if kstrtobool(token).ok_or(Errno::EINVAL)? {
                m.online_block(id, OnlineType::Online).map(|_| ())
            } else {
                m.offline_block(id, caller).map(|_| ())
            }
        },
    )
    .locked(),
    Attribute::ro("phys_device", |_, _| line(0)),
    Attribute::ro("phys_index", |_, o| {
        Some(format!("{:08x}\n", o.block_id()?))
    }),
    Attribute::ro("removable", |_, _| line(1)),
    Attribute::rw(
        "state",
        |m, o| line(m.blocks.get(&o.block_id()?)?.state),
        |m, o, token, caller| {
            let id = o.block_id().ok_or(Errno::ENOENT)?;
            let already = match parse::<OnlineType>(token)? {
                OnlineType::Offline => m.offline_block(id, caller)?,
                t => m.online_block(id, t)?,
            };
            if already { Err(Errno::EINVAL) } else { Ok(()) }
        },
    )
    .locked(),
    Attribute::rw("uevent", empty, ignore),
    Attribute::ro("valid_zones", |m, o| line(m.valid_zones(o.block_id()?))),
];

static NODE: &[Attribute] = &[Attribute::ro("meminfo", |m, o| {
    let Object::Node(n) = o else { return None };
    let kb = m.node_mem_total(n) / 1024;
    Some(format!(
        "Node {n} MemTotal:       {kb:>8} kB\nNode {n} MemFree:        {kb:>8} kB\nNode {n} MemUsed:        {:>8} kB\n",
        0
    ))
})];

static DRIVER: &[Attribute] = &[
    Attribute::wo("bind", |m, o, token, _| {
        m.driver_bind(o.driver().ok_or(Errno::ENOENT)?, token)
    }),
    Attribute::wo("new_id", |m, o, token, _| {
        m.driver_new_id(o.driver().ok_or(Errno::ENOENT)?, token)
    }),
    Attribute::wo("remove_id", |m, o, token, _| {
        m.driver_remove_id(o.driver().ok_or(Errno::ENOENT)?, token)
    }),
    Attribute::wo("uevent", ignore),
    Attribute::wo("unbind", |m, o, token, _| {
        m.driver_unbind(o.driver().ok_or(Errno::ENOENT)?, token)
    }),
];

/// Only on a dynamic region or its devices.
fn dynamic_only(m: &Machine, o: Object) -> Option<Access> {
    o.dynamic(m).then_some(RW)
}

static REGION: &[Attribute] = &[
    Attribute::ro("align", |m, o| line(o.region(m)?.align)),
    Attribute::ro("available_size", |m, o| {
        line(m.available_size(o.region_index()?))
    })
    .when(dynamic_only),
    Attribute::rw(
        "create",
        |m, o| line(o.region(m)?.youngest.as_deref().unwrap_or("")),
        |m, o, token, _| m.region_create(o.region_index().ok_or(Errno::ENOENT)?, token),
    )
    .when(dynamic_only),
    Attribute::wo("delete", |m, o, token, _| {
        m.region_delete(o.region_index().ok_or(Errno::ENOENT)?, token)
    })
    .when(dynamic_only),
    Attribute::ro("id", |m, o| line(o.region(m)?.id)),
    Attribute::ro("seed", |m, o| {
        line(o.region(m)?.seed.as_deref().unwrap_or(""))
    })
    .when(dynamic_only),
    Attribute::ro("size", |m, o| line(o.region(m)?.range.len())),
];

static MAPPING: &[Attribute] = &[
    Attribute::ro("end", |m, o| hex(o.mapping(m)?.range.end)),
    Attribute::ro("page_offset", |m, o| hex(o.mapping(m)?.page_offset)),
    Attribute::ro("start", |m, o| hex(o.mapping(m)?.range.start)),
    Attribute::rw("uevent", empty, ignore),
];

/// Writable on a dynamic region's device, read-only on a static one's.
fn resizable(m: &Machine, o: Object) -> Option<Access> {
    Some(if o.dynamic(m) { RW } else { R })
}

static DEVICE: &[Attribute] = &[
    Attribute::rw(
        "align",
        |m, o| line(o.device(m)?.align),
        |m, o, token, _| m.device_align(o.device_index().ok_or(Errno::ENOENT)?, token),
    )
    .when(resizable),
    Attribute::ro("dev", |m, o| {
        Some(format!("{DAX_MAJOR}:{}\n", o.device(m)?.minor))
    }),
    Attribute::wo("mapping", |m, o, token, _| {
        m.device_mapping(o.device_index().ok_or(Errno::ENOENT)?, token)
    })
    .when(dynamic_only),
    Attribute::rw(
        "memmap_on_memory",
        |m, o| line(u8::from(o.device(m)?.memmap_on_memory)),
        |m, o, token, _| m.memmap_store(&o.device_name(m)?, token),
    ),
    Attribute::ro("modalias", |_, _| line("dax:t0")),
    Attribute::ro("numa_node", |m, o| {
        line(o.device(m)?.numa_node.map_or(-1, i64::from))
    }),
    // A device with no range shows its region's start.
    Attribute::ro("resource", |m, o| {
        let d = o.device(m)?;
        let region = m.region(d.region).map_or(0, |r| r.range.start);
        hex(d.ranges.first().map_or(region, |r| r.range.start))
    }),
    Attribute::rw(
        "size",
        |m, o| {
            line(
                o.device(m)?
                    .ranges
                    .iter()
                    .map(|r| r.range.len())
                    .sum::<u64>(),
            )
        },
        |m, o, token, _| m.device_resize(o.device_index().ok_or(Errno::ENOENT)?, token),
    )
    .when(resizable),
    // The atomic series' whole-device state; kmem creates it on bind.
    Attribute::rw(
        "state",
        |m, o| match kmem_state(m, o.device(m)?)? {
            KmemState::Unplugged => line("unplugged"),
            KmemState::Plugged(t) => line(t),
        },
        |m, o, token, _| m.dax_state_store(&o.device_name(m)?, token),
    )
    .when(|m, o| o.device(m).and_then(|d| kmem_state(m, d)).map(|_| RW)),
    Attribute::ro("target_node", |m, o| {
        line(o.device(m)?.target_node.map_or(-1, i64::from))
    }),
    Attribute::rw(
        "uevent",
        |m, o| {
            let d = o.device(m)?;
            let mut s = format!("MAJOR={DAX_MAJOR}\nMINOR={}\nDEVNAME={}\n", d.minor, d.name);
            if let Some(drv) = d.driver {
                let _ = writeln!(s, "DRIVER={}", drv.as_str());
            }
            s.push_str("MODALIAS=dax:t0\n");
            Some(s)
        },
        ignore,
    ),
];
