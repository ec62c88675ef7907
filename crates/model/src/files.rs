//! The emulated `/sys` and `/proc`: every directory, file and link daxplug (or daxctl, or
//! a shell) would touch, rendered from the machine's state, and every write dispatched to
//! the kernel behaviour it triggers.

use std::fmt::Write as _;

use daxplug_abi::{BlockState, NodeList, OnlinePolicy, OnlineType};
use daxplug_kernel::Errno;

use crate::dax::store_token;
use crate::hotplug::Caller;
use crate::machine::{DaxDevice, DriverKind, Flavour, KmemState, Machine, RegionType};

/// What a path is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A directory.
    Dir,
    /// An attribute file.
    File {
        /// Readable (write-only attributes give `EACCES` on read).
        read: bool,
        /// Writable (read-only attributes give `EACCES` on write).
        write: bool,
    },
    /// A symbolic link with its (relative) target.
    Link(String),
}

const R: Kind = Kind::File {
    read: true,
    write: false,
};
const W: Kind = Kind::File {
    read: false,
    write: true,
};
const RW: Kind = Kind::File {
    read: true,
    write: true,
};

/// Major number of the dax character devices.
pub const DAX_MAJOR: u32 = 252;

/// Splits `daxX.Y`.
pub fn parse_dax_name(name: &str) -> Option<(u32, u32)> {
    name.parse::<daxplug_abi::DaxName>()
        .ok()
        .map(|n| (n.region, n.id))
}

