//! A wake-up socket for event loops that watch file descriptors (asyncio's `add_reader`,
//! libuv, epoll): [`wake_pipe`] makes a connected, non-blocking pair; the change or wake hook
//! calls [`WakeWriter::wake`] (one byte, never blocks, no lock), the loop watches
//! [`WakeReader::fd`] and calls [`WakeReader::drain`] when it turns readable. Unix only;
//! elsewhere [`wake_pipe`] says so and the binding wakes its loop another way.

/// The end the event loop watches.
#[derive(Debug)]
pub struct WakeReader {
    #[cfg(unix)]
    stream: std::os::unix::net::UnixStream,
}

/// The end a hook writes to.
#[derive(Debug)]
pub struct WakeWriter {
    #[cfg(unix)]
    stream: std::os::unix::net::UnixStream,
}

/// A new wake-up pair (both ends non-blocking). `Err(Unsupported)` where there are no Unix
/// sockets.
pub fn wake_pipe() -> std::io::Result<(WakeReader, WakeWriter)> {
    #[cfg(unix)]
    {
        let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
        reader.set_nonblocking(true)?;
        writer.set_nonblocking(true)?;
        Ok((WakeReader { stream: reader }, WakeWriter { stream: writer }))
    }
    #[cfg(not(unix))]
    {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

impl WakeReader {
    /// The file descriptor to watch for readability (-1 where there is none).
    pub fn fd(&self) -> i64 {
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            i64::from(self.stream.as_raw_fd())
        }
        #[cfg(not(unix))]
        {
            -1
        }
    }

    /// Read every pending wake-up byte (never blocks); true if there was one.
    pub fn drain(&self) -> bool {
        let mut woken = false;
        #[cfg(unix)]
        {
            use std::io::Read;
            let mut buf = [0u8; 256];
            while let Ok(n) = (&self.stream).read(&mut buf) {
                woken |= n > 0;
                if n < buf.len() {
                    break;
                }
            }
        }
        woken
    }
}

impl WakeWriter {
    /// Make the reader readable. Never blocks: a full socket already holds a wake-up the loop
    /// has not read, so nothing is added.
    pub fn wake(&self) {
        #[cfg(unix)]
        {
            use std::io::Write;
            let _ = (&self.stream).write(&[1]);
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_wake_makes_the_reader_readable_once_and_never_blocks() {
        let (reader, writer) = wake_pipe().expect("pair");
        assert!(!reader.drain(), "nothing written yet");
        for _ in 0..100_000 {
            writer.wake(); // fills the socket buffer: must not block
        }
        assert!(reader.drain());
        assert!(!reader.drain(), "drained");
        writer.wake();
        assert!(reader.drain());
        assert!(reader.fd() >= 0);
    }
}
