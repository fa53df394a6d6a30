//! The frames between the emulator and a host's executor on their `SOCK_SEQPACKET`
//! socket pair: a kind byte, a script id, a payload, and (on the frame that starts a
//! script) the write ends of the script's stdout and stderr pipes as `SCM_RIGHTS`.
//!
//! A script's description (program, arguments, environment) can exceed what one
//! datagram may carry, so it travels as [`Kind::SpecChunk`] frames closed by a
//! [`Kind::Start`] frame; frames of different scripts may interleave.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

/// Payload bytes per frame, well below the default socket buffer (≈ 208 KiB) that
/// bounds one datagram.
pub(super) const CHUNK: usize = 32 * 1024;

const HEADER: usize = 9;

/// What a frame says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// Emulator → executor: part of a script's [`Spec`] (JSON).
    SpecChunk = 1,
    /// Emulator → executor: the spec is complete, start the script; carries the pipes.
    Start = 2,
    /// Emulator → executor: kill the script (and everything it started).
    Kill = 3,
    /// Executor → emulator: the sandbox is built, scripts may come.
    Ready = 10,
    /// Executor → emulator: the sandbox could not be built (payload: why).
    SetupFailed = 11,
    /// Executor → emulator: the script could not be started (payload: why).
    StartFailed = 12,
    /// Executor → emulator: the script ended (payload: its raw wait status, i32 LE).
    Exited = 13,
}

impl Kind {
    fn from_byte(byte: u8) -> Option<Kind> {
        Some(match byte {
            1 => Kind::SpecChunk,
            2 => Kind::Start,
            3 => Kind::Kill,
            10 => Kind::Ready,
            11 => Kind::SetupFailed,
            12 => Kind::StartFailed,
            13 => Kind::Exited,
            _ => return None,
        })
    }
}

/// A script as the executor starts it: everything but its standard streams.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Spec {
    /// Absolute path of the interpreter inside the sandbox.
    pub program: String,
    /// Its arguments (the script's path inside the sandbox first).
    pub args: Vec<String>,
    /// The whole environment of the script.
    pub env: Vec<(String, String)>,
}

/// One received frame.
pub(super) struct Frame {
    pub kind: Kind,
    pub id: u64,
    pub payload: Vec<u8>,
    pub fds: Vec<OwnedFd>,
}

/// Sends one frame; `fds` are duplicated into the receiver.
pub(super) fn send(
    socket: BorrowedFd<'_>,
    kind: Kind,
    id: u64,
    payload: &[u8],
    fds: &[BorrowedFd<'_>],
) -> std::io::Result<()> {
    let mut header = [0u8; HEADER];
    header[0] = kind as u8;
    header[1..].copy_from_slice(&id.to_le_bytes());
    let iov = [IoSlice::new(&header), IoSlice::new(payload)];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "too many descriptors for one frame",
        ));
    }
    rustix::net::sendmsg(socket, &iov, &mut control, SendFlags::NOSIGNAL)?;
    Ok(())
}

/// Receives one frame, or `None` when the peer is gone (or sent nonsense, which is
/// treated the same: the channel is closed).
pub(super) fn recv(socket: impl AsFd) -> std::io::Result<Option<Frame>> {
    let mut header = [0u8; HEADER];
    let mut payload = vec![0u8; CHUNK + 1024];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = loop {
        let mut iov = [IoSliceMut::new(&mut header), IoSliceMut::new(&mut payload)];
        match rustix::net::recvmsg(&socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
            Ok(received) => break received,
            Err(rustix::io::Errno::INTR) => continue,
            Err(errno) => return Err(errno.into()),
        }
    };
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    if received.bytes < HEADER {
        return Ok(None);
    }
    let Some(kind) = Kind::from_byte(header[0]) else {
        return Ok(None);
    };
    let mut id = [0u8; 8];
    id.copy_from_slice(&header[1..]);
    payload.truncate(received.bytes - HEADER);
    Ok(Some(Frame {
        kind,
        id: u64::from_le_bytes(id),
        payload,
        fds,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_kind_id_payload_and_descriptors() {
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )
        .unwrap();
        let (reader, writer) = std::io::pipe().unwrap();
        send(a.as_fd(), Kind::Start, 42, b"spec", &[writer.as_fd()]).unwrap();
        drop(writer);
        let frame = recv(&b).unwrap().unwrap();
        assert_eq!(frame.kind, Kind::Start);
        assert_eq!(frame.id, 42);
        assert_eq!(frame.payload, b"spec");
        assert_eq!(frame.fds.len(), 1);
        // The received descriptor is the pipe: writing through it reaches the reader.
        let mut writer = std::fs::File::from(frame.fds.into_iter().next().unwrap());
        std::io::Write::write_all(&mut writer, b"hi").unwrap();
        drop(writer);
        let mut text = String::new();
        std::io::Read::read_to_string(&mut { reader }, &mut text).unwrap();
        assert_eq!(text, "hi");
        drop(a);
        assert!(recv(&b).unwrap().is_none());
    }
}
