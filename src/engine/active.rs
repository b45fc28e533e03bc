//! The runs this node executes right now: its capacity, and the handle that stops each one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How long a cancel for a run not (yet) here is remembered: it may arrive between the claim
/// committing and the run being registered.
const EARLY_CANCEL_KEPT: Duration = Duration::from_secs(30);

#[derive(Default)]
pub struct Active {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    runs: HashMap<String, Entry>,
    /// Slots held for runs being admitted here, which may start at once (see `reserve`).
    reserved: usize,
    early_cancels: HashMap<String, Instant>,
    closed: bool,
}

struct Entry {
    stop: CancellationToken,
    since: Instant,
    /// Its end is being recorded: no longer held in the store, and that is expected.
    finishing: bool,
}

impl Active {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("active runs lock")
    }

    /// Holds up to `want` free slots: for a run this node is admitting, which may start here
    /// at once, or for the runs a claim may bring. Held before the store is asked, so that an
    /// admission and a claim running at the same time cannot both count the same free slot.
    /// Each slot is freed when its reservation is dropped unless a run took it
    /// (`Reservation::take`).
    pub fn reserve(&self, capacity: usize, want: usize) -> Vec<Reservation<'_>> {
        let mut s = self.state();
        if s.closed {
            return Vec::new();
        }
        let free = capacity.saturating_sub(s.runs.len() + s.reserved).min(want);
        s.reserved += free;
        (0..free).map(|_| Reservation { active: self }).collect()
    }

    fn insert(s: &mut State, run_id: &str) -> CancellationToken {
        let stop = CancellationToken::new();
        if s.early_cancels.remove(run_id).is_some() || s.closed {
            stop.cancel();
        }
        s.runs.insert(
            run_id.to_string(),
            Entry {
                stop: stop.clone(),
                since: Instant::now(),
                finishing: false,
            },
        );
        stop
    }

    /// The run's end is about to be recorded.
    pub fn finishing(&self, run_id: &str) {
        if let Some(e) = self.state().runs.get_mut(run_id) {
            e.finishing = true;
        }
    }

    pub fn release(&self, run_id: &str) {
        self.state().runs.remove(run_id);
    }

    /// Stops the run if it executes here, or remembers the cancel for a moment in case it is
    /// about to.
    pub fn cancel(&self, run_id: &str) {
        let mut s = self.state();
        if let Some(e) = s.runs.get(run_id) {
            e.stop.cancel();
            return;
        }
        let now = Instant::now();
        s.early_cancels
            .retain(|_, at| now.duration_since(*at) < EARLY_CANCEL_KEPT);
        s.early_cancels.insert(run_id.to_string(), now);
    }

    /// Runs registered before `t` and not yet ending.
    pub fn held_before(&self, t: Instant) -> Vec<String> {
        let s = self.state();
        s.runs
            .iter()
            .filter(|(_, e)| e.since < t && !e.finishing)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Stops taking runs and stops every run here.
    pub fn close(&self) {
        let mut s = self.state();
        s.closed = true;
        for e in s.runs.values() {
            e.stop.cancel();
        }
    }

    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    pub fn len(&self) -> usize {
        self.state().runs.len()
    }
}

/// A slot held for a run being admitted or claimed (see `Active::reserve`).
pub struct Reservation<'a> {
    active: &'a Active,
}

impl Reservation<'_> {
    /// The run starts here: it takes the slot (the reservation's end then frees the count it
    /// held).
    pub fn take(self, run_id: &str) -> CancellationToken {
        Active::insert(&mut self.active.state(), run_id)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.active.state().reserved -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_claim_and_an_admission_never_hold_the_same_free_slot() {
        let active = Active::default();
        // A claim holds every free slot while it asks the store...
        let claim = active.reserve(2, 16);
        assert_eq!(claim.len(), 2);
        // ...so an admission meanwhile finds none and queues its run.
        assert!(active.reserve(2, 1).is_empty());
        // The claim brought one run: it keeps that slot and frees the other.
        let mut claim = claim.into_iter();
        let _stop = claim.next().unwrap().take("claimed");
        drop(claim);
        assert_eq!(active.len(), 1);
        let admitted = active.reserve(2, 1);
        assert_eq!(admitted.len(), 1);
        assert!(active.reserve(2, 16).is_empty());
        drop(admitted);
        assert_eq!(active.reserve(2, 16).len(), 1);
    }
}
