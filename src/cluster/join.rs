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

/// One channel being joined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Join {
    pub phase: Phase,
    /// Create the channel in Redis when absent.
    pub create: bool,
    /// The home mirrors the channel already: its state goes as `Event::Resync` (the mirror
    /// takes what it missed), not `Event::Synced` (the mirror is built).
    pub resync: bool,
    /// The number of the state read now awaited; a reply to an earlier read (one sent before
    /// the latest UNSUBSCRIBE was confirmed, or before the link was lost) is not taken.
    read: u8,
}

impl Join {
    pub fn new(create: bool, resync: bool) -> Join {
        Join {
            phase: Phase::Subscribing,
            create,
            resync,
            read: 0,
        }
    }

    /// What a newer request of the home says: the latest wins (the home knows whether it has a
    /// mirror now).
    pub fn update(&mut self, create: bool, resync: bool) {
        self.create = create;
        self.resync = resync;
    }

    /// The confirmation of a SUBSCRIBE: the number of the state read to send now, if one is
    /// due (none while a read is in flight).
    pub fn subscribed(&mut self) -> Option<u8> {
        if self.phase != Phase::Subscribing {
            return None;
        }
        self.phase = Phase::Fetching;
        self.read = self.read.wrapping_add(1);
        Some(self.read)
    }

    /// True when a state reply to read `read` is the one awaited.
    pub fn answers(&self, read: u8) -> bool {
        self.phase == Phase::Fetching && self.read == read
    }

    /// The link was lost, or an UNSUBSCRIBE of this channel was confirmed, or the state read
    /// failed: whatever read is in flight is void (it may miss what was published while the
    /// channel was not subscribed), and the state is read after the next SUBSCRIBE's
    /// confirmation.
    pub fn unsubscribed(&mut self) {
        self.phase = Phase::Subscribing;
        self.read = self.read.wrapping_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_reads_the_state_once_per_confirmed_subscription() {
        let mut j = Join::new(true, false);
        let first = j
            .subscribed()
            .expect("the first confirmation reads the state");
        assert!(j.answers(first));
        assert_eq!(
            j.subscribed(),
            None,
            "a confirmation while reading does not read again"
        );
        j.unsubscribed();
        assert_eq!(j.phase, Phase::Subscribing);
        assert!(
            !j.answers(first),
            "a read from before the unsubscription is void"
        );
        let second = j.subscribed().expect("the next confirmation reads again");
        assert!(j.answers(second) && !j.answers(first));
        j.update(false, true);
        assert_eq!((j.create, j.resync), (false, true));
    }

    #[test]
    fn a_join_is_tiny() {
        // Only channels being joined have one; still, a reconnect joins every channel at once.
        assert!(std::mem::size_of::<Join>() <= 4);
    }
}
