//! `MirrorLog`: what a hub in cluster mode records for its node between two reports (see
//! `hub::mirror`). Depends on std only.

use crate::comet::name::Name;

/// What a mirroring hub keeps for its node between two reports: the channels that expired,
/// and the channels whose subscriber count changed (so a report carries the changes, not every
/// channel: an idle channel costs its node nothing between reports).
#[derive(Debug, Default)]
pub struct MirrorLog {
    pub expired: Vec<Name>,
    /// May name a channel more than once; deduplicated when taken, and whenever it doubles past
    /// `compact_at`, so it never holds much more than twice the channels that changed.
    changed: Vec<Name>,
    compact_at: usize,
}

/// Change lists shorter than this are never compacted before they are taken.
pub(super) const COMPACT_MIN: usize = 1024;

impl MirrorLog {
    pub fn count_changed(&mut self, name: &Name) {
        self.changed.push(Name::clone(name));
        if self.changed.len() >= self.compact_at.max(COMPACT_MIN) {
            dedup_names(&mut self.changed);
            self.compact_at = self.changed.len() * 2;
        }
    }

    /// The channels whose count changed since the last call, each once (sorted by name).
    pub fn take_changed(&mut self) -> Vec<Name> {
        let mut names = std::mem::take(&mut self.changed);
        self.compact_at = 0;
        dedup_names(&mut names);
        names
    }

    /// Forgets the recorded changes (a whole list was taken instead).
    pub fn forget_changes(&mut self) {
        self.changed = Vec::new();
        self.compact_at = 0;
    }

    /// Changes recorded, repeats included.
    #[cfg(test)]
    pub fn changes_held(&self) -> usize {
        self.changed.len()
    }
}

fn dedup_names(names: &mut Vec<Name>) {
    names.sort_unstable();
    names.dedup();
}
