//! Argon2 verifications on two dedicated threads. Each one takes ~19 MiB and tens of
//! milliseconds by design; running them on the async runtime's blocking pool let a flood of
//! wrong passwords hash hundreds at once (and leave that memory behind in as many allocator
//! arenas). Two threads bound both the CPU and the memory, whatever arrives.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::{PasswordHash, PasswordVerifier};
use argon2::Argon2;
use tokio::sync::oneshot;

const THREADS: usize = 2;
/// Verifications waiting for a thread; beyond this, attempts are turned away as busy.
const QUEUE: usize = 64;

struct Job {
    hash: Arc<str>,
    password: String,
    reply: oneshot::Sender<bool>,
}

pub struct SlowHash {
    jobs: SyncSender<Job>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Verification {
    Matches,
    DoesNotMatch,
    /// Too many verifications are waiting.
    Busy,
}

impl SlowHash {
    pub fn start() -> Self {
        let (jobs, rx) = sync_channel::<Job>(QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("scriptd-argon2-{i}"))
                .spawn(move || work(&rx));
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a password-hashing thread");
            }
        }
        Self { jobs }
    }

    pub async fn verify(&self, hash: Arc<str>, password: String) -> Verification {
        let (reply, answer) = oneshot::channel();
        match self.jobs.try_send(Job {
            hash,
            password,
            reply,
        }) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => return Verification::Busy,
            Err(TrySendError::Disconnected(_)) => return Verification::DoesNotMatch,
        }
        match answer.await {
            Ok(true) => Verification::Matches,
            _ => Verification::DoesNotMatch,
        }
    }
}

fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let job = match rx.lock() {
            Ok(rx) => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let ok = PasswordHash::new(&job.hash).is_ok_and(|parsed| {
            Argon2::default()
                .verify_password(job.password.as_bytes(), &parsed)
                .is_ok()
        });
        let _ = job.reply.send(ok);
    }
}
