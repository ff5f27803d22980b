//! Direct-descriptor tables: how a [`ConnId`] names a ring and an index in that ring's registered
//! file table, the per-slot connection record the backend keeps, and the occupancy accounting that
//! keeps the kernel from ever finding a table full when it accepts.
//!
//! Depends on: engine (ConnId, Token), slab (the record table).

use crate::engine::{ConnId, Token};
use crate::slab::ChunkTable;

/// Bits of a [`ConnId`] that hold the index inside one ring's table. The kernel caps a registered
/// file table at `1 << 20` entries, so an index always fits.
pub(crate) const INDEX_BITS: u32 = 20;
/// The largest registered file table the kernel accepts.
pub(crate) const MAX_TABLE: u32 = 1 << INDEX_BITS;
/// The most rings (tables) one backend may use: what the remaining bits of a [`ConnId`] can name.
pub(crate) const MAX_RINGS: usize = 1 << (32 - INDEX_BITS);

/// Names slot `index` of ring `ring`. Callers keep `ring < MAX_RINGS` and `index < MAX_TABLE`.
pub(crate) fn conn_id(ring: usize, index: u32) -> ConnId {
    ConnId(((ring as u32) << INDEX_BITS) | (index & (MAX_TABLE - 1)))
}

/// The ring and the table index a [`ConnId`] names.
pub(crate) fn split(conn: ConnId) -> (usize, u32) {
    ((conn.0 >> INDEX_BITS) as usize, conn.0 & (MAX_TABLE - 1))
}

/// Where a direct-descriptor slot is in its life.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) enum SlotState {
    /// No connection (never used, or its close completed).
    #[default]
    Free,
    /// Accepted and reported; the worker has not attached or refused it yet.
    Accepted,
    /// Attached under a token: a readiness poll is armed.
    Attached,
    /// Closed by the worker; its cancel and close are in flight. Nothing is reported for it.
    Closing,
}

/// What the backend remembers about one connection. Small on purpose: one per live connection
/// (16 bytes, pinned by a test).
#[derive(Clone, Copy, Debug)]
pub(crate) struct ConnSlot {
    /// Bumped each time the kernel puts a new connection in this slot.
    pub generation: u32,
    /// The worker's token, valid from attach until close.
    pub token: Token,
    pub state: SlotState,
    /// The `flag` bits below.
    flags: u8,
}

/// Bits of [`ConnSlot`]'s flags.
pub(crate) mod flag {
    /// The worker asked to stop reading ([`crate::engine::ReadControl::Pause`]).
    pub const PAUSED: u8 = 1;
    /// A receive is in flight.
    pub const READING: u8 = 1 << 1;
    /// The poll reported input while a receive was in flight: receive once more after it.
    pub const READ_AGAIN: u8 = 1 << 2;
    /// EOF or an error was reported; nothing more is read.
    pub const PEER_CLOSED: u8 = 1 << 3;
    /// The connection has sent bytes since it was attached (its reads are `Live`, see
    /// `read_queue`).
    pub const SPOKEN: u8 = 1 << 4;
    /// A send is in flight.
    pub const SENDING: u8 = 1 << 5;
}

impl Default for ConnSlot {
    fn default() -> ConnSlot {
        ConnSlot {
            generation: 0,
            token: Token {
                slot: 0,
                generation: 0,
            },
            state: SlotState::Free,
            flags: 0,
        }
    }
}

impl ConnSlot {
    /// True when every bit of `f` (see [`flag`]) is set.
    pub fn has(&self, f: u8) -> bool {
        self.flags & f == f
    }

    /// True when any bit of `f` is set.
    pub fn any(&self, f: u8) -> bool {
        self.flags & f != 0
    }

    /// Sets or clears the bits of `f`.
    pub fn set(&mut self, f: u8, on: bool) {
        if on {
            self.flags |= f;
        } else {
            self.flags &= !f;
        }
    }

    /// Clears the bits of `f` and tells whether they were all set.
    pub fn take(&mut self, f: u8) -> bool {
        let was = self.has(f);
        self.set(f, false);
        was
    }

