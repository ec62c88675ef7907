//! The dax bus and its drivers: matching by type or `new_id`, `bind`/`unbind`, kmem's probe
//! and remove (legacy 6.12 and v7), device_dax, and the v7 `state` attribute.

use daxplug_abi::{OnlineType, PhysRange};
use daxplug_kernel::Errno;

use crate::kstr::store_token;
use crate::machine::Subsystem;
use crate::machine::{DaxDriver, Flavour, KmemData, KmemState, LeakedRange, Machine, RegionType};

impl Machine {
    /// Every `daxX.Y` reservation currently in `/proc/iomem`: (owner, range, has a
    /// `System RAM (kmem)` child).
    pub fn dax_resources(&self) -> Vec<(String, PhysRange, bool)> {
        let mut out = Vec::new();
        for d in &self.devices {
            for r in &d.devdax_res {
                out.push((d.name.clone(), *r, false));
            }
            if let Some(k) = &d.kmem {
                for (r, added) in k.res.iter().zip(&k.added) {
                    if let Some(r) = r {
                        out.push((d.name.clone(), *r, *added));
                    }
                }
            }
            for l in &d.leaked {
                out.push((d.name.clone(), l.range, true));
            }
        }
        for (name, r) in &self.orphans {
            out.push((name.clone(), *r, true));
        }
        out
    }

    /// `request_mem_region()`: fails if the range overlaps another reservation.
    fn region_free(&self, range: PhysRange) -> bool {
        !self
            .dax_resources()
            .iter()
            .any(|(_, r, _)| r.overlaps(&range))
    }

    /// Whether `driver` matches device `name`: through its `new_id` list, or by region type.
    pub fn driver_matches(&self, driver: DaxDriver, name: &str) -> bool {
        if self
            .new_ids
            .get(&driver)
            .is_some_and(|ids| ids.contains(name))
        {
            return true;
        }
        let Some(d) = self.device(name) else {
            return false;
        };
        let kind = self.region(d.region).map(|r| r.kind);
        matches!(
            (driver, kind),
            (DaxDriver::Kmem, Some(RegionType::Kmem))
                | (DaxDriver::DeviceDax, Some(RegionType::Devdax))
        )
    }

    pub(crate) fn device_devpath(&self, name: &str) -> String {
        self.device(name)
            .map(|d| self.device_dir(d))
            .unwrap_or_default()
            .trim_start_matches("/sys")
            .to_owned()
    }

    /// Probes `driver` on an unbound device (`dax_bus_probe()`: a device of size 0 has
    /// nothing to drive; a dynamic region's seed stops being the seed once probed).
    fn probe(&mut self, driver: DaxDriver, name: &str) -> Result<(), Errno> {
        if self.device(name).is_none_or(|d| d.ranges.is_empty()) {
            return Err(Errno::ENXIO);
        }
        match driver {
            DaxDriver::Kmem => self.kmem_probe(name)?,
            // fsdev_dax reserves the ranges and maps them as device_dax does.
            DaxDriver::DeviceDax | DaxDriver::FsdevDax => self.devdax_probe(name)?,
        }
        if let Some(d) = self.device_mut(name) {
            d.driver = Some(driver);
        }
        let region = self.device(name).map(|d| d.region);
        if let Some(r) = self.regions.iter_mut().find(|r| Some(r.id) == region)
            && r.seed.as_deref() == Some(name)
        {
            r.seed = None;
        }
        let devpath = self.device_devpath(name);
        self.emit(
            "bind",
            &devpath,
            Subsystem::Dax,
            vec![("DRIVER".to_owned(), driver.as_str().to_owned())],
        );
        Ok(())
    }

    /// Runs the bound driver's remove and detaches it; unbinding cannot fail.
    fn detach(&mut self, name: &str) {
        let Some(driver) = self.device(name).and_then(|d| d.driver) else {
            return;
        };
        match driver {
            DaxDriver::Kmem => self.kmem_remove(name),
            DaxDriver::DeviceDax | DaxDriver::FsdevDax => {
                if let Some(d) = self.device_mut(name) {
                    d.devdax_res.clear();
                }
            }
        }
        if let Some(d) = self.device_mut(name) {
            d.driver = None;
        }
        let devpath = self.device_devpath(name);
        self.emit(
            "unbind",
            &devpath,
            Subsystem::Dax,
            vec![("DRIVER".to_owned(), driver.as_str().to_owned())],
        );
    }

