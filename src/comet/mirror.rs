//! Cluster mode: a hub as the *mirror* of channels whose authoritative state lives in a shared
//! store (Redis). The store assigns seqs and keeps the buffer; the hub is told the state once
//! (`mirror_sync`), then each message the store published (`mirror_message`), and, when the
//! node read the state again (after a seq jumped, or its link came back), that state
//! (`mirror_resync`). Subscriptions, catch-ups and fan-out then work exactly as in single-node
//! mode. An idle mirror expires like any channel, and its name is reported (`take_expired`) so
//! the node stops listening to it.
//!
//! The mirror is where a channel's order is kept: its seq and epoch are the store's, so a message
//! with the next seq of this incarnation is delivered, an older one is a duplicate (it was in a
//! state read, or came twice), and anything else means something was missed: the caller has the
//! state read again. The node's thread keeps nothing per live channel.
//!
//! A child of `hub` (it sets the hub's private state). Depends on `comet::{auth, message, seq}`
//! and its sibling `mirror_log`.

use super::mirror_log::MirrorLog;
use super::{Hub, Published};
use crate::comet::auth::AuthToken;
use crate::comet::message::{Message, MsgType};
use crate::comet::name::Name;
use crate::comet::seq::seq_before;

/// A channel's state in the store.
#[derive(Debug, Clone, Copy)]
pub struct MirrorState<'a> {
    pub epoch: u32,
    pub seq_next: u32,
    pub token: AuthToken,
    /// The stored messages, oldest first: seq, kind and the JSON string's inside.
    pub entries: &'a [(u32, MsgType, &'a [u8])],
}

/// Subscribers must be told that delivery jumps: it continues at `seq` of incarnation `epoch`.
#[derive(Debug, Clone)]
pub struct Gapped {
    pub name: Name,
    pub seq: u32,
    pub epoch: u32,
    /// Workers with subscribers.
    pub workers: u64,
}

/// What a message the store published does to its mirror.
#[derive(Debug)]
pub enum MirrorStep {
    /// The next message of this incarnation: deliver it.
    Deliver(Published),
    /// Older than the mirror's next seq: it is held already.
    Duplicate,
    /// A later seq, or another incarnation: something was missed, read the state again.
    Jump,
    /// This hub mirrors no such channel (it expired, or was let go).
    Unknown,
}

/// What a new read of the store's state does to a mirror.
#[derive(Debug)]
pub enum Resynced {
    /// This hub mirrors no such channel.
    Unknown,
    /// The mirror held everything already.
    Current,
    /// The store held what the mirror missed: deliver these, in order.
    Filled(Vec<Published>),
    /// History the mirror missed is gone from the store, or the channel is another
    /// incarnation: subscribers are told (`Gapped`), then get the stored messages.
    Gap(Gapped, Vec<Published>),
}

impl Hub {
    /// Cluster mode: channels are mirrors; expiries and subscriber count changes are recorded.
    pub fn set_mirror(&mut self) {
        self.mirror = Some(MirrorLog::default());
    }

    /// Mirrors that expired since the last call.
    pub fn take_expired(&mut self) -> Vec<Name> {
        self.mirror
            .as_mut()
            .map(|log| std::mem::take(&mut log.expired))
            .unwrap_or_default()
    }

    /// Every channel with subscribers and their number: the whole of what this hub reports to
    /// the store (after the store lost it). Forgets the recorded changes, which it includes.
    pub fn subscriber_counts(&mut self) -> Vec<(Name, u32)> {
        if let Some(log) = self.mirror.as_mut() {
            log.forget_changes();
        }
        self.channels
            .iter()
            .filter(|(_, ch)| ch.subscribers > 0)
            .map(|(name, ch)| (Name::clone(name), ch.subscribers))
            .collect()
    }

