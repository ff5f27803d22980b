//! Start-up check of the io_uring backend: is io_uring usable here, with every opcode and flag the
//! uring backend relies on? The server calls [`uring_available`] once and falls back to epoll with
//! one log line carrying the returned reason.
//!
//! Beyond the opcode list, the probe runs the backend's whole life cycle once over loopback, with
//! timeouts: multishot accept into an allocated direct descriptor, multishot poll, non-blocking
//! receive, sendmsg, cancel by fixed descriptor and close. That catches kernels that know an
//! opcode but not a flag, `kernel.io_uring_disabled`, and seccomp or container policies that
//! block io_uring calls.
//!
//! Depends on: io-uring, libc, std::net.

use io_uring::types::{CancelBuilder, Fd, Fixed, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring, Probe};
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// How long each probe step may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(2);

/// The user-data word of each probe step: the step's position in the cycle.
#[repr(u64)]
enum Step {
    Accept = 1,
    Poll,
    Recv,
    Send,
    Cancel,
    Close,
}
const ACCEPT: u64 = Step::Accept as u64;
const POLL: u64 = Step::Poll as u64;
const RECV: u64 = Step::Recv as u64;
const SEND: u64 = Step::Send as u64;
const CANCEL: u64 = Step::Cancel as u64;
const CLOSE: u64 = Step::Close as u64;

/// `Ok(())` when the uring backend can run here; otherwise why not, in one line.
///
/// The probe runs on a short-lived thread of its own: tearing a ring down queues kernel task work
/// on the thread that used it, which would otherwise interrupt that thread's next blocking call
/// with a spurious EINTR.
pub fn uring_available() -> Result<(), String> {
    std::thread::Builder::new()
        .name("uring-probe".into())
        .spawn(probe)
        .map_err(|e| format!("io_uring probe thread not started: {e}"))?
        .join()
        .unwrap_or_else(|_| Err("io_uring probe panicked".into()))
}

fn probe() -> Result<(), String> {
    if let Ok(value) = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled") {
        if value.trim() == "2" {
            return Err("io_uring is disabled (kernel.io_uring_disabled = 2)".into());
        }
    }
    let mut ring = IoUring::builder()
        .setup_submit_all()
        .build(16)
        .map_err(|e| setup_error(&e))?;
    let params = ring.params();
    if !params.is_feature_ext_arg() || !params.is_feature_nodrop() {
        return Err("io_uring lacks timed waits or no-drop completions (kernel too old)".into());
    }
    let mut probe = Probe::new();
    ring.submitter()
        .register_probe(&mut probe)
        .map_err(|e| format!("io_uring opcode probe failed: {e}"))?;
    let needed = [
        (opcode::Accept::CODE, "accept"),
        (opcode::PollAdd::CODE, "poll"),
        (opcode::Recv::CODE, "recv"),
        (opcode::SendMsg::CODE, "sendmsg"),
        (opcode::Close::CODE, "close"),
        (opcode::AsyncCancel::CODE, "cancel"),
        // Handing a connection to another worker's ring (uring/handover.rs); Linux 6.8.
        (opcode::FixedFdInstall::CODE, "fixed_fd_install"),
        (opcode::FilesUpdate::CODE, "files_update"),
    ];
    for (code, name) in needed {
        if !probe.is_supported(code) {
            return Err(format!("io_uring lacks the {name} opcode"));
        }
    }
    ring.submitter()
        .register_files_sparse(4)
        .map_err(|e| format!("io_uring sparse file table refused: {e}"))?;
    let mut buffers = Box::new(Buffers::new());
    let result = life_cycle(&mut ring, &mut buffers);
    if result.is_err() {
        // An operation may still own the buffers: keep them alive for the ring's lifetime.
        std::mem::forget(buffers);
    }
    result
}

fn setup_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => format!(
            "io_uring setup denied ({e}): kernel.io_uring_disabled or a seccomp/container policy"
        ),
        Some(libc::ENOSYS) => format!("io_uring unsupported or blocked by seccomp ({e})"),
        _ => format!("io_uring setup failed: {e}"),
    }
}

/// Memory the probe's receive and send use, boxed so it outlives a failed probe if it must.
struct Buffers {
    recv: [u8; 16],
    send: [u8; 1],
    iov: libc::iovec,
    msg: libc::msghdr,
}

impl Buffers {
    fn new() -> Buffers {
        Buffers {
            recv: [0; 16],
            send: [b'y'],
            iov: libc::iovec {
                iov_base: std::ptr::null_mut(),
                iov_len: 0,
            },
            // SAFETY: msghdr is plain old data; all-zero is a valid (empty) value.
            msg: unsafe { std::mem::zeroed() },
        }
    }
}