    /// `/sys/bus/dax/drivers/<driver>/bind`.
    pub fn driver_bind(&mut self, driver: DaxDriver, name: &str) -> Result<(), Errno> {
        if self.device(name).is_none() || !self.driver_matches(driver, name) {
            return Err(Errno::ENODEV);
        }
        if self.device(name).is_some_and(|d| d.driver.is_some()) {
            return Err(Errno::EBUSY);
        }
        self.probe(driver, name)
    }

    /// `/sys/bus/dax/drivers/<driver>/unbind`.
    pub fn driver_unbind(&mut self, driver: DaxDriver, name: &str) -> Result<(), Errno> {
        if self.device(name).and_then(|d| d.driver) != Some(driver) {
            return Err(Errno::ENODEV);
        }
        self.detach(name);
        Ok(())
    }

    /// `/sys/bus/dax/drivers/<driver>/new_id`: adds the name to the id list, then attaches
    /// the driver to every unbound device it now matches. Probe failures are not reported
    /// to the writer (`driver_attach()` ignores them).
    pub fn driver_new_id(&mut self, driver: DaxDriver, name: &str) -> Result<(), Errno> {
        if name.parse::<daxplug_abi::DaxName>().is_err() {
            return Err(Errno::EINVAL);
        }
        self.new_ids
            .entry(driver)
            .or_default()
            .insert(name.to_owned());
        self.driver_attach(driver);
        Ok(())
    }

    /// `/sys/bus/dax/drivers/<driver>/remove_id`.
    pub fn driver_remove_id(&mut self, driver: DaxDriver, name: &str) -> Result<(), Errno> {
        if name.parse::<daxplug_abi::DaxName>().is_err() {
            return Err(Errno::EINVAL);
        }
        if let Some(ids) = self.new_ids.get_mut(&driver) {
            ids.remove(name);
        }
        Ok(())
    }

    /// `driver_attach()`: probes `driver` on every unbound device it matches.
    pub fn driver_attach(&mut self, driver: DaxDriver) {
        if !self.driver_loaded(driver) {
            return;
        }
        let names: Vec<String> = self
            .devices
            .iter()
            .filter(|d| d.driver.is_none())
            .map(|d| d.name.clone())
            .collect();
        for name in names {
            if self.driver_matches(driver, &name) {
                let _ = self.probe(driver, &name);
            }
        }
    }

    /// `/sys/bus/dax/drivers_probe`: attaches the first matching driver to the device.
    pub fn drivers_probe(&mut self, name: &str) -> Result<(), Errno> {
        if self.device(name).is_none() {
            return Err(Errno::ENODEV);
        }
        if self.device(name).is_some_and(|d| d.driver.is_some()) {
            return Ok(());
        }
        for &driver in DaxDriver::ALL {
            if self.driver_loaded(driver) && self.driver_matches(driver, name) {
                return self.probe(driver, name);
            }
        }
        Ok(())
    }

    /// `modprobe kmem`: the driver appears and, while the bus's `drivers_autoprobe` is on
    /// (`bus_add_driver()`), binds every unbound device it matches.
    pub fn load_kmem(&mut self) {
        if !self.kmem_loaded {
            self.kmem_loaded = true;
            if self.drivers_autoprobe {
                self.driver_attach(DaxDriver::Kmem);
            }
        }
    }

    /// `modprobe fsdev_dax`: the driver appears; it matches no device by type.
    pub fn load_fsdev(&mut self) {
        if !self.fsdev_loaded {
            self.fsdev_loaded = true;
            if self.drivers_autoprobe {
                self.driver_attach(DaxDriver::FsdevDax);
            }
        }
    }

    /// Loads a module by name: `kmem` or `fsdev_dax` (the others the model has built in).
    pub fn load_module(&mut self, module: &str) -> Result<(), Errno> {
        match module {
            "kmem" => self.load_kmem(),
            "fsdev_dax" => self.load_fsdev(),
            "device_dax" | "dax" | "dax_hmem" | "dax_pmem" | "dax_cxl" => {}
            _ => return Err(Errno::ENOENT),
        }
        Ok(())
    }

    /// A device removed under us (its region torn down): the driver is detached, as
    /// unbind would, and the device leaves the bus. What kmem leaks stays leaked.
    pub fn remove_device(&mut self, name: &str) {
        if self.device(name).is_none() {
            return;
        }
        self.detach(name);
        let devpath = self.device_devpath(name);
        self.emit("remove", &devpath, Subsystem::Dax, Vec::new());
        // Leaked ranges keep their blocks; the device's name stays on them in iomem, which
        // the kernel keeps as a resource with no device behind it.
        let leaked: Vec<LeakedRange> = self
            .device(name)
            .map(|d| d.leaked.clone())
            .unwrap_or_default();
        if leaked.is_empty() {
            self.devices.retain(|d| d.name != name);
        } else {
            self.log(format!(
                "{name}: removed with leaked ranges still in the system"
            ));
            self.devices.retain(|d| d.name != name);
            self.orphans
                .extend(leaked.into_iter().map(|l| (name.to_owned(), l.range)));
        }
    }

