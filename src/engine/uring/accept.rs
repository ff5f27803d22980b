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
//! - when no table has a spare slot, nothing is armed and new connections wait in the kernel's
//!   listen queue until a close frees a slot.
//!
//! Depends on: std only (the plan is pure; the backend carries it out).

/// Single-shot accepts one listener keeps in flight when no ring has room for a multishot accept.
pub(crate) const SINGLE_WINDOW: u32 = 16;

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
    let mut needy: Vec<(usize, u32)> = Vec::new();
    for (listener, state) in states.into_iter().enumerate() {
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
        needy.push((listener, state.singles));
    }
    // Single-shot accepts are handed out one per listener per round, so a nearly full backend
    // still accepts on every port.
    loop {
        let mut progress = false;
        for (listener, singles) in needy.iter_mut() {
            if *singles >= SINGLE_WINDOW {
                continue;
            }
            let free = rooms
                .iter_mut()
                .enumerate()
                .find(|(_, room)| room.spare > headroom.saturating_mul(room.multishots));
            let Some((ring, room)) = free else {
                break;
            };
            room.spare -= 1;
            *singles += 1;
            progress = true;
            out.push(Action::ArmSingle {
                listener: *listener,
                ring,
            });
        }
        if !progress {
            break;
        }
    }
    needy.iter().any(|(_, singles)| *singles == 0)
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
        };
        let (out, _) = run(&[busy], &mut [room(10, 0)], 0);
        assert_eq!(out.len(), 2);
        let (out, starved) = run(&[AcceptState::default()], &mut [room(0, 0), room(0, 0)], 0);
        assert!(out.is_empty());
        assert!(starved);
    }
}
