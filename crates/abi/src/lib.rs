//! Pure types, parsers and formatters for every value daxplug reads from or writes to
//! the kernel's memory-hotplug and dax interfaces.
//!
//! Nothing here performs I/O: each parser takes the text of one file and returns a typed
//! value or a [`ParseError`] that quotes the text and says what was expected. The caller
//! (the kernel-interface layer) attaches the path. This mirrors the `procfs-core` split
//! between parsing and reading.
//!
//! Every type that is written back to the kernel implements `Display` with exactly the
//! token the kernel accepts, and `FromStr` with exactly the tokens the kernel prints;
//! a trailing newline (as sysfs emits) is accepted everywhere.

mod block;
mod dax;
mod error;
mod hotplug;
mod iomem;
mod meminfo;
mod nodelist;
mod number;
mod range;
mod tiering;
#[doc(hidden)]
pub mod tokens;
mod uevent;
mod zoneinfo;

pub use block::{
    BlockState, OnlineType, ValidZones, Zone, parse_block_size, parse_online, parse_phys_index,
};
pub use dax::{
    BusAutoprobe, DaxDriver, DaxName, DaxState, parse_align, parse_dax_size,
    parse_memmap_on_memory, parse_node_id, parse_phys_addr, parse_region_id,
};
pub use error::ParseError;
pub use hotplug::{
    BoolParam, MemmapOnMemory, OnlinePolicy, parse_auto_movable_ratio, parse_param_bool,
};
pub use iomem::{Iomem, IomemEntry, KMEM_RESOURCE_NAME};
pub use meminfo::Meminfo;
pub use nodelist::NodeList;
pub use number::{format_block_size, format_phys_index};
pub use range::{BlockSize, PhysRange};
pub use tiering::{
    ADISTANCE_DAX_DEFAULT, ADISTANCE_DRAM, InterleaveWeight, MEMTIER_CHUNK_BITS, MemoryTier,
    parse_interleave_node_file, parse_true_false, tier_of_adistance,
};
pub use uevent::Uevent;
pub use zoneinfo::{ZonePages, Zoneinfo};