    /// The names of the mirrors `keep` selects (the node joins them again after a reconnect,
    /// and keeps them alive in the store).
    pub fn mirror_names(&self, keep: impl Fn(&[u8]) -> bool) -> Vec<Name> {
        self.channels
            .iter()
            .filter(|(name, _)| keep(name))
            .map(|(name, _)| Name::clone(name))
            .collect()
    }

    /// The channels whose subscriber count changed since the last call (or the last
    /// `subscriber_counts`), each once with its count now (0: none left, or the channel is gone).
    pub fn take_count_changes(&mut self) -> Vec<(Name, u32)> {
        let Some(log) = self.mirror.as_mut() else {
            return Vec::new();
        };
        log.take_changed()
            .into_iter()
            .map(|name| {
                let n = self.channels.get(&name).map_or(0, |ch| ch.subscribers);
                (name, n)
            })
            .collect()
    }

    /// Builds (or rebuilds) the mirror of `cname` from the store's state. False when
    /// `max_channels` mirrors exist already.
    /// A new mirror keeps `cname` itself (the name the node and any waiting subscription hold).
    pub fn mirror_sync(&mut self, cname: &Name, state: MirrorState<'_>) -> bool {
        let buffer = self.config.buffer();
        let Ok(index) = self.find_or_create_with(cname, false, Some(cname)) else {
            return false;
        };
        let Some((name, ch)) = self.channels.entry_at_mut(index) else {
            return false;
        };
        ch.take_identity(state.epoch, state.token, state.seq_next);
        ch.ring.clear();
        for &(seq, kind, content) in state.entries {
            ch.ring.push(Message::new(kind, name, seq, content), buffer);
        }
        true
    }

    /// The epoch of the mirror of `cname`, if this hub has one.
    pub fn mirror_epoch(&self, cname: &[u8]) -> Option<u32> {
        self.channels.get(cname).map(|ch| ch.epoch())
    }

    /// A message the store published on `cname`, in incarnation `epoch`: delivered when it is
    /// the next one (see the module doc).
    pub fn mirror_message(
        &mut self,
        cname: &[u8],
        epoch: u32,
        seq: u32,
        kind: MsgType,
        content: &[u8],
    ) -> MirrorStep {
        let buffer = self.config.buffer();
        let Some(index) = self.channels.index_of(cname) else {
            return MirrorStep::Unknown;
        };
        let Some((name, ch)) = self.channels.entry_at_mut(index) else {
            return MirrorStep::Unknown;
        };
        if epoch != ch.epoch() {
            return MirrorStep::Jump;
        }
        if seq != ch.seq_next() {
            return if seq_before(seq, ch.seq_next()) {
                MirrorStep::Duplicate
            } else {
                MirrorStep::Jump
            };
        }
        ch.stored(seq);
        let msg = Message::new(kind, name, seq, content);
        ch.ring.push(msg.clone(), buffer);
        MirrorStep::Deliver(Published {
            name: Name::clone(name),
            msg,
            workers: ch.workers,
            subscribers: 0,
            epoch: None,
        })
    }

    /// The store's state of `cname`, read again: the mirror takes what it missed, or, when the
    /// store no longer reaches back that far or holds another incarnation, the whole new state.
    pub fn mirror_resync(&mut self, cname: &[u8], state: MirrorState<'_>) -> Resynced {
        let Some(ch) = self.channels.get(cname) else {
            return Resynced::Unknown;
        };
        let (epoch, next) = (ch.epoch(), ch.seq_next());
        if state.epoch == epoch && state.seq_next == next {
            return Resynced::Current;
        }
        let mut missing = state
            .entries
            .iter()
            .filter(|(seq, ..)| !seq_before(*seq, next))
            .peekable();
        let same = state.epoch == epoch && !seq_before(state.seq_next, next);
        if same && missing.peek().is_some_and(|(seq, ..)| *seq == next) {
            let mut filled = Vec::new();
            for &(seq, kind, content) in missing {
                match self.mirror_message(cname, epoch, seq, kind, content) {
                    MirrorStep::Deliver(p) => filled.push(p),
                    // The store's entries are consecutive; a hole ends what can be taken.
                    _ => break,
                }
            }
            return Resynced::Filled(filled);
        }
        match self.mirror_gap(cname, state) {
            Some((gap, stored)) => Resynced::Gap(gap, stored),
            None => Resynced::Unknown,
        }
    }

