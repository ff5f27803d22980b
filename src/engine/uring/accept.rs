//! Where the uring backend arms its accepts, so that a full direct-descriptor table never makes the
//! kernel close a client.
//!
//! An accept that allocates a direct descriptor into a full table fails with ENFILE *after* taking
//! the connection off the listen queue, and the kernel then closes that connection. So:
//! - a multishot accept (cheap while connections pour in) is armed only on a ring whose spare slots
//!   exceed `headroom` per multishot accept on it plus the listener's current accept-queue length,
//!   and is cancelled as soon as the spare slots fall to that headroom. The headroom absorbs the
//!   connections the kernel accepts between two turns of the worker before the cancel lands;
//! - below that, a small window of single-shot accepts is kept in flight, each one reserving a slot
//!   beforehand: exact, whatever the arrival rate;
//! - when no table has a spare slot, no accept is armed; a readiness poll of the listener is,
//!   and the connections it reports are taken with an ordinary accept and closed at once
//!   (refused, counted), so no client waits in the listen queue for a slot that may never free.
//!   As soon as a close frees a slot the plan arms accepts again.
//!
//! A listener that wants peer addresses never gets a multishot accept (it cannot return one): it
//! keeps a smaller window of single-shot accepts, each with its own address buffer. Those may share
//! a ring with another listener's multishot accept; the headroom covers their reservations as it
//! covers the end of the table, since spare slots count reserved ones as taken.
//!
//! Depends on: std only (the plan is pure; the backend carries it out).

/// Single-shot accepts one listener keeps in flight when no ring has room for a multishot accept
/// (always, unless multishot accepts are enabled): each holds a slot reservation while it waits.
pub(crate) const SINGLE_WINDOW: u32 = 64;
/// Single-shot accepts a listener that wants peer addresses keeps in flight (each holds a slot
/// reservation for as long as it waits, so the window stays small).
pub(crate) const PEER_WINDOW: u32 = 8;

/// A multishot accept and the ring it allocates descriptors in.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Multishot {
    pub ring: usize,
    /// Its cancel was submitted; its last completion has not arrived yet.
    pub cancelling: bool,
}

/// The accepts one listener has in flight.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub(crate) struct AcceptState {
    pub multishot: Option<Multishot>,
    /// Single-shot accepts in flight, over all rings.
    pub singles: u32,
    /// The listener reports peer addresses: single-shot accepts only, [`PEER_WINDOW`] of them.
    pub want_peer: bool,
    /// A refusing readiness poll is armed on the listener (every table was full).
    pub refusing: bool,
}

impl AcceptState {
    /// No accept of this listener is in flight.
    pub fn idle(&self) -> bool {
        self.multishot.is_none() && self.singles == 0
    }

    /// Single-shot accepts this listener may keep in flight.
    fn window(&self) -> u32 {
        if self.want_peer {
            PEER_WINDOW
        } else {
            SINGLE_WINDOW
        }
    }
}

/// One ring's room for accepts, as the plan sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Room {
    /// Slots neither used nor reserved by single-shot accepts.
    pub spare: u32,
    /// Multishot accepts armed or cancelling on this ring.
    pub multishots: u32,
}

/// One decision of the plan.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Action {
    ArmMultishot { listener: usize, ring: usize },
    ArmSingle { listener: usize, ring: usize },
    CancelMultishot { listener: usize, ring: usize },
}

