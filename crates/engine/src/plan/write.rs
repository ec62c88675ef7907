//! A write to a kernel file, as one value: what `--dry-run` shows (`echo VALUE > PATH`) and
//! what the runner writes are the same `Write`, built in one place for each kind of file.

use std::fmt;

use daxplug_abi::{
    BoolParam, BusAutoprobe, DaxDriver, DaxName, DaxState, OnlinePolicy, OnlineType,
};
use daxplug_kernel::paths;

use serde::{Deserialize, Serialize};

/// How a driver is attached to a device: which of its files takes the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindMethod {
    /// `drivers/<driver>/bind`: the driver matches the region's type.
    Bind,
    /// `drivers/<driver>/new_id`: the driver does not match by type.
    NewId,
}

/// One planned or performed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The kernel path.
    pub path: String,
    /// What is written.
    pub value: String,
}

/// The files of a dax driver that take a device name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverFile {
    /// `bind`: the driver matches the device by type.
    Bind,
    /// `unbind`.
    Unbind,
    /// `new_id`: adds the device to the driver's id list, which binds it.
    NewId,
    /// `remove_id`: takes a device off the driver's id list (a name not on it is a no-op).
    RemoveId,
}

impl DriverFile {
    fn as_str(self) -> &'static str {
        match self {
            DriverFile::Bind => "bind",
            DriverFile::Unbind => "unbind",
            DriverFile::NewId => "new_id",
            DriverFile::RemoveId => "remove_id",
        }
    }
}

impl From<BindMethod> for DriverFile {
    fn from(m: BindMethod) -> Self {
        match m {
            BindMethod::Bind => DriverFile::Bind,
            BindMethod::NewId => DriverFile::NewId,
        }
    }
}

impl Write {
    fn new(path: String, value: &impl ToString) -> Self {
        Write {
            path,
            value: value.to_string(),
        }
    }

    /// `daxX.Y/state` (the atomic ABI).
    pub fn dax_state(device: DaxName, state: DaxState) -> Self {
        Self::new(paths::dax_attr(&device.to_string(), "state"), &state)
    }

    /// `drivers/DRIVER/FILE` with the device's name.
    pub fn driver(driver: DaxDriver, file: DriverFile, device: DaxName) -> Self {
        Self::new(
            paths::dax_driver_file(driver.as_str(), file.as_str()),
            &device,
        )
    }

    /// `daxX.Y/size`.
    pub fn device_size(device: DaxName, size: u64) -> Self {
        Self::new(paths::dax_attr(&device.to_string(), "size"), &size)
    }

    /// `daxX.Y/align`.
    pub fn device_align(device: DaxName, align: u64) -> Self {
        Self::new(paths::dax_attr(&device.to_string(), "align"), &align)
    }

    /// `dax_region/delete` of the region holding the device whose canonical directory is
    /// `device_path`.
    pub fn region_delete(device_path: &str, device: DaxName) -> Self {
        Self::new(
            paths::region_attr(&paths::dax_region_of(device_path), "delete"),
            &device,
        )
    }

    /// `dax_region/create` (the value is always 1).
    pub fn region_create(region_path: &str) -> Self {
        Self::new(paths::region_attr(region_path, "create"), &1)
    }

    /// `memoryN/state`.
    pub fn block_state(id: u64, online_type: OnlineType) -> Self {
        Self::new(paths::block_state(id), &online_type)
    }

    /// The dax bus's `drivers_autoprobe`.
    pub fn drivers_autoprobe(value: BusAutoprobe) -> Self {
        Self::new(paths::DAX_DRIVERS_AUTOPROBE.to_owned(), &value)
    }

    /// `auto_online_blocks`.
    pub fn auto_online_blocks(online_type: OnlineType) -> Self {
        Self::new(paths::AUTO_ONLINE_BLOCKS.to_owned(), &online_type)
    }

    /// `memory_hotplug.online_policy` and `auto_movable_numa_aware`, in that order.
    pub fn online_policy((policy, numa_aware): (OnlinePolicy, BoolParam)) -> [Self; 2] {
        [
            Self::new(paths::ONLINE_POLICY.to_owned(), &policy),
            Self::new(paths::AUTO_MOVABLE_NUMA_AWARE.to_owned(), &numa_aware),
        ]
    }
}

impl fmt::Display for Write {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "echo {} > {}", self.value, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> DaxName {
        text.parse().expect("a dax name")
    }

    #[test]
    fn writes_render_as_the_shell_would_do_them() {
        assert_eq!(
            Write::dax_state(name("dax0.0"), DaxState::Unplugged).to_string(),
            "echo unplugged > /sys/bus/dax/devices/dax0.0/state"
        );
        assert_eq!(
            Write::driver(DaxDriver::Kmem, BindMethod::NewId.into(), name("dax1.0")).to_string(),
            "echo dax1.0 > /sys/bus/dax/drivers/kmem/new_id"
        );
        assert_eq!(
            Write::block_state(40, OnlineType::Offline).to_string(),
            "echo offline > /sys/devices/system/memory/memory40/state"
        );
        let [p, n] = Write::online_policy((OnlinePolicy::AutoMovable, BoolParam::N));
        assert_eq!(
            (p.to_string(), n.value),
            (
                "echo auto-movable > /sys/module/memory_hotplug/parameters/online_policy"
                    .to_owned(),
                "N".to_owned()
            )
        );
    }
}
