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
}

impl Join {
    pub fn new(create: bool, resync: bool) -> Join {
        Join {
            phase: Phase::Subscribing,
            create,
            resync,
        }
    }

    /// What a newer request of the home says: the latest wins (the home knows whether it has a
    /// mirror now).
    pub fn update(&mut self, create: bool, resync: bool) {
        self.create = create;
        self.resync = resync;
    }

    /// The confirmation of a SUBSCRIBE: true when the state is to be read now.
    pub fn subscribed(&mut self) -> bool {
        let read = self.phase == Phase::Subscribing;
        self.phase = Phase::Fetching;
        read
    }

    /// The link was lost, or an UNSUBSCRIBE sent before the SUBSCRIBE now awaited was confirmed
    /// while the state was being read: that read may miss what was published before the new
    /// subscription, so the state is read again after its confirmation.
    pub fn unsubscribed(&mut self) {
        self.phase = Phase::Subscribing;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_join_reads_the_state_once_per_confirmed_subscription() {
        let mut j = Join::new(true, false);
        assert!(j.subscribed(), "the first confirmation reads the state");
        assert!(
            !j.subscribed(),
            "a second confirmation while reading does not read again"
        );
        j.unsubscribed();
        assert_eq!(j.phase, Phase::Subscribing);
        assert!(
            j.subscribed(),
            "after the link was lost, the next confirmation reads again"
        );
        j.update(false, true);
        assert_eq!((j.create, j.resync), (false, true));
    }

    #[test]
    fn a_join_is_tiny() {
        // Only channels being joined have one; still, a reconnect joins every channel at once.
        assert!(std::mem::size_of::<Join>() <= 3);
    }
}