/// Decides which accepts to arm or cancel. `rooms` is updated as slots are promised, so the caller
/// can pass its own snapshot. `queued(listener)` gives a listener's accept-queue length (asked only
/// before arming a multishot accept). Returns true when some listener has nothing in flight and no
/// ring can take a connection (every table is full).
pub(crate) fn plan<'a>(
    states: impl IntoIterator<Item = &'a AcceptState>,
    rooms: &mut [Room],
    headroom: u32,
    queued: &mut dyn FnMut(usize) -> u32,
    out: &mut Vec<Action>,
) -> bool {
    let headroom = headroom.max(1);
    // (listener, single-shot accepts in flight, window)
    let mut needy: Vec<(usize, u32, u32)> = Vec::new();
    for (listener, state) in states.into_iter().enumerate() {
        if state.want_peer {
            needy.push((listener, state.singles, state.window()));
            continue;
        }
        if let Some(ms) = state.multishot {
            let Some(room) = rooms.get(ms.ring) else {
                continue;
            };
            if !ms.cancelling && room.spare <= headroom.saturating_mul(room.multishots) {
                out.push(Action::CancelMultishot {
                    listener,
                    ring: ms.ring,
                });
            }
            continue;
        }
        if let Some(ring) = multishot_ring(rooms, headroom, || queued(listener)) {
            if let Some(room) = rooms.get_mut(ring) {
                room.multishots += 1;
            }
            out.push(Action::ArmMultishot { listener, ring });
            continue;
        }
        needy.push((listener, state.singles, state.window()));
    }
    // Each spare slot goes to the listener with the fewest single-shot accepts in flight (the
    // lowest index on a tie), so a nearly full backend still accepts on every port: an idle
    // listener's waiting accepts cannot keep the slots freed one by one from a busy one.
    loop {
        let next = needy
            .iter_mut()
            .filter(|(_, singles, window)| singles < window)
            .min_by_key(|(_, singles, _)| *singles);
        let Some((listener, singles, _)) = next else {
            break;
        };
        let free = rooms
            .iter_mut()
            .enumerate()
            .find(|(_, room)| room.spare > headroom.saturating_mul(room.multishots));
        let Some((ring, room)) = free else {
            break;
        };
        room.spare -= 1;
        *singles += 1;
        out.push(Action::ArmSingle {
            listener: *listener,
            ring,
        });
    }
    needy.iter().any(|(_, singles, _)| *singles == 0)
}

