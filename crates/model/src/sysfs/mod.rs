//! The emulated `/sys` and `/proc`: paths resolve to the kernel object a directory stands
//! for ([`tree`]), whose attribute files are declared once ([`attrs`]); reads render the
//! machine's state and writes dispatch to the kernel behaviour they trigger.

mod attrs;
mod tree;

use daxplug_kernel::Errno;

use crate::kstr::store_token;
use crate::machine::Caller;
use crate::machine::Machine;

use attrs::{Access, Attribute};
use tree::Object;

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

/// Major number of the dax character devices.
pub const DAX_MAJOR: u32 = 252;

/// Splits a canonical path into its directory ("/" for the root's children) and name.
fn split(path: &str) -> Option<(&str, &str)> {
    let (dir, name) = path.rsplit_once('/')?;
    Some((if dir.is_empty() { "/" } else { dir }, name))
}

impl Machine {
    /// The attribute `name` of `obj`, with what it allows there, if `obj` has it.
    fn attribute(&self, obj: Object, name: &str) -> Option<(&'static Attribute, Access)> {
        let attr = attrs::table(obj).iter().find(|a| a.name == name)?;
        Some((attr, attr.access(self, obj)?))
    }

    /// The entries of a canonical directory, sorted, or `None` if it is not one.
    pub fn entries(&self, dir: &str) -> Option<Vec<(String, Kind)>> {
        let obj = self.object_at(dir)?;
        let mut out = self.children(obj, dir);
        out.extend(attrs::table(obj).iter().filter_map(|a| {
            let access = a.access(self, obj)?;
            let kind = Kind::File {
                read: access.read,
                write: access.write,
            };
            Some((a.name.to_owned(), kind))
        }));
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Some(out)
    }

    /// What the canonical path is, without following a final link.
    pub fn kind(&self, path: &str) -> Option<Kind> {
        if path == "/" {
            return Some(Kind::Dir);
        }
        let (dir, name) = split(path)?;
        let obj = self.object_at(dir)?;
        if let Some((_, access)) = self.attribute(obj, name) {
            return Some(Kind::File {
                read: access.read,
                write: access.write,
            });
        }
        self.child(obj, dir, name)
    }

    /// Whether `path` (canonical) exists for the machine's whole life, so that a cache
    /// may keep it: fixed directories and the attributes always there in them. Memory
    /// blocks, nodes, devices, drivers, links and attributes that appear with a driver
    /// can come and go.
    pub fn lasting(&self, path: &str) -> bool {
        if path == "/" {
            return true;
        }
        let Some((dir, name)) = split(path) else {
            return false;
        };
        let Some(obj) = self.object_at(dir) else {
            return false;
        };
        if !obj.lasting() || !self.lasting(dir) {
            return false;
        }
        match attrs::table(obj).iter().find(|a| a.name == name) {
            Some(attr) => attr.always_there(),
            None => self.object_at(path).is_some_and(Object::lasting),
        }
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

    /// The attribute a path names, after following links: `EISDIR` for a directory,
    /// `ENOENT` for nothing.
    fn attribute_at(&self, path: &str) -> Result<(Object, &'static Attribute, Access), Errno> {
        let path = self.resolve(path, true)?;
        let (dir, name) = split(&path).ok_or(Errno::EINVAL)?;
        let obj = self.object_at(dir).ok_or(Errno::ENOENT)?;
        match self.attribute(obj, name) {
            Some((attr, access)) => Ok((obj, attr, access)),
            None if self.child(obj, dir, name).is_some() => Err(Errno::EISDIR),
            None => Err(Errno::ENOENT),
        }
    }

    /// Reads a file.
    pub fn sysfs_read(&self, path: &str) -> Result<String, Errno> {
        let (obj, attr, access) = self.attribute_at(path)?;
        if !access.read {
            return Err(Errno::EACCES);
        }
        attr.show(self, obj).ok_or(Errno::ENOENT)
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

    /// Writes a file. Actors' writes that need the device-hotplug lock while the client
    /// holds it get [`crate::machine::RESTART`] and retry later, as `lock_device_hotplug_sysfs()`
    /// makes a writer restart its system call.
    pub fn sysfs_write(&mut self, path: &str, value: &str, caller: Caller) -> Result<(), Errno> {
        let result = self.sysfs_write_inner(path, value, caller);
        if caller == Caller::Actor {
            match result {
                Err(e) if e == crate::machine::RESTART => self.restarts += 1,
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
        let (obj, attr, access) = self.attribute_at(path)?;
        if !access.write {
            return Err(Errno::EACCES);
        }
        let token = store_token(value);
        if !attr.hotplug_lock {
            return attr.store(self, obj, token, caller);
        }
        match caller {
            Caller::Actor if self.lock.is_some() => Err(crate::machine::RESTART),
            Caller::Actor => attr.store(self, obj, token, caller),
            Caller::Client => {
                let held = self.lock.replace(crate::machine::Holder::Client);
                let result = attr.store(self, obj, token, caller);
                self.lock = held;
                result
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tree::relative;
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

    /// Every listed entry is what `kind` says it is, every readable file reads and every
    /// write-only one refuses a read, on every preset in both flavours.
    #[test]
    fn listing_lookup_and_read_agree() {
        for preset in crate::PRESETS {
            for flavour in [crate::Flavour::Legacy, crate::Flavour::Atomic] {
                let mut m = crate::build_preset(preset.name, flavour, 1).expect("preset");
                m.kmem_loaded = true;
                let mut dirs = vec!["/".to_owned()];
                let mut files = 0;
                while let Some(dir) = dirs.pop() {
                    let base = dir.trim_end_matches('/');
                    for (name, kind) in m.entries(&dir).expect(&dir) {
                        let path = format!("{base}/{name}");
                        assert_eq!(
                            m.kind(&path).as_ref(),
                            Some(&kind),
                            "{} {path}",
                            preset.name
                        );
                        match kind {
                            Kind::Dir => dirs.push(path),
                            Kind::File { read: true, .. } => {
                                files += 1;
                                assert!(m.sysfs_read(&path).is_ok(), "{path}");
                            }
                            Kind::File { read: false, .. } => {
                                assert_eq!(m.sysfs_read(&path), Err(Errno::EACCES), "{path}");
                            }
                            Kind::Link(_) => assert!(m.sysfs_exists(&path), "{path}"),
                        }
                    }
                }
                assert!(files > 20, "{}: only {files} readable files", preset.name);
            }
        }
    }
}
