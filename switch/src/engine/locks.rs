//! The bounded in-flight table: one async lock per transaction key.
//!
//! Every request that may change a transaction (pay, cancel, refund, a query that asks
//! upstream) holds its key's lock while it reads the journal, calls upstream and journals the
//! outcome. A duplicate that arrives meanwhile waits on the same lock and then finds the
//! journaled answer: one upstream call serves every duplicate (coalescing), and refunds of one
//! payment are serialized, so each reservation is checked against the previous one's result.
//!
//! The table holds an entry only while someone holds or awaits its lock, and at most `max`
//! entries: a request for a new key beyond that is refused at once ([`Full`]), before anything
//! is journaled.

use std::sync::Arc;

use dashmap::mapref::entry::Entry;
use dashmap::DashMap;
use ledger::TxnKey;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The table is at its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// Per-key locks, bounded.
#[derive(Debug)]
pub struct Locks {
    map: DashMap<TxnKey, Arc<Mutex<()>>>,
    max: usize,
}

/// A held lock; dropping it releases the key (and the entry, if nobody waits).
#[derive(Debug)]
pub struct Held<'l> {
    locks: &'l Locks,
    key: TxnKey,
    slot: Arc<Mutex<()>>,
    guard: Option<OwnedMutexGuard<()>>,
    /// True when the lock was busy and this request waited for another.
    pub waited: bool,
}

impl Locks {
    /// A table of at most `max` keys.
    pub fn new(max: usize) -> Locks {
        Locks {
            map: DashMap::new(),
            max: max.max(1),
        }
    }

    /// Keys currently held or awaited.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no key is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Waits for `key`'s lock. Refuses at once when the key is new and the table is full.
    pub async fn lock(&self, key: &TxnKey) -> Result<Held<'_>, Full> {
        let slot = match self.map.entry(key.clone()) {
            Entry::Occupied(e) => Arc::clone(e.get()),
            Entry::Vacant(v) => {
                // `len` reads every shard; a vacant entry holds one shard's write lock, which
                // `len` would wait for — so count before inserting through a separate check.
                drop(v);
                if self.map.len() >= self.max {
                    return Err(Full);
                }
                let entry = self
                    .map
                    .entry(key.clone())
                    .or_insert_with(|| Arc::new(Mutex::new(())));
                Arc::clone(entry.value())
            }
        };
        let (guard, waited) = match Arc::clone(&slot).try_lock_owned() {
            Ok(g) => (g, false),
            Err(_) => (Arc::clone(&slot).lock_owned().await, true),
        };
        Ok(Held {
            locks: self,
            key: key.clone(),
            slot,
            guard: Some(guard),
            waited,
        })
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        // The map's reference and ours: nobody else holds or awaits this key.
        self.locks
            .map
            .remove_if(&self.key, |_, slot| Arc::strong_count(slot) == 2);
        let _ = &self.slot;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(n: u32) -> TxnKey {
        TxnKey::new("m", format!("t{n}"))
    }

    #[tokio::test]
    async fn entries_go_away_when_released() {
        let locks = Locks::new(4);
        {
            let _a = locks.lock(&key(1)).await.unwrap();
            assert_eq!(locks.len(), 1);
        }
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn a_new_key_beyond_the_bound_is_refused() {
        let locks = Locks::new(2);
        let _a = locks.lock(&key(1)).await.unwrap();
        let _b = locks.lock(&key(2)).await.unwrap();
        assert_eq!(locks.lock(&key(3)).await.unwrap_err(), Full);
    }

    #[tokio::test]
    async fn a_duplicate_waits_for_the_holder() {
        let locks = Arc::new(Locks::new(4));
        let first = locks.lock(&key(1)).await.unwrap();
        assert!(!first.waited);
        let l2 = Arc::clone(&locks);
        let waiter = tokio::spawn(async move {
            let held = l2.lock(&key(1)).await.unwrap();
            held.waited
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(first);
        assert!(waiter.await.unwrap());
        assert!(locks.is_empty());
    }
}
