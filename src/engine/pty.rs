//! A run's pseudo-terminal (a script's `tty` mode): its stdout and stderr are the terminal's
//! slave side, so programs that look for a terminal (`isatty`) flush line by line and colour
//! their output; the server reads the master side as it would a pipe.
//!
//! The terminal is not the script's controlling terminal (the run keeps the process group the
//! supervisor gives it, and stdin stays /dev/null); it only stands in for the output pipes.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use nix::fcntl::{fcntl, FcntlArg, FdFlag, OFlag};
use nix::pty::{openpty, OpenptyResult, Winsize};
use nix::sys::termios::{self, OutputFlags, SetArg};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, ReadBuf};

/// The terminal's fixed size.
pub const COLUMNS: u16 = 160;
pub const ROWS: u16 = 50;
/// What `TERM` says when the script's environment does not set it.
pub const TERM: &str = "xterm-256color";

pub struct Pty {
    pub reader: PtyReader,
    /// The side the script writes to; the launcher hands it over as stdout and stderr.
    pub slave: OwnedFd,
}

pub fn open() -> io::Result<Pty> {
    let size = Winsize {
        ws_row: ROWS,
        ws_col: COLUMNS,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let OpenptyResult { master, slave } = openpty(&size, None)?;
    // Lines end in "\n" as on a pipe, not in the "\r\n" a terminal would make of them.
    let mut attrs = termios::tcgetattr(&slave)?;
    attrs.output_flags.remove(OutputFlags::ONLCR);
    termios::tcsetattr(&slave, SetArg::TCSANOW, &attrs)?;
    for fd in [&master, &slave] {
        fcntl(fd.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
    }
    fcntl(master.as_raw_fd(), FcntlArg::F_SETFL(OFlag::O_NONBLOCK))?;
    Ok(Pty {
        reader: PtyReader::new(master)?,
        slave,
    })
}

/// The master side, read without blocking a thread. Once every slave descriptor is closed
/// (the run's tree has ended) and what they wrote is read, a read fails with EIO, which
/// `read_lines` takes as the end.
pub struct PtyReader(AsyncFd<OwnedFd>);

impl PtyReader {
    #[allow(unsafe_code)]
    fn new(master: OwnedFd) -> io::Result<Self> {
        // SAFETY: an OwnedFd owns its descriptor, keeps it open until it is dropped (with the
        // AsyncFd that holds it) and always names the same one, as `register` requires.
        let fd = unsafe { AsyncFd::register_with_interest(master, tokio::io::Interest::READABLE) };
        fd.map(Self).map_err(io::Error::from)
    }
}

impl AsyncRead for PtyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        loop {
            let mut guard = ready!(self.0.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard.try_io(|fd| {
                nix::unistd::read(fd.get_ref().as_raw_fd(), unfilled).map_err(io::Error::from)
            }) {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}
