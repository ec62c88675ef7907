//! What the dax bus holds, read by listing it (no discovery): its devices, which of them are
//! bound and to which driver. The boot gate records it; binding a driver by `new_id` checks
//! which other devices it could take.

use daxplug_abi::DaxName;
use daxplug_kernel::{Kernel, KernelError, paths};

/// Every device on the dax bus, in order, with the driver bound to it.
pub(crate) fn devices(k: &dyn Kernel) -> Result<Vec<(DaxName, Option<String>)>, KernelError> {
    let mut out: Vec<(DaxName, Option<String>)> = k
        .list_dir(paths::DAX_DEVICES)?
        .into_iter()
        .filter_map(|entry| {
            let name = entry.parse::<DaxName>().ok()?;
            let driver = k
                .read_link(&paths::dax_attr(&entry, "driver"))
                .ok()
                .map(|t| t.rsplit('/').next().unwrap_or_default().to_owned());
            Some((name, driver))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The devices other than `device`, with memory (not a region's zero-sized seed), that have
/// no driver: a driver's `new_id` attaches to every one of them it then matches.
pub(crate) fn unbound_others(k: &dyn Kernel, device: DaxName) -> Vec<DaxName> {
    let Ok(devices) = devices(k) else {
        return Vec::new();
    };
    devices
        .into_iter()
        .filter(|(d, driver)| {
            *d != device
                && driver.is_none()
                && k.read(&paths::dax_attr(&d.to_string(), "size"))
                    .is_ok_and(|s| s.trim() != "0")
        })
        .map(|(d, _)| d)
        .collect()
}
