//! The shape of the emulated tree: which kernel object a directory stands for
//! ([`Object`]), and the subdirectories and links each object holds. Attributes (files)
//! are not here: [`super::attrs`] declares them.

use crate::machine::{DaxDevice, DaxDriver, Machine};

use super::{DAX_MAJOR, Kind};

/// Directories that exist as long as the machine does, named by their path.
const FIXED: &[&str] = &[
    "/",
    "/proc",
    "/sys",
    "/sys/bus",
    "/sys/bus/dax",
    "/sys/bus/dax/devices",
    "/sys/bus/dax/drivers",
    "/sys/dev",
    "/sys/dev/char",
    "/sys/devices",
    "/sys/devices/system",
    "/sys/devices/system/memory",
    "/sys/devices/system/memory/power",
    "/sys/devices/system/node",
    "/sys/devices/system/node/power",
    "/sys/devices/virtual",
    "/sys/devices/virtual/memory_tiering",
    "/sys/kernel",
    "/sys/kernel/mm",
    "/sys/kernel/mm/mempolicy",
    "/sys/kernel/mm/mempolicy/weighted_interleave",
    "/sys/kernel/mm/numa",
    "/sys/module",
    "/sys/module/memory_hotplug",
    "/sys/module/memory_hotplug/parameters",
];

const MEMORY_ROOT: &str = "/sys/devices/system/memory";
const NODE_ROOT: &str = "/sys/devices/system/node";
const DRIVERS: &str = "/sys/bus/dax/drivers";
const TIERING: &str = "/sys/devices/virtual/memory_tiering";

/// The kernel object behind a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    /// One of the directories in `FIXED`.
    Fixed(&'static str),
    /// `memoryN`.
    Block(u64),
    /// `nodeN` (online nodes only).
    Node(u32),
    /// `memory_tierN`, while a node with memory is in it.
    Tier(u32),
    /// A loaded dax driver's directory under `/sys/bus/dax/drivers`.
    Driver(DaxDriver),
    /// A loaded driver's module directory under `/sys/module`.
    Module(DaxDriver),
    /// A region's provider device (`/sys/devices/platform/hmem.0`), by index.
    Provider(usize),
    /// A directory on the way to a provider (`/sys/devices/platform`).
    Path,
    /// A provider's `dax_region`, by region index.
    Region(usize),
    /// `daxX.Y` under its provider, by device index.
    Device(usize),
    /// A device's `mappingN`: (device index, range index).
    Mapping(usize, usize),
}

impl Object {
    /// Whether the object lives as long as the machine: blocks, nodes, devices and
    /// drivers come and go.
    pub(crate) fn lasting(self) -> bool {
        matches!(
            self,
            Object::Fixed(_) | Object::Provider(_) | Object::Path | Object::Region(_)
        )
    }
}

/// A relative link target from directory `from` to `to` (both absolute).
pub(crate) fn relative(from: &str, to: &str) -> String {
    let f: Vec<&str> = from.split('/').filter(|c| !c.is_empty()).collect();
    let t: Vec<&str> = to.split('/').filter(|c| !c.is_empty()).collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; f.len() - common];
    parts.extend(&t[common..]);
    parts.join("/")
}

