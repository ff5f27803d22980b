//! Cluster mode: a hub as the *mirror* of channels whose authoritative state lives in a shared
//! store (Redis). The store assigns seqs and keeps the buffer; the hub is told the state once
//! (`mirror_sync`), then each message in seq order (`mirror_message`), and on a reconnect that
//! found history missing, the new state (`mirror_gap`). Subscriptions, catch-ups and fan-out
//! then work exactly as in single-node mode. An idle mirror expires like any channel, and its
//! name is reported (`take_expired`) so the node stops listening to it.
//!
//! A child of `hub` (it sets the hub's private state). Depends on `comet::{auth, message, seq}`
//! and its sibling `mirror_log`.

use super::mirror_log::MirrorLog;
use super::{Hub, Published};
use crate::comet::auth::AuthToken;
use crate::comet::message::{Message, MsgType};
use crate::comet::name::Name;

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

    /// The store's next message of a mirrored channel (seqs arrive in order, without gaps).
    pub fn mirror_message(
        &mut self,
        cname: &[u8],
        seq: u32,
        kind: MsgType,
        content: &[u8],
    ) -> Option<Published> {
        let buffer = self.config.buffer();
        let index = self.channels.index_of(cname)?;
        let (name, ch) = self.channels.entry_at_mut(index)?;
        ch.stored(seq);
        let msg = Message::new(kind, name, seq, content);
        ch.ring.push(msg.clone(), buffer);
        Some(Published {
            name: Name::clone(name),
            msg,
            workers: ch.workers,
        })
    }

    /// History was lost, or the channel is another incarnation: the mirror takes the new state;
    /// returns where its subscribers continue and the stored messages to deliver after that.
    pub fn mirror_gap(
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
        let p = hub.mirror_message(b"c", 43, MsgType::Data, b"x").unwrap();
        assert_eq!((p.msg.seq, p.workers), (43, 1));
        assert_eq!(hub.channel(b"c").unwrap().seq_next(), 44);
        assert_eq!(hub.channel(b"c").unwrap().epoch(), 9);
        assert!(hub
            .mirror_message(b"other", 1, MsgType::Data, b"x")
            .is_none());
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
        let (gap, stored) = hub.mirror_gap(b"c", fresh).unwrap();
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
