//! Argon2 verifications on two dedicated threads. Each one takes ~19 MiB and tens of
//! milliseconds by design; running them on the async runtime's blocking pool let a flood of
//! wrong passwords hash hundreds at once. Two threads bound the CPU, and each thread hashes in
//! one memory area it keeps (the allocator would otherwise keep ~19 MiB more after every hash),
//! so the memory stays what two hashes need, whatever arrives.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use subtle::ConstantTimeEq;
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
    let mut memory: Vec<Block> = Vec::new();
    loop {
        // The lock is held only while waiting for the next job, never while hashing.
        let job = match rx.lock() {
            Ok(rx) => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(_) => return,
        };
        let ok = verify(&job.hash, job.password.as_bytes(), &mut memory).unwrap_or(false);
        let _ = job.reply.send(ok);
    }
}

/// What `PasswordVerifier::verify_password` does, in `memory` (grown once to the hash's size
/// and kept).
fn verify(phc: &str, password: &[u8], memory: &mut Vec<Block>) -> Option<bool> {
    let hash = PasswordHash::new(phc).ok()?;
    let params = Params::try_from(&hash).ok()?;
    let algorithm = Algorithm::try_from(hash.algorithm).ok()?;
    let version = hash
        .version
        .map_or(Ok(Version::default()), Version::try_from)
        .ok()?;
    let expected = hash.hash?;
    let mut salt = [0u8; 64];
    let salt = hash.salt?.decode_b64(&mut salt).ok()?;
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::default());
    }
    let blocks = params.block_count();
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password, salt, &mut out, &mut memory[..blocks])
        .ok()?;
    Some(bool::from(out.as_slice().ct_eq(expected.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, SaltString};

    #[test]
    fn verifies_like_argon2_itself() {
        let salt = SaltString::generate(&mut rand::rngs::OsRng);
        let phc = Argon2::default()
            .hash_password(b"right", &salt)
            .unwrap()
            .to_string();
        let mut memory = Vec::new();
        assert_eq!(verify(&phc, b"right", &mut memory), Some(true));
        assert_eq!(verify(&phc, b"wrong", &mut memory), Some(false));
        assert_eq!(verify("not a hash", b"right", &mut memory), None);
    }
}