/// The first ring with room for one more multishot accept, if any.
fn multishot_ring(rooms: &[Room], headroom: u32, mut queued: impl FnMut() -> u32) -> Option<usize> {
    let need = |room: &Room| headroom.saturating_mul(room.multishots + 1);
    let candidate = rooms.iter().position(|room| room.spare > need(room))?;
    let backlog = queued();
    rooms
        .iter()
        .enumerate()
        .skip(candidate)
        .find(|(_, room)| room.spare > need(room).saturating_add(backlog))
        .map(|(ring, _)| ring)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(states: &[AcceptState], rooms: &mut [Room], queue: u32) -> (Vec<Action>, bool) {
        let mut out = Vec::new();
        let starved = plan(states, rooms, 16, &mut |_| queue, &mut out);
        (out, starved)
    }

    fn room(spare: u32, multishots: u32) -> Room {
        Room { spare, multishots }
    }

    #[test]
    fn arms_a_multishot_accept_on_the_first_ring_with_headroom() {
        let states = [AcceptState::default(), AcceptState::default()];
        let mut rooms = [room(10, 0), room(64, 0)];
        let (out, starved) = run(&states, &mut rooms, 0);
        assert!(!starved);
        assert_eq!(
            out[0],
            Action::ArmMultishot {
                listener: 0,
                ring: 1
            }
        );
        assert_eq!(
            out[1],
            Action::ArmMultishot {
                listener: 1,
                ring: 1
            }
        );
        assert_eq!(rooms[1].multishots, 2);
    }

    #[test]
    fn a_long_accept_queue_keeps_multishot_off_a_small_ring() {
        let states = [AcceptState::default()];
        let mut rooms = [room(40, 0), room(400, 0)];
        let (out, _) = run(&states, &mut rooms, 100);
        assert_eq!(
            out,
            vec![Action::ArmMultishot {
                listener: 0,
                ring: 1
            }]
        );
    }

    #[test]
    fn cancels_a_multishot_accept_once_its_ring_reaches_the_headroom() {
        let armed = AcceptState {
            multishot: Some(Multishot {
                ring: 0,
                cancelling: false,
            }),
            singles: 0,
            want_peer: false,
            refusing: false,
        };
        let (out, _) = run(&[armed], &mut [room(17, 1)], 0);
        assert!(out.is_empty());
        let (out, _) = run(&[armed], &mut [room(16, 1)], 0);
        assert_eq!(
            out,
            vec![Action::CancelMultishot {
                listener: 0,
                ring: 0
            }]
        );
        let cancelling = AcceptState {
            multishot: Some(Multishot {
                ring: 0,
                cancelling: true,
            }),
            singles: 0,
            want_peer: false,
            refusing: false,
        };
        let (out, _) = run(&[cancelling], &mut [room(3, 1)], 0);
        assert!(out.is_empty(), "a cancel is sent once");
    }

    #[test]
    fn single_accepts_never_promise_more_slots_than_are_spare() {
        let states = [AcceptState::default(), AcceptState::default()];
        let mut rooms = [room(3, 0), room(0, 0), room(5, 0)];
        let (out, starved) = run(&states, &mut rooms, 0);
        assert!(!starved, "both listeners got a share");
        let per_listener = |l| {
            out.iter()
                .filter(|a| matches!(a, Action::ArmSingle { listener, .. } if *listener == l))
                .count()
        };
        assert_eq!((per_listener(0), per_listener(1)), (4, 4));
        let singles = |ring| {
            out.iter()
                .filter(|a| matches!(a, Action::ArmSingle { ring: r, .. } if *r == ring))
                .count()
        };
        assert_eq!((singles(0), singles(1), singles(2)), (3, 0, 5));
        assert_eq!(rooms[0].spare + rooms[2].spare, 0);
    }

    #[test]
    fn the_single_window_is_topped_up_not_exceeded_and_full_tables_starve() {
        let busy = AcceptState {
            multishot: None,
            singles: SINGLE_WINDOW - 2,
            want_peer: false,
            refusing: false,
        };
        let (out, _) = run(&[busy], &mut [room(10, 0)], 0);
        assert_eq!(out.len(), 2);
        let (out, starved) = run(&[AcceptState::default()], &mut [room(0, 0), room(0, 0)], 0);
        assert!(out.is_empty());
        assert!(starved);
    }

    #[test]
    fn a_listener_that_wants_peers_gets_only_its_own_window_of_single_accepts() {
        let peer = AcceptState {
            want_peer: true,
            ..AcceptState::default()
        };
        let mut rooms = [room(1000, 0)];
        let (out, starved) = run(&[peer, AcceptState::default()], &mut rooms, 0);
        assert!(!starved);
        let singles = out
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    Action::ArmSingle {
                        listener: 0,
                        ring: 0
                    }
                )
            })
            .count();
        assert_eq!(singles, PEER_WINDOW as usize);
        assert!(out
            .iter()
            .all(|a| !matches!(a, Action::ArmMultishot { listener: 0, .. })));
        assert!(out.contains(&Action::ArmMultishot {
            listener: 1,
            ring: 0
        }));
        assert_eq!(rooms[0].spare, 1000 - PEER_WINDOW);
        let topped = AcceptState {
            singles: PEER_WINDOW - 1,
            ..peer
        };
        let (out, _) = run(&[topped], &mut [room(1000, 0)], 0);
        assert_eq!(out.len(), 1);
        let (out, starved) = run(&[peer], &mut [room(0, 0)], 0);
        assert!(out.is_empty() && starved, "a full table arms nothing");
    }

    #[test]
    fn a_freed_slot_goes_to_the_listener_with_the_fewest_accepts_in_flight() {
        let hoarding = AcceptState {
            singles: 7,
            ..AcceptState::default()
        };
        let waiting = AcceptState {
            want_peer: true,
            ..AcceptState::default()
        };
        let (out, starved) = run(&[hoarding, waiting], &mut [room(1, 0)], 0);
        assert_eq!(
            out,
            vec![Action::ArmSingle {
                listener: 1,
                ring: 0
            }]
        );
        assert!(!starved);
        let (out, _) = run(&[hoarding, waiting], &mut [room(9, 0)], 0);
        let count = |l| {
            out.iter()
                .filter(|a| matches!(a, Action::ArmSingle { listener, .. } if *listener == l))
                .count()
        };
        assert_eq!(
            (count(0), count(1)),
            (1, 8),
            "levelled first, each within its window"
        );
    }
}
