//! Frames waiting to be written, sans-IO: the caller gathers them into
//! `IoSlice`s for one vectored write and reports how much the socket took.
//! Both ends use it, so an idle connection holds no write buffer: when the
//! queue empties its memory is given back.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::Bytes;

#[derive(Debug, Default)]
pub struct WriteQueue {
    frames: VecDeque<Bytes>,
    /// Bytes of the front frame already written.
    offset: usize,
}

impl WriteQueue {
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn push(&mut self, frame: Bytes) {
        self.frames.push_back(frame);
    }

    /// Takes a whole batch at once (the server's outbox hands over its
    /// queue); only valid while empty, else appends.
    pub fn extend(&mut self, frames: VecDeque<Bytes>) {
        if self.frames.is_empty() {
            self.frames = frames;
        } else {
            self.frames.extend(frames);
        }
    }

    /// Fills `slices` from the front; returns how many are used.
    pub fn io_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut count = 0;
        for (slot, frame) in slices.iter_mut().zip(&self.frames) {
            let skip = if count == 0 { self.offset } else { 0 };
            *slot = IoSlice::new(&frame[skip..]);
            count += 1;
        }
        count
    }

    /// Records that the socket took `written` bytes.
    pub fn advance(&mut self, mut written: usize) {
        while let Some(front) = self.frames.front() {
            let left = front.len() - self.offset;
            if written < left {
                self.offset += written;
                return;
            }
            written -= left;
            self.offset = 0;
            self.frames.pop_front();
        }
        if self.frames.capacity() > 0 {
            self.frames = VecDeque::new();
        }
    }

    /// Drops every frame not yet started, so a close frame can follow a
    /// partly written one without corrupting the stream.
    pub fn abandon_unsent(&mut self) {
        let keep = usize::from(self.offset > 0);
        self.frames.truncate(keep);
    }

    /// Writes as much as `write` takes, until it would block (`Ok(false)`
    /// while frames remain) or the queue is empty (`Ok(true)`). `write` is
    /// a non-blocking vectored write such as `TcpStream::try_write_vectored`;
    /// `on_written` sees every byte count it returns.
    pub fn write_with(
        &mut self,
        mut write: impl FnMut(&[IoSlice<'_>]) -> std::io::Result<usize>,
        mut on_written: impl FnMut(usize),
    ) -> std::io::Result<bool> {
        const BATCH: usize = 64;
        while !self.frames.is_empty() {
            let mut slices = [IoSlice::new(&[]); BATCH];
            let count = self.io_slices(&mut slices);
            match write(&slices[..count]) {
                Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    on_written(n);
                    self.advance(n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_writes_resume_mid_frame() {
        let mut q = WriteQueue::default();
        q.push(Bytes::from_static(b"abc"));
        q.push(Bytes::from_static(b"defg"));
        let mut out = Vec::new();
        // a socket that takes 2 bytes, then blocks
        let mut budget = 2;
        let done = q
            .write_with(
                |slices| {
                    if budget == 0 {
                        return Err(std::io::ErrorKind::WouldBlock.into());
                    }
                    let all: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
                    let n = budget.min(all.len());
                    out.extend_from_slice(&all[..n]);
                    budget -= n;
                    Ok(n)
                },
                |_| {},
            )
            .unwrap();
        assert!(!done);
        assert_eq!(out, b"ab");
        q.abandon_unsent();
        assert_eq!(q.len(), 1);
        let mut rest = Vec::new();
        assert!(q
            .write_with(
                |slices| {
                    let all: Vec<u8> = slices.iter().flat_map(|s| s.iter().copied()).collect();
                    rest.extend_from_slice(&all);
                    Ok(all.len())
                },
                |_| {},
            )
            .unwrap());
        assert_eq!(rest, b"c");
        assert!(q.is_empty());
    }
}
