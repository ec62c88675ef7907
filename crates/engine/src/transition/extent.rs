//! The steps that change a device's extent: its alignment and size (journaled, undone by
//! writing back what was there) and its removal from the region.

use daxplug_kernel::paths;

use crate::plan::write::Write;

use super::{Fail, Run, Undo};

impl Run<'_> {
    /// Writes the (unbound) device's size or alignment; the first change of the run
    /// records the extent before it, in the journal and on the undo stack.
    pub(super) fn set_extent(&mut self, size: Option<u64>, align: Option<u64>) -> Result<(), Fail> {
        let (_, d) = self.device()?;
        if self.journal.extent_before.is_none() {
            self.journal.extent_before = Some((d.size, d.align));
            self.undo.push(Undo::Extent(d.size, d.align));
        }
        let dev = self.journal.device;
        if let Some(a) = align {
            self.record("writing align");
            self.apply(&Write::device_align(dev, a))?;
        }
        if let Some(s) = size {
            self.record("writing size");
            self.apply(&Write::device_size(dev, s))?;
            let (_, d) = self.device()?;
            if d.size != s {
                return Err(Fail::Verify(format!(
                    "{dev} is {} bytes after writing {s} to its size",
                    d.size
                )));
            }
        }
        Ok(())
    }

    /// Undo: the size first (shrinking frees what the alignment must cover), then the
    /// alignment.
    pub(super) fn restore_extent(&mut self, size: u64, align: Option<u64>) -> Result<(), Fail> {
        let dev = self.journal.device;
        let (_, d) = self.device()?;
        if d.size != size {
            self.apply_uncancellable(&Write::device_size(dev, size))?;
        }
        if let Some(a) = align.filter(|a| Some(*a) != d.align) {
            self.apply_uncancellable(&Write::device_align(dev, a))?;
        }
        self.journal.extent_before = None;
        Ok(())
    }

    /// Removes the (unbound, zero-sized) device from its region: past this point there is
    /// nothing to roll back to.
    pub(super) fn delete(&mut self) -> Result<(), Fail> {
        let (_, d) = self.device()?;
        let dev = self.journal.device;
        self.record("deleting the device");
        self.apply(&Write::region_delete(&d.path, dev))?;
        self.journal.extent_before = None;
        if self.k.exists(&paths::dax_device(&dev.to_string())) {
            return Err(Fail::Verify(format!(
                "{dev} is still on the bus after its deletion"
            )));
        }
        Ok(())
    }
}
