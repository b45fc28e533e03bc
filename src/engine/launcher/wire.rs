//! What the server and its launcher say to each other: length-prefixed frames of fixed-width
//! integers and length-prefixed byte strings, so that programs, arguments, paths and
//! environment pass byte for byte (none of them need be UTF-8).

/// A frame larger than this is refused: no request comes near it (scripts and inputs over
/// 64 KiB travel in files).
const MAX_FRAME: usize = 64 * 1024 * 1024;

/// Start a process; it travels with three descriptors (see `Kind`).
#[derive(Debug, PartialEq)]
pub struct Spawn {
    pub id: u64,
    pub kind: Kind,
    pub grace_ms: u64,
    pub program: Vec<u8>,
    pub cwd: Vec<u8>,
    pub args: Vec<Vec<u8>>,
    /// `KEY=value` entries: the script's whole environment.
    pub env: Vec<Vec<u8>>,
}

/// What a spawn starts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    /// The program itself, on the three descriptors given as its stdin, stdout and stderr.
    Exec,
    /// A run's supervisor, which starts the program as the script: the descriptors are the
    /// write ends of the run's stdout and stderr pipes and of the pipe the supervisor reports
    /// the script's end on.
    Supervised,
    /// An isolated worker, forked without an exec (the program, arguments and environment are
    /// not used), on the three descriptors given as its stdin, stdout and stderr.
    Worker,
}

#[derive(Debug, PartialEq)]
pub enum Request {
    Spawn(Spawn),
    /// Send a signal to a run's supervisor, if it has not been reaped yet.
    Signal {
        id: u64,
        signal: i32,
    },
}

#[derive(Debug, PartialEq)]
pub enum Reply {
    Started {
        id: u64,
        pid: i32,
    },
    Failed {
        id: u64,
        error: String,
    },
    /// The supervisor was reaped; `status` is the raw wait status.
    Exited {
        id: u64,
        status: i32,
    },
}

impl Spawn {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        w.u8(1);
        w.u64(self.id);
        w.u8(match self.kind {
            Kind::Exec => 0,
            Kind::Supervised => 1,
            Kind::Worker => 2,
        });
        w.u64(self.grace_ms);
        w.bytes(&self.program);
        w.bytes(&self.cwd);
        w.list(&self.args);
        w.list(&self.env);
        w.frame()
    }
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Request::Spawn(s) => s.encode(),
            Request::Signal { id, signal } => {
                let mut w = Writer::default();
                w.u8(2);
                w.u64(*id);
                w.i32(*signal);
                w.frame()
            }
        }
    }

    pub fn decode(body: &[u8]) -> Option<Self> {
        let mut r = Reader(body);
        let request = match r.u8()? {
            1 => Request::Spawn(Spawn {
                id: r.u64()?,
                kind: match r.u8()? {
                    0 => Kind::Exec,
                    1 => Kind::Supervised,
                    2 => Kind::Worker,
                    _ => return None,
                },
                grace_ms: r.u64()?,
                program: r.bytes()?,
                cwd: r.bytes()?,
                args: r.list()?,
                env: r.list()?,
            }),
            2 => Request::Signal {
                id: r.u64()?,
                signal: r.i32()?,
            },
            _ => return None,
        };
        r.0.is_empty().then_some(request)
    }
}

/// A process's end as a raw wait status (what `ExitStatus::from_raw` reads): how the launcher
/// reports a supervisor's end and a supervisor its script's. None for a stop or a resume.
pub fn raw_status(status: &nix::sys::wait::WaitStatus) -> Option<i32> {
    use nix::sys::wait::WaitStatus;
    match *status {
        WaitStatus::Exited(_, code) => Some((code & 0xff) << 8),
        WaitStatus::Signaled(_, sig, core) => Some(sig as i32 | if core { 0x80 } else { 0 }),
        _ => None,
    }
}

