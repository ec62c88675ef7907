//! Deciding a device's observed state: what its blocks and `/proc/iomem` say, not what the
//! kernel's `daxX.Y/state` file remembers. The state types live in `topology`, with the
//! rest of what discovery builds.

use daxplug_abi::BlockState;

use crate::discovery::topology::{Block, Driver};
pub use crate::discovery::topology::{BlockCounts, ObservedState};

impl BlockCounts {
    /// Counts `blocks`; `span` is the number of blocks the ranges cover.
    pub fn of(blocks: &[Block], span: u64) -> Self {
        let mut c = BlockCounts {
            span,
            ..BlockCounts::default()
        };
        for b in blocks {
            c.total += 1;
            match b.state {
                BlockState::Online => {
                    c.online += 1;
                    if b.zone().is_some_and(|z| z.is_movable()) {
                        c.movable += 1;
                    } else {
                        c.normal += 1;
                    }
                }
                BlockState::Offline => c.offline += 1,
                BlockState::GoingOffline => c.going_offline += 1,
            }
        }
        c
    }
}

/// Computes the observed state from the driver, the block counts and whether
/// `/proc/iomem` still holds a `System RAM (kmem)` range of the device.
pub fn observe(driver: &Driver, counts: &BlockCounts, kmem_in_iomem: bool) -> ObservedState {
    if *driver != Driver::Kmem {
        if counts.total > 0 || kmem_in_iomem {
            return ObservedState::Stuck;
        }
        // Never "not kmem, so devdax": each driver is its own state.
        return match driver {
            Driver::None => ObservedState::Unbound,
            Driver::DeviceDax => ObservedState::Devdax,
            Driver::FsdevDax => ObservedState::Famfs,
            Driver::Kmem | Driver::Other(_) => ObservedState::OtherDriver,
        };
    }
    if counts.total == 0 {
        return ObservedState::Unplugged;
    }
    if counts.total < counts.span || counts.going_offline > 0 {
        return ObservedState::Mixed;
    }
    match (counts.online, counts.movable, counts.normal) {
        (0, _, _) => ObservedState::Offline,
        (n, m, 0) if n == counts.total && m == n => ObservedState::OnlineMovable,
        (n, 0, k) if n == counts.total && k == n => ObservedState::OnlineKernel,
        _ => ObservedState::Mixed,
    }
}

#[cfg(test)]
mod tests {
    use daxplug_abi::{DaxState, PhysRange, ValidZones, Zone};
    use proptest::prelude::*;

    use super::*;

    fn block(id: u64, state: BlockState, zone: Option<Zone>) -> Block {
        Block {
            id,
            range: PhysRange::new(id << 27, ((id + 1) << 27) - 1).expect("valid"),
            state,
            valid_zones: Some(ValidZones::new(zone.into_iter().collect())),
            node: Some(1),
        }
    }

    fn state_of(driver: &Driver, blocks: &[Block], span: u64, iomem: bool) -> ObservedState {
        observe(driver, &BlockCounts::of(blocks, span), iomem)
    }

    #[test]
    fn uniform_devices() {
        let movable: Vec<_> = (40..48)
            .map(|i| block(i, BlockState::Online, Some(Zone::Movable)))
            .collect();
        let normal: Vec<_> = (40..48)
            .map(|i| block(i, BlockState::Online, Some(Zone::Normal)))
            .collect();
        let offline: Vec<_> = (40..48)
            .map(|i| block(i, BlockState::Offline, None))
            .collect();
        assert_eq!(
            state_of(&Driver::Kmem, &movable, 8, true),
            ObservedState::OnlineMovable
        );
        assert_eq!(
            state_of(&Driver::Kmem, &normal, 8, true),
            ObservedState::OnlineKernel
        );
        assert_eq!(
            state_of(&Driver::Kmem, &offline, 8, true),
            ObservedState::Offline
        );
        assert_eq!(
            state_of(&Driver::Kmem, &[], 8, false),
            ObservedState::Unplugged
        );
        assert_eq!(
            state_of(&Driver::None, &[], 8, false),
            ObservedState::Unbound
        );
        assert_eq!(
            state_of(&Driver::DeviceDax, &[], 8, false),
            ObservedState::Devdax
        );
    }