    /// True when completions for this slot should reach the worker.
    pub fn attached(&self) -> bool {
        self.state == SlotState::Attached
    }
}

/// One ring's registered file table as the backend accounts for it.
///
/// INVARIANT: `used` counts slots the kernel holds a connection in (accepted and not yet closed by
/// a completed close), `reserved` counts single-shot accepts in flight (each may take one slot), so
/// `used + reserved <= size` whenever only single-shot accepts are armed on this ring.
#[derive(Debug)]
pub(crate) struct Table {
    slots: ChunkTable<ConnSlot>,
    /// Entries registered with the kernel.
    pub size: u32,
    pub used: u32,
    pub reserved: u32,
    /// Multishot accepts armed (or being cancelled) on this ring.
    pub multishots: u32,
}

impl Table {
    pub fn new(size: u32) -> Table {
        Table {
            slots: ChunkTable::new(),
            size,
            used: 0,
            reserved: 0,
            multishots: 0,
        }
    }

    /// Slots neither used nor promised to an in-flight single-shot accept.
    pub fn spare(&self) -> u32 {
        self.size
            .saturating_sub(self.used.saturating_add(self.reserved))
    }

    pub fn get(&self, index: u32) -> Option<&ConnSlot> {
        self.slots.get(index as usize)
    }

    pub fn get_mut(&mut self, index: u32) -> Option<&mut ConnSlot> {
        self.slots.get_mut(index as usize)
    }

    /// Records a connection the kernel just placed at `index`: a fresh generation, state Accepted.
    /// The slot records grow on demand (the kernel allocates low indices first).
    pub fn install(&mut self, index: u32) -> Option<&mut ConnSlot> {
        if index >= self.size {
            return None;
        }
        let i = index as usize;
        self.used = self.used.saturating_add(1);
        let slot = self.slots.grow_to(i);
        let generation = slot.generation.wrapping_add(1);
        *slot = ConnSlot {
            generation,
            state: SlotState::Accepted,
            ..ConnSlot::default()
        };
        Some(slot)
    }

    /// Records a completed close: the kernel freed one entry of this table.
    pub fn release(&mut self) {
        self.used = self.used.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_record_stays_small() {
        assert_eq!(std::mem::size_of::<ConnSlot>(), 16);
    }

    #[test]
    fn flags_set_clear_and_take() {
        let mut slot = ConnSlot::default();
        slot.set(flag::READING | flag::SENDING, true);
        assert!(slot.has(flag::READING) && slot.has(flag::SENDING));
        assert!(!slot.has(flag::PAUSED));
        assert!(slot.any(flag::PAUSED | flag::SENDING));
        assert!(!slot.has(flag::PAUSED | flag::SENDING));
        assert!(slot.take(flag::READING));
        assert!(!slot.take(flag::READING));
        assert!(slot.has(flag::SENDING));
    }

    #[test]
    fn conn_ids_carry_ring_and_index() {
        let conn = conn_id(49, 19_999);
        assert_eq!(split(conn), (49, 19_999));
        assert_eq!(
            split(conn_id(MAX_RINGS - 1, MAX_TABLE - 1)),
            (4095, MAX_TABLE - 1)
        );
        assert_eq!(split(conn_id(0, 0)), (0, 0));
    }

    #[test]
    fn install_bumps_generation_and_accounting_tracks_spare_slots() {
        let mut table = Table::new(4);
        table.reserved = 1;
        assert_eq!(table.spare(), 3);
        let first = table.install(2).map(|s| s.generation);
        assert_eq!(first, Some(1));
        assert_eq!(table.get(2).map(|s| s.state), Some(SlotState::Accepted));
        assert_eq!(table.spare(), 2);
        table.release();
        let second = table.install(2).map(|s| s.generation);
        assert_eq!(second, Some(2));
        assert!(table.install(4).is_none(), "index past the table");
        assert!(table.get(3).is_none() || table.get(3).map(|s| s.state) == Some(SlotState::Free));
    }
}