/// The kernel's `kstrtobool()`.
pub fn parse_kstrtobool(text: &str) -> Option<bool> {
    match text.as_bytes().first()? {
        b'1' | b'y' | b'Y' => Some(true),
        b'0' | b'n' | b'N' => Some(false),
        b'o' | b'O' => match text.as_bytes().get(1)? {
            b'n' | b'N' => Some(true),
            b'f' | b'F' => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// A relative link target from directory `from` to `to` (both absolute).
fn relative(from: &str, to: &str) -> String {
    let f: Vec<&str> = from.split('/').filter(|c| !c.is_empty()).collect();
    let t: Vec<&str> = to.split('/').filter(|c| !c.is_empty()).collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; f.len() - common];
    parts.extend(&t[common..]);
    parts.join("/")
}

fn node_of_comp(comp: &str, prefix: &str) -> Option<u64> {
    let n = comp.strip_prefix(prefix)?;
    (!n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
        .then(|| n.parse().ok())
        .flatten()
}

impl Machine {
    fn device_at(&self, dir: &str) -> Option<&DaxDevice> {
        let (parent, name) = dir.rsplit_once('/')?;
        let d = self.device(name)?;
        (self.region(d.region).map(|r| r.provider.as_str()) == Some(parent)).then_some(d)
    }

    fn region_at(&self, dir: &str) -> Option<&crate::machine::Region> {
        let provider = dir.strip_suffix("/dax_region")?;
        self.regions.iter().find(|r| r.provider == provider)
    }

    fn mapping_at(&self, dir: &str) -> Option<(&DaxDevice, usize)> {
        let (dev_dir, comp) = dir.rsplit_once('/')?;
        let d = self.device_at(dev_dir)?;
        let i = usize::try_from(node_of_comp(comp, "mapping")?).ok()?;
        (i < d.ranges.len()).then_some((d, i))
    }

    fn kmem_state(&self, d: &DaxDevice) -> Option<KmemState> {
        (self.flavour == Flavour::Atomic).then_some(())?;
        d.kmem.as_ref().map(|k| k.state)
    }

    fn node_list(&self, f: impl Fn(u32) -> bool) -> NodeList {
        self.nodes.iter().map(|n| n.id).filter(|n| f(*n)).collect()
    }

    /// The entries of a canonical directory, or `None` if it is not one.
    pub fn entries(&self, dir: &str) -> Option<Vec<(String, Kind)>> {
        let e = |name: &str, k: Kind| (name.to_owned(), k);
        let mut out = match dir {
            "" | "/" => vec![e("proc", Kind::Dir), e("sys", Kind::Dir)],
            "/proc" => vec![e("iomem", R), e("meminfo", R)],
            "/sys" => vec![
                e("bus", Kind::Dir),
                e("dev", Kind::Dir),
                e("devices", Kind::Dir),
                e("module", Kind::Dir),
            ],
            "/sys/dev" => vec![e("char", Kind::Dir)],
            // How libdaxctl finds a device from its /dev node's number.
            "/sys/dev/char" => self
                .devices
                .iter()
                .map(|d| {
                    e(
                        &format!("{DAX_MAJOR}:{}", d.minor),
                        Kind::Link(relative(dir, &self.device_dir(d))),
                    )
                })
                .collect(),
            "/sys/bus" => vec![e("dax", Kind::Dir)],
            "/sys/bus/dax" => vec![
                e("devices", Kind::Dir),
                e("drivers", Kind::Dir),
                e("drivers_autoprobe", RW),
                e("drivers_probe", W),
                e("uevent", W),
            ],
            "/sys/bus/dax/devices" => self
                .devices
                .iter()
                .map(|d| e(&d.name, Kind::Link(relative(dir, &self.device_dir(d)))))
                .collect(),
            "/sys/bus/dax/drivers" => DriverKind::ALL
                .into_iter()
                .filter(|k| *k != DriverKind::Kmem || self.kmem_loaded)
                .map(|k| e(k.name(), Kind::Dir))
                .collect(),
            "/sys/module" => {
                let mut v = vec![e("memory_hotplug", Kind::Dir), e("device_dax", Kind::Dir)];
                if self.kmem_loaded {
                    v.push(e("kmem", Kind::Dir));
                }
                v
            }
            "/sys/module/memory_hotplug" => vec![e("parameters", Kind::Dir)],
            "/sys/module/kmem"
            | "/sys/module/device_dax"
            | "/sys/devices/system/memory/power"
            | "/sys/devices/system/node/power" => Vec::new(),
            "/sys/module/memory_hotplug/parameters" => vec![
                e("auto_movable_numa_aware", RW),
                e("auto_movable_ratio", RW),
                e("memmap_on_memory", R),
                e("online_policy", RW),
            ],
            "/sys/devices/system" => vec![e("memory", Kind::Dir), e("node", Kind::Dir)],
            "/sys/devices/system/memory" => {
                let mut v = vec![
                    e("auto_online_blocks", RW),
                    e("block_size_bytes", R),
                    e("crash_hotplug", R),
                    e("hard_offline_page", W),
                    e("power", Kind::Dir),
                    e("soft_offline_page", W),
                    e("uevent", RW),
                ];
                v.extend(
                    self.blocks
                        .keys()
                        .map(|id| e(&format!("memory{id}"), Kind::Dir)),
                );
                v
            }
            "/sys/devices/system/node" => {
                let mut v = vec![
                    e("has_cpu", R),
                    e("has_generic_initiator", R),
                    e("has_memory", R),
                    e("has_normal_memory", R),
                    e("online", R),
                    e("possible", R),
                    e("power", Kind::Dir),
                    e("uevent", RW),
                ];
                v.extend(
                    self.nodes
                        .iter()
                        .filter(|n| self.node_online(n.id))
                        .map(|n| e(&format!("node{}", n.id), Kind::Dir)),
                );
                v
            }
            _ => return self.dynamic_entries(dir),
        };
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Some(out)
    }

    fn dynamic_entries(&self, dir: &str) -> Option<Vec<(String, Kind)>> {
        let e = |name: &str, k: Kind| (name.to_owned(), k);
        if let Some(driver) = dir
            .strip_prefix("/sys/bus/dax/drivers/")
            .and_then(DriverKind::from_name)
        {
            if driver == DriverKind::Kmem && !self.kmem_loaded {
                return None;
            }
            let mut v = vec![
                e("bind", W),
                e(
                    "module",
                    Kind::Link(relative(dir, &format!("/sys/module/{}", driver.name()))),
                ),
                e("new_id", W),
                e("remove_id", W),
                e("uevent", W),
                e("unbind", W),
            ];
            v.extend(
                self.devices
                    .iter()
                    .filter(|d| d.driver == Some(driver))
                    .map(|d| e(&d.name, Kind::Link(relative(dir, &self.device_dir(d))))),
            );
            v.sort_by(|a, b| a.0.cmp(&b.0));
            return Some(v);
        }
        if let Some(comp) = dir.strip_prefix("/sys/devices/system/memory/") {
            let id = node_of_comp(comp, "memory")?;
            let b = self.blocks.get(&id)?;
            return Some(vec![
                e(
                    &format!("node{}", b.node),
                    Kind::Link(format!("../../node/node{}", b.node)),
                ),
                e("online", RW),
                e("phys_device", R),
                e("phys_index", R),
                e("removable", R),
                e("state", RW),
                e("subsystem", Kind::Link("../../../../bus/memory".to_owned())),
                e("uevent", RW),
                e("valid_zones", R),
            ]);
        }
        if let Some(comp) = dir.strip_prefix("/sys/devices/system/node/") {
            let n = u32::try_from(node_of_comp(comp, "node")?).ok()?;
            if !self.node_online(n) {
                return None;
            }
            let mut v = vec![e("meminfo", R)];
            v.extend(
                self.blocks
                    .iter()
                    .filter(|(_, b)| b.node == n)
                    .map(|(id, _)| {
                        e(
                            &format!("memory{id}"),
                            Kind::Link(format!("../../memory/memory{id}")),
                        )
                    }),
            );
            v.sort_by(|a, b| a.0.cmp(&b.0));
            return Some(v);
        }
        if let Some(r) = self.region_at(dir) {
            let v = match r.kind {
                RegionType::Kmem => vec![
                    e("align", R),
                    e("available_size", R),
                    e("create", RW),
                    e("delete", W),
                    e("id", R),
                    e("seed", R),
                    e("size", R),
                ],
                RegionType::Devdax => vec![e("align", R), e("id", R), e("size", R)],
            };
            return Some(v);
        }
        if let Some((_, _)) = self.mapping_at(dir) {
            return Some(vec![
                e("end", R),
                e("page_offset", R),
                e("start", R),
                e("uevent", RW),
            ]);
        }
        if let Some(d) = self.device_at(dir) {
            let dynamic = self
                .region(d.region)
                .is_some_and(|r| r.kind == RegionType::Kmem);
            let mut v = vec![
                e("align", if dynamic { RW } else { R }),
                e("dev", R),
                e("memmap_on_memory", RW),
                e("modalias", R),
                e("numa_node", R),
                e("resource", R),
                e("size", if dynamic { RW } else { R }),
                e("subsystem", Kind::Link(relative(dir, "/sys/bus/dax"))),
                e("target_node", R),
                e("uevent", RW),
            ];
            if dynamic {
                v.push(e("mapping", W));
            }
            if let Some(driver) = d.driver {
                v.push(e(
                    "driver",
                    Kind::Link(relative(
                        dir,
                        &format!("/sys/bus/dax/drivers/{}", driver.name()),
                    )),
                ));
            }
            if self.kmem_state(d).is_some() {
                v.push(e("state", RW));
            }
            v.extend((0..d.ranges.len()).map(|i| e(&format!("mapping{i}"), Kind::Dir)));
            v.sort_by(|a, b| a.0.cmp(&b.0));
            return Some(v);
        }
        // Directories on the way to region providers (`/sys/devices/platform/hmem.0`, …),
        // and the providers themselves.
        let prefix = format!("{dir}/");
        let mut names: Vec<(String, Kind)> = Vec::new();
        let mut any = false;
        for r in &self.regions {
            if r.provider == dir {
                any = true;
                names.push(e("dax_region", Kind::Dir));
                names.extend(
                    self.devices
                        .iter()
                        .filter(|d| d.region == r.id)
                        .map(|d| e(&d.name, Kind::Dir)),
                );
            } else if let Some(rest) = r.provider.strip_prefix(&prefix) {
                any = true;
                let next = rest.split('/').next().unwrap_or(rest);
                names.push(e(next, Kind::Dir));
            }
        }
        if dir == "/sys/devices" {
            any = true;
            names.push(e("system", Kind::Dir));
        }
        if !any {
            return None;
        }
        names.sort_by(|a, b| a.0.cmp(&b.0));
        names.dedup_by(|a, b| a.0 == b.0);
        Some(names)
    }

    /// What the canonical path is, without following a final link.
    pub fn kind(&self, path: &str) -> Option<Kind> {
        if path == "/" {
            return Some(Kind::Dir);
        }
        let (parent, name) = path.rsplit_once('/')?;
        // Memory blocks are looked up directly: the directory may hold 64k of them.
        if parent == "/sys/devices/system/memory"
            && let Some(id) = node_of_comp(name, "memory")
        {
            return self.blocks.contains_key(&id).then_some(Kind::Dir);
        }
        // The same for a node's links to its blocks.
        if let Some(n) = parent
            .strip_prefix("/sys/devices/system/node/")
            .and_then(|c| node_of_comp(c, "node"))
            && let Some(id) = node_of_comp(name, "memory")
        {
            let n = u32::try_from(n).ok()?;
            return self
                .blocks
                .get(&id)
                .filter(|b| b.node == n && self.node_online(n))
                .map(|_| Kind::Link(format!("../../memory/memory{id}")));
        }
        if let Some(comp) = parent.strip_prefix("/sys/devices/system/memory/") {
            if node_of_comp(comp, "memory").is_some_and(|id| self.blocks.contains_key(&id)) {
                return self
                    .entries(parent)?
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, k)| k);
            }
            return None;
        }
        let parent = if parent.is_empty() { "/" } else { parent };
        self.entries(parent)?
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, k)| k)
    }

    /// Resolves links in every component (the final one too when `follow_last`), giving a
    /// canonical path, or `ENOENT`.
    pub fn resolve(&self, path: &str, follow_last: bool) -> Result<String, Errno> {
        let rest = path.strip_prefix('/').ok_or(Errno::EINVAL)?;
        let comps: Vec<&str> = rest.split('/').filter(|c| !c.is_empty()).collect();
        let mut cur = String::new();
        for (i, comp) in comps.iter().enumerate() {
            if *comp == "." {
                continue;
            }
            if *comp == ".." {
                cur.truncate(cur.rfind('/').unwrap_or(0));
                continue;
            }
            let next = format!("{cur}/{comp}");
            let last = i + 1 == comps.len();
            match self.kind(&next) {
                None => return Err(Errno::ENOENT),
                Some(Kind::Link(target)) if !last || follow_last => {
                    let joined = format!("{cur}/{target}");
                    cur = self.resolve(&joined, true)?;
                }
                Some(_) => cur = next,
            }
        }
        Ok(if cur.is_empty() { "/".to_owned() } else { cur })
    }

    /// Reads a file.
    pub fn sysfs_read(&self, path: &str) -> Result<String, Errno> {
        let path = self.resolve(path, true)?;
        match self.kind(&path).ok_or(Errno::ENOENT)? {
            Kind::Dir => return Err(Errno::EISDIR),
            Kind::File { read: false, .. } => return Err(Errno::EACCES),
            _ => {}
        }
        self.render(&path).ok_or(Errno::ENOENT)
    }

    /// Lists a directory.
    pub fn sysfs_list(&self, path: &str) -> Result<Vec<String>, Errno> {
        let path = self.resolve(path, true)?;
        match self.entries(&path) {
            Some(v) => Ok(v.into_iter().map(|(n, _)| n).collect()),
            None if self.kind(&path).is_some() => Err(Errno::ENOTDIR),
            None => Err(Errno::ENOENT),
        }
    }

    /// Reads a link.
    pub fn sysfs_readlink(&self, path: &str) -> Result<String, Errno> {
        let path = self.resolve(path, false)?;
        match self.kind(&path) {
            Some(Kind::Link(target)) => Ok(target),
            Some(_) => Err(Errno::EINVAL),
            None => Err(Errno::ENOENT),
        }
    }

    /// Whether a path exists (a final link counts, dangling or not).
    pub fn sysfs_exists(&self, path: &str) -> bool {
        self.resolve(path, false).is_ok()
    }

    fn render(&self, path: &str) -> Option<String> {
        let line = |v: &dyn std::fmt::Display| Some(format!("{v}\n"));
        match path {
            "/proc/iomem" => return Some(self.iomem().to_string()),
            "/proc/meminfo" => {
                let kb = self.mem_total() / 1024;
                return Some(format!(
                    "MemTotal:       {kb:>8} kB\nMemFree:        {kb:>8} kB\nMemAvailable:   {kb:>8} kB\n"
                ));
            }
            "/sys/bus/dax/drivers_autoprobe" => return line(&1),
            "/sys/devices/system/memory/auto_online_blocks" => {
                return line(&self.auto_online_blocks);
            }
            "/sys/devices/system/memory/block_size_bytes" => {
                return Some(format!("{:x}\n", self.block_size));
            }
            "/sys/devices/system/memory/crash_hotplug" => return line(&0),
            "/sys/devices/system/memory/uevent" | "/sys/devices/system/node/uevent" => {
                return Some(String::new());
            }
            "/sys/devices/system/node/possible" => return line(&self.node_list(|_| true)),
            "/sys/devices/system/node/online" => {
                return line(&self.node_list(|n| self.node_online(n)));
            }
            "/sys/devices/system/node/has_memory" => {
                return line(&self.node_list(|n| self.node_has_memory(n, false)));
            }
            "/sys/devices/system/node/has_normal_memory" => {
                return line(&self.node_list(|n| self.node_has_memory(n, true)));
            }
            "/sys/devices/system/node/has_cpu" => {
                return line(
                    &self.node_list(|n| self.nodes.iter().any(|x| x.id == n && x.has_cpu)),
                );
            }
            "/sys/devices/system/node/has_generic_initiator" => return Some("\n".to_owned()),
            "/sys/module/memory_hotplug/parameters/memmap_on_memory" => {
                return line(&self.memmap_on_memory);
            }
            "/sys/module/memory_hotplug/parameters/online_policy" => {
                return line(&self.online_policy);
            }
            "/sys/module/memory_hotplug/parameters/auto_movable_ratio" => {
                return line(&self.auto_movable_ratio);
            }
            "/sys/module/memory_hotplug/parameters/auto_movable_numa_aware" => {
                return line(&if self.auto_movable_numa_aware {
                    "Y"
                } else {
                    "N"
                });
            }
            _ => {}
        }
        let (dir, name) = path.rsplit_once('/')?;
        if name == "uevent" {
            if let Some(d) = self.device_at(dir) {
                let mut s = format!("MAJOR={DAX_MAJOR}\nMINOR={}\nDEVNAME={}\n", d.minor, d.name);
                if let Some(drv) = d.driver {
                    let _ = writeln!(s, "DRIVER={}", drv.name());
                }
                s.push_str("MODALIAS=dax:t0\n");
                return Some(s);
            }
            return Some(String::new());
        }
        if let Some(comp) = dir.strip_prefix("/sys/devices/system/memory/") {
            let id = node_of_comp(comp, "memory")?;
            let b = self.blocks.get(&id)?;
            return match name {
                "state" => line(&b.state),
                "online" => line(&u8::from(b.state != BlockState::Offline)),
                "valid_zones" => line(&self.valid_zones(id)),
                "phys_index" => Some(format!("{id:08x}\n")),
                "phys_device" => line(&0),
                "removable" => line(&1),
                _ => None,
            };
        }
        if let Some(comp) = dir.strip_prefix("/sys/devices/system/node/") {
            let n = u32::try_from(node_of_comp(comp, "node")?).ok()?;
            if name == "meminfo" {
                let kb = self.node_mem_total(n) / 1024;
                return Some(format!(
                    "Node {n} MemTotal:       {kb:>8} kB\nNode {n} MemFree:        {kb:>8} kB\nNode {n} MemUsed:        {:>8} kB\n",
                    0
                ));
            }
            return None;
        }
        if let Some(r) = self.region_at(dir) {
            return match name {
                "align" => line(&r.align),
                "id" => line(&r.id),
                "size" => line(&r.size),
                "available_size" => line(&0),
                "seed" | "create" => Some("\n".to_owned()),
                _ => None,
            };
        }
        if let Some((d, i)) = self.mapping_at(dir) {
            let m = &d.ranges[i];
            return match name {
                "start" => Some(format!("{:#x}\n", m.range.start)),
                "end" => Some(format!("{:#x}\n", m.range.end)),
                "page_offset" => Some(format!("{:#x}\n", m.page_offset)),
                _ => None,
            };
        }
        let d = self.device_at(dir)?;
        match name {
            "align" => line(&d.align),
            "dev" => Some(format!("{DAX_MAJOR}:{}\n", d.minor)),
            "memmap_on_memory" => line(&u8::from(d.memmap_on_memory)),
            "modalias" => Some("dax:t0\n".to_owned()),
            "numa_node" => line(&d.numa_node.map_or(-1, i64::from)),
            "target_node" => line(&d.target_node.map_or(-1, i64::from)),
            "resource" => Some(format!(
                "{:#x}\n",
                d.ranges.first().map_or(0, |r| r.range.start)
            )),
            "size" => line(&d.ranges.iter().map(|r| r.range.len()).sum::<u64>()),
            "state" => match self.kmem_state(d)? {
                KmemState::Unplugged => Some("unplugged\n".to_owned()),
                KmemState::Plugged(t) => line(&t),
            },
            _ => None,
        }
    }

    /// Writes a file. Actors' writes that need the device-hotplug lock while the client
    /// holds it get [`crate::RESTART`] and retry later, as `lock_device_hotplug_sysfs()`
    /// makes a writer restart its system call.
    pub fn sysfs_write(&mut self, path: &str, value: &str, caller: Caller) -> Result<(), Errno> {
        let result = self.sysfs_write_inner(path, value, caller);
        if caller == Caller::Actor {
            match result {
                Err(e) if e == crate::RESTART => self.restarts += 1,
                Err(e) => self.actor_log.push(format!(
                    "clock {}: {} > {path}: {e}",
                    self.clock,
                    value.trim_end()
                )),
                Ok(()) => self.actor_log.push(format!(
                    "clock {}: {} > {path}: ok",
                    self.clock,
                    value.trim_end()
                )),
            }
        }
        result
    }

    fn sysfs_write_inner(&mut self, path: &str, value: &str, caller: Caller) -> Result<(), Errno> {
        let path = self.resolve(path, true)?;
        match self.kind(&path).ok_or(Errno::ENOENT)? {
            Kind::Dir => return Err(Errno::EISDIR),
            Kind::File { write: false, .. } => return Err(Errno::EACCES),
            _ => {}
        }
        let token = store_token(value);
        let (dir, name) = path.rsplit_once('/').ok_or(Errno::EINVAL)?;
        let needs_lock = dir.starts_with("/sys/devices/system/memory/memory")
            && (name == "state" || name == "online");
        if needs_lock && caller == Caller::Actor && self.lock.is_some() {
            return Err(crate::RESTART);
        }
        if needs_lock && caller == Caller::Client {
            // The write holds the device-hotplug lock for its whole duration, every
            // migration pass of an offline included.
            let held = self.lock.replace(crate::machine::Holder::Client);
            let result = self.write_object(dir, name, token, caller);
            self.lock = held;
            return result;
        }
        match (dir, name) {
            ("/sys/devices/system/memory", "auto_online_blocks") => {
                self.auto_online_blocks = token.parse().map_err(|_| Errno::EINVAL)?;
                Ok(())
            }
            ("/sys/module/memory_hotplug/parameters", "online_policy") => {
                self.online_policy = token.parse::<OnlinePolicy>().map_err(|_| Errno::EINVAL)?;
                Ok(())
            }
            ("/sys/module/memory_hotplug/parameters", "auto_movable_ratio") => {
                self.auto_movable_ratio = token.parse().map_err(|_| Errno::EINVAL)?;
                Ok(())
            }
            ("/sys/module/memory_hotplug/parameters", "auto_movable_numa_aware") => {
                self.auto_movable_numa_aware = parse_kstrtobool(token).ok_or(Errno::EINVAL)?;
                Ok(())
            }
            ("/sys/bus/dax", "drivers_probe") => self.drivers_probe(token),
            ("/sys/bus/dax", "drivers_autoprobe") => {
                parse_kstrtobool(token).map(|_| ()).ok_or(Errno::EINVAL)
            }
            (_, "uevent") => Ok(()),
            _ => self.write_object(dir, name, token, caller),
        }
    }

    fn write_object(
        &mut self,
        dir: &str,
        name: &str,
        token: &str,
        caller: Caller,
    ) -> Result<(), Errno> {
        if let Some(comp) = dir.strip_prefix("/sys/devices/system/memory/") {
            let id = node_of_comp(comp, "memory").ok_or(Errno::ENOENT)?;
            return match name {
                "state" => {
                    let t: OnlineType = token.parse().map_err(|_| Errno::EINVAL)?;
                    let already = match t {
                        OnlineType::Offline => self.offline_block(id, caller)?,
                        t => self.online_block(id, t)?,
                    };
                    if already { Err(Errno::EINVAL) } else { Ok(()) }
                }
                "online" => {
                    if parse_kstrtobool(token).ok_or(Errno::EINVAL)? {
                        self.online_block(id, OnlineType::Online).map(|_| ())
                    } else {
                        self.offline_block(id, caller).map(|_| ())
                    }
                }
                _ => Err(Errno::EACCES),
            };
        }
        if let Some(driver) = dir
            .strip_prefix("/sys/bus/dax/drivers/")
            .and_then(DriverKind::from_name)
        {
            return match name {
                "bind" => self.driver_bind(driver, token),
                "unbind" => self.driver_unbind(driver, token),
                "new_id" => self.driver_new_id(driver, token),
                "remove_id" => self.driver_remove_id(driver, token),
                _ => Err(Errno::EACCES),
            };
        }
        if let Some(d) = self.device_at(dir) {
            let dev = d.name.clone();
            return match name {
                "state" => self.dax_state_store(&dev, token),
                "memmap_on_memory" => self.memmap_store(&dev, token),
                // Creating, resizing and deleting devices is not modelled.
                _ => Err(Errno::EOPNOTSUPP),
            };
        }
        Err(Errno::EOPNOTSUPP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_links() {
        assert_eq!(
            relative(
                "/sys/devices/platform/hmem.0/dax0.0",
                "/sys/bus/dax/drivers/kmem"
            ),
            "../../../../bus/dax/drivers/kmem"
        );
        assert_eq!(
            relative(
                "/sys/bus/dax/devices",
                "/sys/devices/platform/hmem.0/dax0.0"
            ),
            "../../../devices/platform/hmem.0/dax0.0"
        );
    }

    #[test]
    fn kstrtobool() {
        assert_eq!(parse_kstrtobool("1"), Some(true));
        assert_eq!(parse_kstrtobool("off"), Some(false));
        assert_eq!(parse_kstrtobool("x"), None);
    }
}