fn life_cycle(ring: &mut IoUring, buffers: &mut Buffers) -> Result<(), String> {
    let step = |what: &str, e: io::Error| format!("io_uring {what} failed: {e}");
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| step("probe listener", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| step("probe listener", e))?;
    let addr = listener
        .local_addr()
        .map_err(|e| step("probe listener", e))?;

    let accept = opcode::AcceptMulti::new(Fd(listener.as_raw_fd()))
        .allocate_file_index(true)
        .build()
        .user_data(ACCEPT);
    submit(ring, &accept)?;
    let mut client = TcpStream::connect(addr).map_err(|e| step("probe connect", e))?;
    client
        .set_read_timeout(Some(STEP_TIMEOUT))
        .map_err(|e| step("probe connect", e))?;
    let accepted = wait_for(ring, ACCEPT, "multishot accept into a direct descriptor")?;
    if accepted.result() < 0 || !cqueue::more(accepted.flags()) {
        return Err(os_error(
            "multishot accept into a direct descriptor",
            &accepted,
        ));
    }
    let index = accepted.result() as u32;

    let poll = opcode::PollAdd::new(Fixed(index), libc::POLLIN as u32)
        .multi(true)
        .build()
        .user_data(POLL);
    submit(ring, &poll)?;
    client.write_all(b"x").map_err(|e| step("probe write", e))?;
    let polled = wait_for(ring, POLL, "multishot poll of a direct descriptor")?;
    if polled.result() < 0 {
        return Err(os_error("multishot poll of a direct descriptor", &polled));
    }

    let recv = opcode::Recv::new(
        Fixed(index),
        buffers.recv.as_mut_ptr(),
        buffers.recv.len() as u32,
    )
    .flags(libc::MSG_DONTWAIT)
    .build()
    .user_data(RECV);
    submit(ring, &recv)?;
    let received = wait_for(ring, RECV, "recv from a direct descriptor")?;
    if received.result() != 1 || buffers.recv.first() != Some(&b'x') {
        return Err(os_error("recv from a direct descriptor", &received));
    }

    buffers.iov.iov_base = buffers.send.as_mut_ptr().cast();
    buffers.iov.iov_len = buffers.send.len();
    buffers.msg.msg_iov = &mut buffers.iov;
    buffers.msg.msg_iovlen = 1;
    let send = opcode::SendMsg::new(Fixed(index), &buffers.msg)
        .flags(libc::MSG_NOSIGNAL as u32)
        .build()
        .user_data(SEND);
    submit(ring, &send)?;
    let sent = wait_for(ring, SEND, "sendmsg on a direct descriptor")?;
    let mut echo = [0u8; 1];
    if sent.result() != 1 || client.read_exact(&mut echo).is_err() || echo != *b"y" {
        return Err(os_error("sendmsg on a direct descriptor", &sent));
    }

    let cancel = opcode::AsyncCancel2::new(CancelBuilder::fd(Fixed(index)).all())
        .build()
        .flags(squeue::Flags::IO_HARDLINK)
        .user_data(CANCEL);
    let close = opcode::Close::new(Fixed(index)).build().user_data(CLOSE);
    submit(ring, &cancel)?;
    submit(ring, &close)?;
    let closed = wait_for(ring, CLOSE, "cancel and close of a direct descriptor")?;
    if closed.result() < 0 {
        return Err(os_error("close of a direct descriptor", &closed));
    }
    let stop = opcode::AsyncCancel::new(ACCEPT).build().user_data(CANCEL);
    submit(ring, &stop)?;
    wait_for(ring, ACCEPT, "cancel of a multishot accept")?;
    Ok(())
}

fn os_error(what: &str, cqe: &cqueue::Entry) -> String {
    let res = cqe.result();
    if res < 0 {
        format!(
            "io_uring {what} failed: {}",
            io::Error::from_raw_os_error(-res)
        )
    } else {
        format!("io_uring {what} gave an unexpected result {res}")
    }
}

fn submit(ring: &mut IoUring, entry: &squeue::Entry) -> Result<(), String> {
    // SAFETY: every entry the probe submits points only into `Buffers`, which the caller keeps
    // alive until the operation completed (or leaks when the probe fails).
    unsafe { ring.submission().push(entry) }
        .map_err(|_| "io_uring probe queue full".to_string())?;
    ring.submit()
        .map(drop)
        .map_err(|e| format!("io_uring submit failed: {e}"))
}

/// Waits for the completion carrying `user_data`, skipping others, for at most one step.
fn wait_for(ring: &mut IoUring, user_data: u64, what: &str) -> Result<cqueue::Entry, String> {
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(cqe) = ring.completion().find(|c| c.user_data() == user_data) {
            return Ok(cqe);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!("io_uring {what} did not complete in time"));
        }
        let ts = Timespec::from(left);
        let args = SubmitArgs::new().timespec(&ts);
        match ring.submitter().submit_with_args(1, &args) {
            Ok(_) => {}
            Err(e) if matches!(e.raw_os_error(), Some(libc::ETIME) | Some(libc::EINTR)) => {}
            Err(e) => return Err(format!("io_uring wait failed: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_errors_name_the_likely_cause() {
        let denied = setup_error(&io::Error::from_raw_os_error(libc::EPERM));
        assert!(denied.contains("io_uring_disabled"), "{denied}");
        let missing = setup_error(&io::Error::from_raw_os_error(libc::ENOSYS));
        assert!(missing.contains("seccomp"), "{missing}");
    }

    #[test]
    fn the_probe_gives_a_verdict() {
        // Either verdict is valid on an unknown machine; an error must explain itself.
        if let Err(reason) = uring_available() {
            assert!(reason.starts_with("io_uring"), "{reason}");
        }
    }
}