    /// History was lost, or the channel is another incarnation: the mirror takes the new state;
    /// returns where its subscribers continue and the stored messages to deliver after that.
    fn mirror_gap(
        &mut self,
        cname: &[u8],
        state: MirrorState<'_>,
    ) -> Option<(Gapped, Vec<Published>)> {
        let name = Name::clone(self.channels.get_key_value(cname)?.0);
        self.mirror_sync(&name, state);
        let index = self.channels.index_of(cname)?;
        let (name, ch) = self.channels.entry_at_mut(index)?;
        let gapped = Gapped {
            name: Name::clone(name),
            seq: ch.seq_oldest(),
            epoch: ch.epoch(),
            workers: ch.workers,
        };
        let stored = ch
            .ring
            .iter()
            .map(|msg| Published {
                name: Name::clone(name),
                msg: msg.clone(),
                workers: ch.workers,
                subscribers: 0,
                epoch: None,
            })
            .collect();
        Some((gapped, stored))
    }
}

#[cfg(test)]
mod tests {
    use super::super::mirror_log::COMPACT_MIN;
    use super::*;
    use crate::comet::auth::Credential;
    use crate::comet::hub::{Ask, Counters, HubConfig, Subscribed};
    use crate::comet::CatchUp;

    fn hub() -> Hub {
        let config = HubConfig {
            max_channels: 100,
            max_subscribers_per_channel: 100,
            channel_buffer_size: 3,
            channel_timeout: 2,
            polling_timeout: 30,
            auth_token: false,
        };
        let mut hub = Hub::new(config, Counters::new());
        hub.set_presence(false);
        hub.set_mirror();
        hub
    }

    #[test]
    fn a_mirror_replays_what_the_store_holds_and_follows_its_seqs() {
        let mut hub = hub();
        let entries: [(u32, MsgType, &[u8]); 2] =
            [(41, MsgType::Data, b"a"), (42, MsgType::Data, b"b")];
        let state = MirrorState {
            epoch: 9,
            seq_next: 43,
            token: [1; 16],
            entries: &entries,
        };
        let name: Name = Name::from(&b"c"[..]);
        assert!(hub.mirror_sync(&name, state));
        let kept = hub.name(b"c").unwrap();
        assert!(
            Name::ptr_eq(&kept, &name),
            "the mirror keeps the name it was given"
        );
        match subscribe(&mut hub, 42) {
            CatchUp::Replay(m) => assert_eq!(m.iter().map(|m| m.seq).collect::<Vec<_>>(), [42]),
            other => panic!("{other:?}"),
        }
        let p = delivered(hub.mirror_message(b"c", 9, 43, MsgType::Data, b"x"));
        assert_eq!((p.msg.seq, p.workers), (43, 1));
        assert_eq!(hub.channel(b"c").unwrap().seq_next(), 44);
        assert_eq!(hub.channel(b"c").unwrap().epoch(), 9);
        assert!(matches!(
            hub.mirror_message(b"other", 9, 1, MsgType::Data, b"x"),
            MirrorStep::Unknown
        ));
    }

    fn delivered(step: MirrorStep) -> Published {
        match step {
            MirrorStep::Deliver(p) => p,
            other => panic!("not delivered: {other:?}"),
        }
    }

    fn seqs(list: &[Published]) -> Vec<u32> {
        list.iter().map(|p| p.msg.seq).collect()
    }

