//! What the dax bus holds, read by listing it (no discovery): its devices, which of them are
//! bound and to which driver. The boot gate records it; binding a driver by `new_id` checks
//! which other devices it could take.

use daxplug_abi::DaxName;
use daxplug_kernel::{Kernel, KernelError, paths};

/// Every device on the dax bus, and those bound with their drivers.
#[allow(clippy::type_complexity)]
pub(crate) fn devices(
    k: &dyn Kernel,
) -> Result<(Vec<DaxName>, Vec<(DaxName, String)>), KernelError> {
    let (mut present, mut bound) = (Vec::new(), Vec::new());
    for entry in k.list_dir(paths::DAX_DEVICES)? {
        let Ok(name) = entry.parse::<DaxName>() else {
            continue;
        };
        present.push(name);
        if let Ok(target) = k.read_link(&format!("{}/driver", paths::dax_device(&entry))) {
            let driver = target.rsplit('/').next().unwrap_or_default().to_owned();
            bound.push((name, driver));
        }
    }
    present.sort();
    bound.sort();
    Ok((present, bound))
}

/// The devices other than `device`, with memory (not a region's zero-sized seed), that have
/// no driver: a driver's `new_id` attaches to every one of them it then matches.
pub(crate) fn unbound_others(k: &dyn Kernel, device: DaxName) -> Vec<DaxName> {
    let Ok((present, bound)) = devices(k) else {
        return Vec::new();
    };
    present
        .into_iter()
        .filter(|d| {
            *d != device
                && !bound.iter().any(|(b, _)| b == d)
                && k.read(&format!("{}/size", paths::dax_device(&d.to_string())))
                    .is_ok_and(|s| s.trim() != "0")
        })
        .collect()
}
