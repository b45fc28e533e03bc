//! Who holds a run slot and who waits for one: the concurrency rules (`single`, `queue`,
//! `parallel`, and the global limit), kept as plain data under the engine's lock.

use std::collections::{HashMap, VecDeque};

use tokio_util::sync::CancellationToken;

use crate::domain::{Concurrency, ScriptDefinition, Trigger};

/// A run waiting for a slot.
pub struct Pending {
    pub run_id: String,
    pub script: ScriptDefinition,
    pub trigger: Trigger,
    pub input: Option<serde_json::Value>,
}

#[derive(Default)]
pub struct Slots {
    running: usize,
    by_script: HashMap<String, usize>,
    pending: VecDeque<Pending>,
    /// Run id → (script id, cancel token) of every run holding a slot.
    active: HashMap<String, (String, CancellationToken)>,
    pub closed: bool,
}

impl Slots {
    /// Whether a `single` script may not start another run: one is running or waiting.
    pub fn is_busy(&self, script_id: &str) -> bool {
        self.by_script.get(script_id).copied().unwrap_or(0) > 0
            || self.pending.iter().any(|p| p.script.id == script_id)
    }

    pub fn enqueue(&mut self, p: Pending) {
        self.pending.push_back(p);
    }

    /// Takes every pending run the limits allow now, in order, and gives each a slot. A
    /// `queue` script whose previous run still holds a slot waits without blocking others.
    pub fn take_ready(&mut self, max_running: usize) -> Vec<(Pending, CancellationToken)> {
        let mut ready = Vec::new();
        let mut i = 0;
        while self.running < max_running && i < self.pending.len() {
            let p = &self.pending[i];
            if p.script.concurrency == Concurrency::Queue
                && self.by_script.get(&p.script.id).copied().unwrap_or(0) > 0
            {
                i += 1;
                continue;
            }
            let Some(p) = self.pending.remove(i) else {
                break;
            };
            self.running += 1;
            *self.by_script.entry(p.script.id.clone()).or_default() += 1;
            let token = CancellationToken::new();
            self.active
                .insert(p.run_id.clone(), (p.script.id.clone(), token.clone()));
            ready.push((p, token));
        }
        ready
    }

    /// Frees the slot a run held.
    pub fn release(&mut self, run_id: &str, script_id: &str) {
        self.running -= 1;
        if let Some(n) = self.by_script.get_mut(script_id) {
            *n -= 1;
            if *n == 0 {
                self.by_script.remove(script_id);
            }
        }
        self.active.remove(run_id);
    }

    /// Removes a waiting run; true if it was waiting.
    pub fn remove_pending(&mut self, run_id: &str) -> bool {
        match self.pending.iter().position(|p| p.run_id == run_id) {
            Some(pos) => {
                self.pending.remove(pos);
                true
            }
            None => false,
        }
    }

    /// Signals a running run to stop; true if it holds a slot here.
    pub fn cancel_active(&self, run_id: &str) -> bool {
        match self.active.get(run_id) {
            Some((_, token)) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// Takes a script's waiting runs out and signals its running ones.
    pub fn cancel_script(&mut self, script_id: &str) -> Vec<Pending> {
        let (dropped, kept): (Vec<Pending>, Vec<Pending>) = self
            .pending
            .drain(..)
            .partition(|p| p.script.id == script_id);
        self.pending = kept.into();
        for (owner, token) in self.active.values() {
            if owner == script_id {
                token.cancel();
            }
        }
        dropped
    }

    pub fn has_active(&self, script_id: &str) -> bool {
        self.active.values().any(|(owner, _)| owner == script_id)
    }

    /// Closes to new runs: signals every running run and returns the waiting ones.
    pub fn close(&mut self) -> Vec<Pending> {
        self.closed = true;
        for (_, token) in self.active.values() {
            token.cancel();
        }
        self.pending.drain(..).collect()
    }

    /// Runs holding a slot, and runs waiting for one.
    pub fn load(&self) -> (usize, usize) {
        (self.running, self.pending.len())
    }
}