    #[test]
    fn torn_and_leaked_devices() {
        let mut blocks: Vec<_> = (40..48)
            .map(|i| block(i, BlockState::Online, Some(Zone::Movable)))
            .collect();
        blocks[0] = block(40, BlockState::Online, Some(Zone::Normal));
        assert_eq!(
            state_of(&Driver::Kmem, &blocks, 8, true),
            ObservedState::Mixed
        );
        blocks[0] = block(40, BlockState::Offline, None);
        assert_eq!(
            state_of(&Driver::Kmem, &blocks, 8, true),
            ObservedState::Mixed
        );
        // A block missing from a device whose other blocks exist: a partial add.
        assert_eq!(
            state_of(&Driver::Kmem, &blocks[1..], 8, true),
            ObservedState::Mixed
        );
        blocks[0] = block(40, BlockState::GoingOffline, None);
        assert_eq!(
            state_of(&Driver::Kmem, &blocks, 8, true),
            ObservedState::Mixed
        );
        // An online block spanning zones (valid_zones "none") is in a kernel zone.
        let spanning = vec![block(40, BlockState::Online, None)];
        assert_eq!(
            state_of(&Driver::Kmem, &spanning, 1, true),
            ObservedState::OnlineKernel
        );
        // kmem unbound while blocks remain, or only the iomem range remains.
        assert_eq!(
            state_of(&Driver::None, &blocks, 8, true),
            ObservedState::Stuck
        );
        assert_eq!(state_of(&Driver::None, &[], 8, true), ObservedState::Stuck);
        assert_eq!(
            state_of(&Driver::DeviceDax, &blocks, 8, true),
            ObservedState::Stuck
        );
    }

    #[test]
    fn kernel_state_agreement() {
        assert!(ObservedState::OnlineMovable.agrees_with(DaxState::Online));
        assert!(ObservedState::OnlineKernel.agrees_with(DaxState::Online));
        assert!(!ObservedState::Mixed.agrees_with(DaxState::OnlineMovable));
        assert!(!ObservedState::Offline.agrees_with(DaxState::OnlineMovable));
        assert!(ObservedState::Unplugged.agrees_with(DaxState::Unplugged));
    }

    fn any_block() -> impl Strategy<Value = (BlockState, Option<Zone>)> {
        prop_oneof![
            Just((BlockState::Online, Some(Zone::Movable))),
            Just((BlockState::Online, Some(Zone::Normal))),
            Just((BlockState::Online, None)),
            Just((BlockState::Offline, None)),
            Just((BlockState::GoingOffline, None)),
        ]
    }

    proptest! {
        /// A device reads as a uniform state exactly when all its blocks agree.
        #[test]
        fn uniform_iff_blocks_agree(specs in proptest::collection::vec(any_block(), 1..20), missing in 0u64..3) {
            let blocks: Vec<_> = specs.iter().enumerate()
                .map(|(i, (s, z))| block(i as u64, *s, *z)).collect();
            let span = blocks.len() as u64 + missing;
            let state = state_of(&Driver::Kmem, &blocks, span, true);
            let all = |f: &dyn Fn(&Block) -> bool| blocks.iter().all(f);
            let expected = if missing > 0 {
                ObservedState::Mixed
            } else if all(&|b| b.state == BlockState::Offline) {
                ObservedState::Offline
            } else if all(&|b| b.state == BlockState::Online && b.zone() == Some(Zone::Movable)) {
                ObservedState::OnlineMovable
            } else if all(&|b| b.state == BlockState::Online && b.zone() != Some(Zone::Movable)) {
                ObservedState::OnlineKernel
            } else {
                ObservedState::Mixed
            };
            prop_assert_eq!(state, expected);
            // Without kmem, any remaining block is a leak.
            prop_assert_eq!(state_of(&Driver::None, &blocks, span, false), ObservedState::Stuck);
        }
    }
}
