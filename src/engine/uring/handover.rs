//! Handing a connection to another worker's uring backend. Direct descriptors belong to one
//! ring, so a hand-over goes through an ordinary descriptor: the giving ring installs one for the
//! connection (`IORING_OP_FIXED_FD_INSTALL`) and then closes its direct descriptor as for any
//! close; the taking ring registers the ordinary descriptor into its own table with the kernel's
//! own slot allocator (`IORING_OP_FILES_UPDATE` at `IORING_FILE_INDEX_ALLOC`, so it can never
//! collide with an accept), after reserving a slot exactly as a single-shot accept does, and then
//! closes the ordinary descriptor. Both steps complete asynchronously
//! (`Completion::Detached`, `Completion::Adopted`). The ordinary descriptor exists only between
//! the two, so the open-file limit is touched by hand-overs in flight only.
//!
//! Depends on: engine (Completion, ConnId, Detach, Token), engine::uring internals, io-uring.

use super::buffers::AdoptRecord;
use super::complete::Handler;
use super::table::{conn_id, flag, split};
use super::user_data::Op;
use super::Uring;
use crate::engine::{Completion, ConnId, Detach, Token};
use io_uring::opcode;
use io_uring::types::Fixed;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

impl Uring {
    /// See [`crate::engine::Backend::detach`].
    pub(super) fn start_detach(&mut self, conn: ConnId, token: Token) -> Detach {
        let (r, index) = split(conn);
        let Some(slot) = self.rings.get(r).and_then(|ring| ring.table.get(index)) else {
            return Detach::Unsupported;
        };
        if !slot.attached() || slot.token != token || slot.any(flag::SENDING | flag::PEER_CLOSED) {
            return Detach::Unsupported;
        }
        let generation = slot.generation;
        let entry = opcode::FixedFdInstall::new(Fixed(index), 0)
            .build()
            .user_data(Op::Install { conn, generation }.encode());
        // SAFETY: the operation uses no buffer; the direct descriptor stays registered until the
        // worker closes the connection, which it does only after the completion.
        match unsafe { self.push(r, &entry) } {
            Ok(()) => Detach::Later,
            Err(_) => Detach::Unsupported,
        }
    }

    /// The ordinary descriptor for a connection being handed over.
    pub(super) fn on_install(
        &mut self,
        conn: ConnId,
        generation: u32,
        res: i32,
        handler: Handler<'_>,
    ) {
        // SAFETY: a non-negative result is a descriptor the kernel just installed for this
        // process and nothing else knows of: it is ours to own (and close).
        let socket = (res >= 0).then(|| unsafe { OwnedFd::from_raw_fd(res) });
        let Some(slot) = self.live_slot(conn, generation) else {
            return; // closed meanwhile: the descriptor, if any, is dropped here
        };
        let token = slot.token;
        handler(Completion::Detached { token, socket });
    }

    /// See [`crate::engine::Backend::adopt`].
    pub(super) fn start_adopt(&mut self, socket: OwnedFd, tag: u64) -> io::Result<Option<ConnId>> {
        self.open_tables_as_needed();
        let ring = self
            .rings
            .iter()
            .position(|r| r.table.spare() > 0)
            .ok_or_else(|| io::Error::other("every connection slot is in use"))?;
        let record = Box::new(AdoptRecord {
            fds: [socket.as_raw_fd()],
            _socket: socket,
            tag,
            ring,
        });
        let id = self.adopting.insert(record);
        let Some(record) = self.adopting.get_mut(id) else {
            return Err(io::Error::other("adoption record lost"));
        };
        // IORING_FILE_INDEX_ALLOC: the kernel picks a free slot and writes its index back.
        let entry = opcode::FilesUpdate::new(record.fds.as_ptr(), 1)
            .offset(-1)
            .build()
            .user_data(Op::Adopt { record: id }.encode());
        // SAFETY: `fds` lives in a boxed record of `self.adopting`, removed only when this
        // operation's completion arrives (see `AdoptRecord`'s invariant); its descriptor stays
        // open until then.
        if let Err(e) = unsafe { self.push(ring, &entry) } {
            self.adopting.remove(id);
            return Err(e);
        }
        if let Some(r) = self.rings.get_mut(ring) {
            r.table.reserved = r.table.reserved.saturating_add(1);
        }
        Ok(None)
    }

    /// A handed-over socket is in the table (or could not be registered).
    pub(super) fn on_adopt(&mut self, id: u32, res: i32, handler: Handler<'_>) {
        let Some(record) = self.adopting.remove(id) else {
            return;
        };
        let (ring, tag) = (record.ring, record.tag);
        let index = record.fds[0];
        // The table holds its own reference now: the ordinary descriptor closes with the record.
        drop(record);
        let Some(r) = self.rings.get_mut(ring) else {
            return;
        };
        r.table.reserved = r.table.reserved.saturating_sub(1);
        self.accepts_dirty = true;
        let installed = res == 1 && index >= 0 && r.table.install(index as u32).is_some();
        if !installed {
            if res < 0 {
                log::warn!(
                    "handed-over connection not registered: {}",
                    io::Error::from_raw_os_error(-res)
                );
            }
            handler(Completion::Adopted { tag, conn: None });
            return;
        }
        let conn = conn_id(ring, index as u32);
        handler(Completion::Adopted {
            tag,
            conn: Some(conn),
        });
    }
}