    fn state_of<'a>(
        epoch: u32,
        next: u32,
        entries: &'a [(u32, MsgType, &'a [u8])],
    ) -> MirrorState<'a> {
        MirrorState {
            epoch,
            seq_next: next,
            token: [1; 16],
            entries,
        }
    }

    #[test]
    fn duplicates_are_skipped_and_a_jump_or_another_incarnation_asks_for_the_state() {
        let mut hub = hub();
        let entries: [(u32, MsgType, &[u8]); 2] =
            [(2, MsgType::Data, b"b"), (3, MsgType::Data, b"c")];
        hub.mirror_sync(&Name::from(&b"c"[..]), state_of(5, 4, &entries));
        // A payload published before the state was read arrives after it: held already.
        let step = hub.mirror_message(b"c", 5, 3, MsgType::Data, b"c");
        assert!(matches!(step, MirrorStep::Duplicate), "{step:?}");
        assert_eq!(
            delivered(hub.mirror_message(b"c", 5, 4, MsgType::Data, b"d"))
                .msg
                .seq,
            4
        );
        let step = hub.mirror_message(b"c", 5, 4, MsgType::Data, b"d");
        assert!(matches!(step, MirrorStep::Duplicate), "twice: {step:?}");
        let step = hub.mirror_message(b"c", 5, 7, MsgType::Data, b"g");
        assert!(
            matches!(step, MirrorStep::Jump),
            "5 and 6 were missed: {step:?}"
        );
        let step = hub.mirror_message(b"c", 6, 5, MsgType::Data, b"e");
        assert!(
            matches!(step, MirrorStep::Jump),
            "another incarnation: {step:?}"
        );
        assert_eq!(
            hub.channel(b"c").unwrap().seq_next(),
            5,
            "nothing taken after 4"
        );
    }

    #[test]
    fn a_resync_fills_the_hole_when_the_store_still_holds_it() {
        let mut hub = hub();
        hub.mirror_sync(&Name::from(&b"c"[..]), state_of(5, 3, &[]));
        let same = hub.mirror_resync(b"c", state_of(5, 3, &[]));
        assert!(matches!(same, Resynced::Current), "{same:?}");
        let entries: [(u32, MsgType, &[u8]); 3] = [
            (3, MsgType::Data, b"c"),
            (4, MsgType::Data, b"d"),
            (5, MsgType::Data, b"e"),
        ];
        match hub.mirror_resync(b"c", state_of(5, 6, &entries)) {
            Resynced::Filled(p) => assert_eq!(seqs(&p), [3, 4, 5]),
            other => panic!("{other:?}"),
        }
        assert_eq!(hub.channel(b"c").unwrap().seq_next(), 6);
        assert!(matches!(
            hub.mirror_resync(b"other", state_of(5, 6, &entries)),
            Resynced::Unknown
        ));
    }

    #[test]
    fn history_lost_or_another_incarnation_is_a_gap() {
        let mut hub = hub();
        hub.mirror_sync(&Name::from(&b"c"[..]), state_of(5, 3, &[]));
        // 3..7 fell off the store's buffer while this mirror was not listening.
        let entries: [(u32, MsgType, &[u8]); 2] =
            [(8, MsgType::Data, b"h"), (9, MsgType::Data, b"i")];
        match hub.mirror_resync(b"c", state_of(5, 10, &entries)) {
            Resynced::Gap(gap, stored) => {
                assert_eq!((gap.seq, gap.epoch), (8, 5));
                assert_eq!(seqs(&stored), [8, 9]);
            }
            other => panic!("{other:?}"),
        }
        // The store came back empty: a new incarnation.
        match hub.mirror_resync(b"c", state_of(77, 1, &[])) {
            Resynced::Gap(gap, stored) => {
                assert_eq!((gap.seq, gap.epoch), (1, 77));
                assert!(stored.is_empty());
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            delivered(hub.mirror_message(b"c", 77, 1, MsgType::Data, b"a"))
                .msg
                .seq,
            1
        );
    }

    #[test]
    fn a_gap_moves_subscribers_to_the_new_state_and_expiry_is_reported() {
        let mut hub = hub();
        let state = MirrorState {
            epoch: 9,
            seq_next: 5,
            token: [1; 16],
            entries: &[],
        };
        hub.mirror_sync(&Name::from(&b"c"[..]), state);
        subscribe(&mut hub, 5);
        let entries: [(u32, MsgType, &[u8]); 1] = [(1, MsgType::Data, b"new")];
        let fresh = MirrorState {
            epoch: 10,
            seq_next: 2,
            token: [2; 16],
            entries: &entries,
        };
        let Resynced::Gap(gap, stored) = hub.mirror_resync(b"c", fresh) else {
            panic!("a new incarnation is a gap");
        };
        assert_eq!((gap.seq, gap.epoch, gap.workers), (1, 10, 1));
        assert_eq!(stored.len(), 1);
        hub.unsubscribe_many(b"c", 10, 0, 1, true);
        for _ in 0..4 {
            hub.tick();
        }
        assert_eq!(hub.take_expired(), vec![Name::from(&b"c"[..])]);
        assert!(hub.take_expired().is_empty());
    }

    fn counts(list: &[(Name, u32)]) -> Vec<(String, u32)> {
        let name = |n: &Name| String::from_utf8_lossy(n).into_owned();
        list.iter().map(|(n, c)| (name(n), *c)).collect()
    }

    fn subscribe_to(hub: &mut Hub, cname: &[u8], seq: u32) -> Subscribed {
        let credential = Credential::Signed(Vec::new());
        let ask = Ask {
            cname,
            seq,
            credential: &credential,
            worker: 0,
            long_poll: false,
            resume: None,
        };
        hub.subscribe(ask).unwrap()
    }

    fn subscribe(hub: &mut Hub, seq: u32) -> CatchUp {
        subscribe_to(hub, b"c", seq).catch_up
    }

    #[test]
    fn only_the_channels_whose_count_changed_are_reported_each_once() {
        let mut hub = hub();
        let a = subscribe_to(&mut hub, b"a", 0).epoch;
        subscribe_to(&mut hub, b"a", 0);
        subscribe_to(&mut hub, b"b", 0);
        subscribe_to(&mut hub, b"c", 0);
        hub.unsubscribe_many(b"a", a, 0, 1, false);
        let want = [("a".to_string(), 1), ("b".into(), 1), ("c".into(), 1)];
        assert_eq!(counts(&hub.take_count_changes()), want);
        assert!(hub.take_count_changes().is_empty(), "nothing changed since");

        // A channel closed with subscribers is reported at 0; an untouched one is not reported.
        hub.close(b"b");
        hub.unsubscribe_many(b"a", a, 0, 1, true);
        assert_eq!(
            counts(&hub.take_count_changes()),
            [("a".to_string(), 0), ("b".into(), 0)]
        );

        // The whole list forgets the changes it includes.
        subscribe_to(&mut hub, b"d", 0);
        assert_eq!(
            counts(&hub.subscriber_counts()),
            [("c".to_string(), 1), ("d".into(), 1)]
        );
        assert!(hub.take_count_changes().is_empty());
    }

    #[test]
    fn a_long_change_list_is_compacted_before_it_is_taken() {
        let mut hub = hub();
        let epoch = subscribe_to(&mut hub, b"a", 0).epoch;
        for _ in 0..10 * COMPACT_MIN {
            hub.unsubscribe_many(b"a", epoch, 0, 1, false);
            subscribe_to(&mut hub, b"a", 0);
        }
        let log = hub.mirror.as_ref().unwrap();
        assert!(log.changes_held() <= COMPACT_MIN, "{}", log.changes_held());
        assert_eq!(counts(&hub.take_count_changes()), [("a".to_string(), 1)]);
    }
}
