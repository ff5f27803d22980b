//! A channel the cluster thread is *joining*: its SUBSCRIBE is not confirmed yet, or its state
//! read is in flight. Payloads published meanwhile are held and handed to the home worker after
//! the state. Once the state went to the home the record goes: a live channel costs the thread
//! nothing, and its order is kept by the home's mirror (`comet::mirror`), which asks for the
//! state again (`Request::Resync`) when a seq jumps.
//!
//! Depends on nothing.

/// Where a join stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// SUBSCRIBE sent (or to be sent once the link is up), not confirmed.
    Subscribing,
    /// Subscribed; the state read is in flight.
    Fetching,
}

/// State reads of one join Redis may refuse (a key of the wrong type, out of memory) before the
/// join gives up and the home is told (`Event::Refused`).
pub const MAX_REFUSALS: u8 = 3;

/// One channel being joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Join {
    pub phase: Phase,
    /// Create the channel in Redis when absent.
    pub create: bool,
    /// The home mirrors the channel already: its state goes as `Event::Resync` (the mirror
    /// takes what it missed), not `Event::Synced` (the mirror is built).
    pub resync: bool,
    refusals: u8,
    /// The number of the state read now awaited (0: none). Numbers come from one counter of
    /// the thread, so a reply to a read of an earlier join of the same name, or to one sent
    /// before the latest UNSUBSCRIBE was confirmed, is never taken.
    read: u32,
}

impl Join {
    pub fn new(create: bool, resync: bool) -> Join {
        Join {
            phase: Phase::Subscribing,
            create,
            resync,
            refusals: 0,
            read: 0,
        }
    }

    /// What a newer request of the home says: the latest wins (the home knows whether it has a
    /// mirror now).
    pub fn update(&mut self, create: bool, resync: bool) {
        self.create = create;
        self.resync = resync;
    }

    /// The confirmation of a SUBSCRIBE: true when the state is to be read now, as read number
    /// `read` (never 0); false while a read is in flight.
    pub fn subscribed(&mut self, read: u32) -> bool {
        if self.phase != Phase::Subscribing {
            return false;
        }
        self.phase = Phase::Fetching;
        self.read = read;
        true
    }

    /// True when a state reply to read `read` is the one awaited.
    pub fn answers(&self, read: u32) -> bool {
        self.phase == Phase::Fetching && read != 0 && self.read == read
    }

    /// The link was lost, or an UNSUBSCRIBE of this channel was confirmed: whatever read is in
    /// flight is void (it may miss what was published while the channel was not subscribed),
    /// and the state is read after the next SUBSCRIBE's confirmation.
    pub fn unsubscribed(&mut self) {
        self.phase = Phase::Subscribing;
        self.read = 0;
    }

    /// Redis refused the state read: true while the join may try again.
    pub fn refused(&mut self) -> bool {
        self.unsubscribed();
        self.refusals = self.refusals.saturating_add(1);
        self.refusals < MAX_REFUSALS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_reads_the_state_once_per_confirmed_subscription() {
        let mut j = Join::new(true, false);
        assert!(j.subscribed(7), "the first confirmation reads the state");
        assert!(j.answers(7) && !j.answers(0) && !j.answers(6));
        assert!(
            !j.subscribed(8),
            "a confirmation while reading does not read again"
        );
        assert!(j.answers(7));
        j.unsubscribed();
        assert_eq!(j.phase, Phase::Subscribing);
        assert!(
            !j.answers(7),
            "a read from before the unsubscription is void"
        );
        assert!(j.subscribed(9), "the next confirmation reads again");
        assert!(j.answers(9) && !j.answers(7));
        j.update(false, true);
        assert_eq!((j.create, j.resync), (false, true));
    }

    #[test]
    fn a_join_gives_up_after_its_refusals() {
        let mut j = Join::new(true, false);
        for _ in 1..MAX_REFUSALS {
            assert!(j.subscribed(1));
            assert!(j.refused(), "tried again");
            assert_eq!(j.phase, Phase::Subscribing);
        }
        assert!(j.subscribed(2));
        assert!(!j.refused(), "given up");
    }

    #[test]
    fn a_join_is_small() {
        // Only channels being joined have one; still, a reconnect joins every channel at once.
        assert!(std::mem::size_of::<Join>() <= 8);
    }
}