    fn devdax_probe(&mut self, name: &str) -> Result<(), Errno> {
        let ranges: Vec<PhysRange> = self
            .device(name)
            .map(|d| d.ranges.iter().map(|r| r.range).collect())
            .unwrap_or_default();
        for (i, r) in ranges.iter().enumerate() {
            if !self.region_free(*r) {
                self.log(format!(
                    "device_dax {name}: mapping{i}: {:#x}-{:#x} could not reserve range",
                    r.start, r.end
                ));
                self.log(format!(
                    "device_dax {name}: probe with driver device_dax failed with error -16"
                ));
                return Err(Errno::EBUSY);
            }
        }
        if let Some(d) = self.device_mut(name) {
            d.devdax_res = ranges;
        }
        Ok(())
    }

    /// kmem's probe. Both flavours reserve each block-aligned range and add its memory with
    /// the online type in force; the first range failing fails the probe, later failures
    /// only skip that range. v7 also records the online type as the device's state.
    fn kmem_probe(&mut self, name: &str) -> Result<(), Errno> {
        let Some(d) = self.device(name) else {
            return Err(Errno::ENODEV);
        };
        let Some(node) = d.target_node else {
            self.log(format!(
                "kmem {name}: rejecting DAX region with invalid node"
            ));
            return Err(Errno::EINVAL);
        };
        let bs = daxplug_abi::BlockSize::new(self.block_size).ok_or(Errno::EINVAL)?;
        let aligned: Vec<Option<PhysRange>> =
            d.ranges.iter().map(|r| r.range.block_aligned(bs)).collect();
        if aligned.iter().all(Option::is_none) {
            self.log(format!(
                "kmem {name}: rejecting DAX region without any memory after alignment"
            ));
            return Err(Errno::EINVAL);
        }
        let n = aligned.len();
        let online_type = self.auto_online_blocks;
        let mut data = KmemData {
            state: KmemState::Unplugged,
            res: vec![None; n],
            added: vec![false; n],
        };
        self.kmem_hotplug(name, node, &aligned, &mut data, online_type)?;
        data.state = KmemState::Plugged(online_type);
        if let Some(d) = self.device_mut(name) {
            d.kmem = Some(data);
        }
        Ok(())
    }