impl Reply {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::default();
        match self {
            Reply::Started { id, pid } => {
                w.u8(1);
                w.u64(*id);
                w.i32(*pid);
            }
            Reply::Failed { id, error } => {
                w.u8(2);
                w.u64(*id);
                w.bytes(error.as_bytes());
            }
            Reply::Exited { id, status } => {
                w.u8(3);
                w.u64(*id);
                w.i32(*status);
            }
        }
        w.frame()
    }

    pub fn decode(body: &[u8]) -> Option<Self> {
        let mut r = Reader(body);
        let reply = match r.u8()? {
            1 => Reply::Started {
                id: r.u64()?,
                pid: r.i32()?,
            },
            2 => Reply::Failed {
                id: r.u64()?,
                error: String::from_utf8_lossy(&r.bytes()?).into_owned(),
            },
            3 => Reply::Exited {
                id: r.u64()?,
                status: r.i32()?,
            },
            _ => return None,
        };
        r.0.is_empty().then_some(reply)
    }
}

/// Takes the first whole frame's body off `buf`. `Err` if the stream cannot be a sequence of
/// frames (the peer is not what it should be).
pub fn take_frame(buf: &mut Vec<u8>) -> Result<Option<Vec<u8>>, ()> {
    let Some(head) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(head.try_into().map_err(|_| ())?) as usize;
    if len > MAX_FRAME {
        return Err(());
    }
    if buf.len() < 4 + len {
        return Ok(None);
    }
    let body = buf[4..4 + len].to_vec();
    buf.drain(..4 + len);
    Ok(Some(body))
}

#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i32(&mut self, v: i32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, v: &[u8]) {
        self.0.extend_from_slice(&(v.len() as u32).to_le_bytes());
        self.0.extend_from_slice(v);
    }
    fn list(&mut self, items: &[Vec<u8>]) {
        self.0
            .extend_from_slice(&(items.len() as u32).to_le_bytes());
        for item in items {
            self.bytes(item);
        }
    }
    fn frame(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.0.len());
        out.extend_from_slice(&(self.0.len() as u32).to_le_bytes());
        out.extend_from_slice(&self.0);
        out
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i32(&mut self) -> Option<i32> {
        Some(i32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<Vec<u8>> {
        let len = self.u32()? as usize;
        Some(self.take(len)?.to_vec())
    }
    fn list(&mut self) -> Option<Vec<Vec<u8>>> {
        let count = self.u32()? as usize;
        // Each item takes at least its 4-byte length: a count beyond that is a lie.
        if count > self.0.len() / 4 {
            return None;
        }
        (0..count).map(|_| self.bytes()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_survive_the_wire_byte_for_byte() {
        let spawn = Request::Spawn(Spawn {
            id: 7,
            kind: Kind::Supervised,
            grace_ms: 5000,
            program: b"/bin/bash".to_vec(),
            cwd: vec![b'/', 0xff, b'x'],
            args: vec![b"-lc".to_vec(), "echo é\n".as_bytes().to_vec(), vec![]],
            env: vec![b"A=1".to_vec(), b"B=".to_vec()],
        });
        let mut buf = spawn.encode();
        buf.extend(Request::Signal { id: 7, signal: 15 }.encode());
        buf.extend_from_slice(&[9, 0]);
        let first = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!(Request::decode(&first), Some(spawn));
        let second = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!(
            Request::decode(&second),
            Some(Request::Signal { id: 7, signal: 15 })
        );
        assert_eq!(take_frame(&mut buf), Ok(None), "a partial frame waits");

        for reply in [
            Reply::Started { id: 1, pid: 42 },
            Reply::Failed {
                id: 2,
                error: "fork: EAGAIN".into(),
            },
            Reply::Exited { id: 3, status: 9 },
        ] {
            let mut buf = reply.encode();
            let body = take_frame(&mut buf).unwrap().unwrap();
            assert_eq!(Reply::decode(&body), Some(reply));
        }
    }

    #[test]
    fn malformed_frames_are_refused() {
        let mut huge = ((MAX_FRAME + 1) as u32).to_le_bytes().to_vec();
        assert_eq!(take_frame(&mut huge), Err(()));
        // A list that claims more items than its bytes could hold.
        let mut w = Writer::default();
        w.u8(1);
        w.u64(1);
        w.u8(1);
        w.u64(1);
        w.bytes(b"p");
        w.bytes(b"/");
        w.0.extend_from_slice(&u32::MAX.to_le_bytes());
        let mut buf = w.frame();
        let body = take_frame(&mut buf).unwrap().unwrap();
        assert_eq!(Request::decode(&body), None);
        assert_eq!(Request::decode(&[1, 2, 3]), None);
        assert_eq!(Reply::decode(&[]), None);
    }
}