/// `N` of a component `prefixN` (digits only).
pub(crate) fn numbered(comp: &str, prefix: &str) -> Option<u64> {
    let n = comp.strip_prefix(prefix)?;
    (!n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

impl Machine {
    /// The object a canonical directory path stands for, if it exists.
    pub(crate) fn object_at(&self, dir: &str) -> Option<Object> {
        let dir = if dir.is_empty() { "/" } else { dir };
        if let Some(fixed) = FIXED.iter().find(|f| **f == dir) {
            return Some(Object::Fixed(fixed));
        }
        let (parent, name) = dir.rsplit_once('/')?;
        match parent {
            MEMORY_ROOT => {
                let id = numbered(name, "memory")?;
                return self.blocks.contains_key(&id).then_some(Object::Block(id));
            }
            NODE_ROOT => {
                let n = u32::try_from(numbered(name, "node")?).ok()?;
                return self.node_online(n).then_some(Object::Node(n));
            }
            TIERING => {
                let t = daxplug_abi::MemoryTier::from_dir_name(name)?;
                return self
                    .memory_tiers()
                    .contains_key(&t)
                    .then_some(Object::Tier(t.0));
            }
            DRIVERS => {
                let d = name.parse::<DaxDriver>().ok()?;
                return self.driver_loaded(d).then_some(Object::Driver(d));
            }
            "/sys/module" => {
                let d = name.parse::<DaxDriver>().ok()?;
                return self.driver_loaded(d).then_some(Object::Module(d));
            }
            _ => {}
        }
        if name == "dax_region" {
            let ri = self.regions.iter().position(|r| r.provider == parent)?;
            return Some(Object::Region(ri));
        }
        if let Some(i) = self.device_index_at(dir) {
            return Some(Object::Device(i));
        }
        if let Some(i) = self.device_index_at(parent) {
            let r = usize::try_from(numbered(name, "mapping")?).ok()?;
            return (r < self.devices[i].ranges.len()).then_some(Object::Mapping(i, r));
        }
        if let Some(ri) = self.regions.iter().position(|r| r.provider == dir) {
            return Some(Object::Provider(ri));
        }
        let prefix = format!("{dir}/");
        self.regions
            .iter()
            .any(|r| r.provider.starts_with(&prefix))
            .then_some(Object::Path)
    }

    /// Whether a dax driver is loaded (`device_dax` always is).
    pub fn driver_loaded(&self, d: DaxDriver) -> bool {
        match d {
            DaxDriver::DeviceDax => true,
            DaxDriver::Kmem => self.kmem_loaded,
            DaxDriver::FsdevDax => self.fsdev_loaded,
        }
    }

    fn device_index_at(&self, dir: &str) -> Option<usize> {
        let (parent, name) = dir.rsplit_once('/')?;
        let i = self.devices.iter().position(|d| d.name == name)?;
        let d = &self.devices[i];
        (self.region(d.region).map(|r| r.provider.as_str()) == Some(parent)).then_some(i)
    }

    /// A device's link from directory `from`.
    fn device_link(&self, from: &str, d: &DaxDevice) -> (String, Kind) {
        (
            d.name.clone(),
            Kind::Link(relative(from, &self.device_dir(d))),
        )
    }

    /// The subdirectories and links of object `obj` at `dir`, unsorted.
    pub(crate) fn children(&self, obj: Object, dir: &str) -> Vec<(String, Kind)> {
        let e = |name: &str, k: Kind| (name.to_owned(), k);
        let d = || Kind::Dir;
        match obj {
            Object::Fixed(path) => match path {
                "/" => vec![e("proc", d()), e("sys", d())],
                "/sys" => ["bus", "dev", "devices", "kernel", "module"]
                    .map(|n| e(n, d()))
                    .into(),
                "/sys/bus" => vec![e("dax", d())],
                "/sys/bus/dax" => vec![e("devices", d()), e("drivers", d())],
                "/sys/bus/dax/devices" => self
                    .devices
                    .iter()
                    .map(|dev| self.device_link(path, dev))
                    .collect(),
                "/sys/bus/dax/drivers" => DaxDriver::ALL
                    .iter()
                    .copied()
                    .filter(|k| self.driver_loaded(*k))
                    .map(|k| e(k.as_str(), d()))
                    .collect(),
                "/sys/dev" => vec![e("char", d())],
                // How libdaxctl finds a device from its /dev node's number.
                "/sys/dev/char" => self
                    .devices
                    .iter()
                    .map(|dev| {
                        let link = relative(path, &self.device_dir(dev));
                        e(&format!("{DAX_MAJOR}:{}", dev.minor), Kind::Link(link))
                    })
                    .collect(),
                "/sys/devices" => {
                    let mut v = vec![e("system", d()), e("virtual", d())];
                    v.extend(self.provider_steps(path));
                    v
                }
                "/sys/devices/system" => vec![e("memory", d()), e("node", d())],
                MEMORY_ROOT => {
                    let mut v = vec![e("power", d())];
                    v.extend(self.blocks.keys().map(|id| e(&format!("memory{id}"), d())));
                    v
                }
                NODE_ROOT => {
                    let mut v = vec![e("power", d())];
                    v.extend(
                        self.nodes
                            .iter()
                            .filter(|n| self.node_online(n.id))
                            .map(|n| e(&format!("node{}", n.id), d())),
                    );
                    v
                }
                "/sys/module" => {
                    let mut v = vec![e("memory_hotplug", d())];
                    v.extend(
                        DaxDriver::ALL
                            .iter()
                            .copied()
                            .filter(|k| self.driver_loaded(*k))
                            .map(|k| e(k.as_str(), d())),
                    );
                    v
                }
                "/sys/module/memory_hotplug" => vec![e("parameters", d())],
                "/sys/devices/virtual" => vec![e("memory_tiering", d())],
                TIERING => self
                    .memory_tiers()
                    .keys()
                    .map(|t| e(&t.dir_name(), d()))
                    .collect(),
                "/sys/kernel" => vec![e("mm", d())],
                "/sys/kernel/mm" => vec![e("mempolicy", d()), e("numa", d())],
                "/sys/kernel/mm/mempolicy" => vec![e("weighted_interleave", d())],
                _ => Vec::new(),
            },
            Object::Block(id) => {
                let node = self.blocks[&id].node;
                vec![
                    e(
                        &format!("node{node}"),
                        Kind::Link(format!("../../node/node{node}")),
                    ),
                    e("subsystem", Kind::Link("../../../../bus/memory".to_owned())),
                ]
            }
            Object::Node(n) => self
                .blocks
                .iter()
                .filter(|(_, b)| b.node == n)
                .map(|(id, _)| {
                    e(
                        &format!("memory{id}"),
                        Kind::Link(format!("../../memory/memory{id}")),
                    )
                })
                .collect(),
            Object::Driver(driver) => {
                let module = relative(dir, &format!("/sys/module/{}", driver.as_str()));
                let mut v = vec![e("module", Kind::Link(module))];
                v.extend(
                    self.devices
                        .iter()
                        .filter(|dev| dev.driver == Some(driver))
                        .map(|dev| self.device_link(dir, dev)),
                );
                v
            }
            Object::Module(_) | Object::Region(_) | Object::Mapping(..) | Object::Tier(_) => {
                Vec::new()
            }
            Object::Provider(ri) => {
                let id = self.regions[ri].id;
                let mut v = vec![e("dax_region", d())];
                v.extend(
                    self.devices
                        .iter()
                        .filter(|dev| dev.region == id)
                        .map(|dev| e(&dev.name, d())),
                );
                v
            }
            Object::Path => self.provider_steps(dir),
            Object::Device(i) => {
                let dev = &self.devices[i];
                let mut v = vec![e("subsystem", Kind::Link(relative(dir, "/sys/bus/dax")))];
                if let Some(driver) = dev.driver {
                    let to = format!("{DRIVERS}/{}", driver.as_str());
                    v.push(e("driver", Kind::Link(relative(dir, &to))));
                }
                v.extend((0..dev.ranges.len()).map(|r| e(&format!("mapping{r}"), d())));
                v
            }
        }
    }

    /// The next components below `dir` on the way to each region's provider.
    fn provider_steps(&self, dir: &str) -> Vec<(String, Kind)> {
        let prefix = format!("{dir}/");
        let mut v: Vec<(String, Kind)> = self
            .regions
            .iter()
            .filter_map(|r| r.provider.strip_prefix(&prefix))
            .map(|rest| (rest.split('/').next().unwrap_or(rest).to_owned(), Kind::Dir))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        v
    }

    /// One child of `obj`, looked up directly where a directory may hold many (a
    /// machine may have 64k memory blocks).
    pub(crate) fn child(&self, obj: Object, dir: &str, name: &str) -> Option<Kind> {
        match obj {
            Object::Fixed(MEMORY_ROOT) if name.starts_with("memory") => {
                let id = numbered(name, "memory")?;
                self.blocks.contains_key(&id).then_some(Kind::Dir)
            }
            Object::Node(n) if name.starts_with("memory") => {
                let id = numbered(name, "memory")?;
                self.blocks
                    .get(&id)
                    .filter(|b| b.node == n)
                    .map(|_| Kind::Link(format!("../../memory/memory{id}")))
            }
            _ => self
                .children(obj, dir)
                .into_iter()
                .find(|(n, _)| n == name)
                .map(|(_, k)| k),
        }
    }
}