    /// Reserves and adds the ranges (`dax_kmem_init_resources()` + `dax_kmem_do_hotplug()`
    /// in v7; the single loop of 6.12 behaves the same from outside).
    fn kmem_hotplug(
        &mut self,
        name: &str,
        node: u32,
        aligned: &[Option<PhysRange>],
        data: &mut KmemData,
        online_type: OnlineType,
    ) -> Result<(), Errno> {
        let mut mapped = 0;
        for (i, r) in aligned.iter().enumerate() {
            let Some(r) = *r else {
                continue;
            };
            if !self.region_free(r) {
                self.log(format!(
                    "kmem {name}: mapping{i}: {:#x}-{:#x} could not reserve region",
                    r.start, r.end
                ));
                if mapped > 0 {
                    continue;
                }
                self.log(format!(
                    "kmem {name}: probe with driver kmem failed with error -16"
                ));
                data.res.iter_mut().for_each(|x| *x = None);
                return Err(Errno::EBUSY);
            }
            data.res[i] = Some(r);
            // The legacy add reads auto_online_blocks itself, at each range.
            let this_type = if self.flavour == Flavour::Legacy {
                self.auto_online_blocks
            } else {
                online_type
            };
            match self.add_memory(name, r, node, this_type) {
                Ok(()) => {
                    data.added[i] = true;
                    mapped += 1;
                }
                Err(e) => {
                    self.log(format!(
                        "kmem {name}: mapping{i}: {:#x}-{:#x} memory add failed",
                        r.start, r.end
                    ));
                    data.res[i] = None;
                    if mapped == 0 {
                        data.res.iter_mut().for_each(|x| *x = None);
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// kmem's remove on unbind. It never offlines: each added range is removed with
    /// `remove_memory()`, which fails with `EBUSY` if a block is online; such a range
    /// leaks (reservation, `System RAM (kmem)` and blocks stay until reboot).
    fn kmem_remove(&mut self, name: &str) {
        let Some(data) = self.device_mut(name).and_then(|d| d.kmem.take()) else {
            return;
        };
        let mut leaked = Vec::new();
        for (i, (r, added)) in data.res.iter().zip(&data.added).enumerate() {
            let Some(r) = *r else {
                continue;
            };
            if *added && self.remove_memory(r).is_err() {
                let msg = match self.flavour {
                    Flavour::Legacy => "cannot be hotremoved until the next reboot",
                    Flavour::Atomic => "stuck online until reboot",
                };
                self.log(format!(
                    "kmem {name}: mapping{i}: {:#x}-{:#x} {msg}",
                    r.start, r.end
                ));
                leaked.push(LeakedRange { range: r });
            }
        }
        if !leaked.is_empty() && self.flavour == Flavour::Atomic {
            self.log(format!(
                "kmem {name}: Hotplug regions stuck online until reboot"
            ));
        }
        if let Some(d) = self.device_mut(name) {
            d.leaked.extend(leaked);
        }
    }

    /// The v7 `daxX.Y/state` store.
    pub fn dax_state_store(&mut self, name: &str, value: &str) -> Result<(), Errno> {
        let token = store_token(value);
        let requested = if token == "unplugged" {
            KmemState::Unplugged
        } else {
            match token.parse::<OnlineType>() {
                Ok(OnlineType::Offline) | Err(_) => return Err(Errno::EINVAL),
                Ok(t) => KmemState::Plugged(t),
            }
        };
        let Some(data) = self.device(name).and_then(|d| d.kmem.clone()) else {
            return Err(Errno::ENOENT);
        };
        if requested == data.state {
            return Ok(());
        }
        match requested {
            KmemState::Unplugged => self.kmem_hotremove(name, data),
            KmemState::Plugged(_) if data.state != KmemState::Unplugged => Err(Errno::EBUSY),
            KmemState::Plugged(t) => {
                let d = self.device(name).ok_or(Errno::ENODEV)?;
                let node = d.target_node.ok_or(Errno::EINVAL)?;
                let bs = daxplug_abi::BlockSize::new(self.block_size).ok_or(Errno::EINVAL)?;
                let aligned: Vec<Option<PhysRange>> =
                    d.ranges.iter().map(|r| r.range.block_aligned(bs)).collect();
                let mut fresh = KmemData {
                    state: KmemState::Unplugged,
                    res: vec![None; aligned.len()],
                    added: vec![false; aligned.len()],
                };
                let result = self.kmem_hotplug(name, node, &aligned, &mut fresh, t);
                if result.is_ok() {
                    fresh.state = KmemState::Plugged(t);
                }
                if let Some(d) = self.device_mut(name) {
                    d.kmem = Some(fresh);
                }
                result
            }
        }
    }

    /// `dax_kmem_do_hotremove()`: all ranges offlined and removed under one lock, or none.
    fn kmem_hotremove(&mut self, name: &str, mut data: KmemData) -> Result<(), Errno> {
        let ranges: Vec<PhysRange> = data
            .res
            .iter()
            .zip(&data.added)
            .filter_map(|(r, added)| r.filter(|_| *added))
            .collect();
        if !ranges.is_empty()
            && let Err(e) = self.offline_and_remove_ranges(&ranges)
        {
            self.log(format!(
                "kmem {name}: hotremove failed, device left online: -{}",
                e.raw()
            ));
            return Err(e);
        }
        data.res.iter_mut().for_each(|r| *r = None);
        data.added.iter_mut().for_each(|a| *a = false);
        data.state = KmemState::Unplugged;
        if let Some(d) = self.device_mut(name) {
            // The device may have been removed under us during the unplug.
            if d.kmem.is_some() {
                d.kmem = Some(data);
            }
        }
        Ok(())
    }

    /// `daxX.Y/memmap_on_memory` store.
    pub fn memmap_store(&mut self, name: &str, value: &str) -> Result<(), Errno> {
        let on = crate::kstr::kstrtobool(store_token(value)).ok_or(Errno::EINVAL)?;
        if on && self.memmap_on_memory == daxplug_abi::MemmapOnMemory::Disabled {
            return Err(Errno::EOPNOTSUPP);
        }
        let d = self.device_mut(name).ok_or(Errno::ENODEV)?;
        if d.driver == Some(DaxDriver::Kmem) {
            return Err(Errno::EBUSY);
        }
        d.memmap_on_memory = on;
        Ok(())
    }
}
