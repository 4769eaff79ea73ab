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
//!
//! Admission has lanes ([`Lane`]): a new pay may claim a key only while the table is below its
//! pay share; the rest is kept for the work that finishes transactions (the resolver's cancels
//! and queries, merchants' queries, cancels and refunds), which an overload of new pays can
//! therefore never starve.

use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ledger::TxnKey;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// Why a lock was not taken. Either way nothing was journaled or sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The key is new and the table is at its bound.
    Full,
    /// Another request held the key for longer than the wait allowed.
    Timeout,
}

/// What a claim is for: the admission lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// A new pay: admitted only below the pay share of the table.
    Pay,
    /// Everything that finishes or reads a transaction: queries, cancels, refunds, the
    /// resolver. Admitted up to the whole table.
    Finish,
}

/// One key's lock and how many requests hold or await it.
#[derive(Debug)]
struct Slot {
    mutex: Arc<Mutex<()>>,
    users: usize,
}

/// Per-key locks, bounded.
#[derive(Debug)]
pub struct Locks {
    map: DashMap<TxnKey, Slot>,
    max: usize,
    pay_max: usize,
}

/// A claim on a key: counted from before the wait, so a request cancelled while waiting (its
/// client gone) still gives its claim back. Dropping it releases the lock and, for the last
/// user, the entry.
#[derive(Debug)]
pub struct Held<'l> {
    locks: &'l Locks,
    key: TxnKey,
    guard: Option<OwnedMutexGuard<()>>,
    /// True when the lock was busy and this request waited for another.
    pub waited: bool,
}

impl Locks {
    /// A table of at most `max` keys, of which new pays may claim `pay_share_percent`.
    pub fn new(max: usize, pay_share_percent: u8) -> Locks {
        let max = max.max(1);
        let share = usize::from(pay_share_percent.min(100));
        Locks {
            map: DashMap::new(),
            max,
            pay_max: (max.saturating_mul(share) / 100).max(1),
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

    /// Waits at most `wait` for `key`'s lock. Refuses at once when the key is new and the table
    /// is full (the bound is checked before the insert, so concurrent first claims may pass it
    /// by a few).
    pub async fn lock(
        &self,
        key: &TxnKey,
        wait: Duration,
        lane: Lane,
    ) -> Result<Held<'_>, Refused> {
        let bound = match lane {
            Lane::Pay => self.pay_max,
            Lane::Finish => self.max,
        };
        if !self.map.contains_key(key) && self.map.len() >= bound {
            return Err(Refused::Full);
        }
        let mutex = {
            let mut slot = self.map.entry(key.clone()).or_insert_with(|| Slot {
                mutex: Arc::new(Mutex::new(())),
                users: 0,
            });
            slot.users += 1;
            Arc::clone(&slot.mutex)
        };
        let mut held = Held {
            locks: self,
            key: key.clone(),
            guard: None,
            waited: false,
        };
        match Arc::clone(&mutex).try_lock_owned() {
            Ok(g) => held.guard = Some(g),
            Err(_) => {
                held.waited = true;
                match tokio::time::timeout(wait, mutex.lock_owned()).await {
                    Ok(g) => held.guard = Some(g),
                    Err(_) => return Err(Refused::Timeout),
                }
            }
        }
        Ok(held)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        if let Some(mut slot) = self.locks.map.get_mut(&self.key) {
            slot.users = slot.users.saturating_sub(1);
        }
        self.locks
            .map
            .remove_if(&self.key, |_, slot| slot.users == 0);
        metrics::gauge!(crate::telemetry::ENGINE_IN_FLIGHT)
            .set(crate::engine::usize_f64(self.locks.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Duration = Duration::from_secs(30);

    fn key(n: u32) -> TxnKey {
        TxnKey::new("m", format!("t{n}"))
    }

    #[tokio::test]
    async fn entries_go_away_when_released() {
        let locks = Locks::new(4, 100);
        {
            let _a = locks.lock(&key(1), W, Lane::Finish).await.unwrap();
            assert_eq!(locks.len(), 1);
        }
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn a_new_key_beyond_the_bound_is_refused() {
        let locks = Locks::new(2, 100);
        let _a = locks.lock(&key(1), W, Lane::Finish).await.unwrap();
        let _b = locks.lock(&key(2), W, Lane::Finish).await.unwrap();
        assert_eq!(
            locks.lock(&key(3), W, Lane::Finish).await.unwrap_err(),
            Refused::Full
        );
    }

    #[tokio::test]
    async fn a_duplicate_waits_for_the_holder() {
        let locks = Arc::new(Locks::new(4, 100));
        let first = locks.lock(&key(1), W, Lane::Finish).await.unwrap();
        assert!(!first.waited);
        let l2 = Arc::clone(&locks);
        let waiter = tokio::spawn(async move {
            let held = l2.lock(&key(1), W, Lane::Finish).await.unwrap();
            held.waited
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(first);
        assert!(waiter.await.unwrap());
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn a_wait_past_its_limit_is_refused_and_leaves_nothing_behind() {
        let locks = Locks::new(4, 100);
        let first = locks.lock(&key(1), W, Lane::Finish).await.unwrap();
        let second = locks
            .lock(&key(1), Duration::from_millis(10), Lane::Finish)
            .await;
        assert_eq!(second.unwrap_err(), Refused::Timeout);
        drop(first);
        assert!(locks.is_empty());
    }

    #[tokio::test]
    async fn a_waiter_cancelled_while_waiting_leaves_nothing_behind() {
        let locks = Arc::new(Locks::new(4, 100));
        let first = locks.lock(&key(1), W, Lane::Finish).await.unwrap();
        let l2 = Arc::clone(&locks);
        let waiter = tokio::spawn(async move {
            let _ = l2.lock(&key(1), W, Lane::Finish).await;
        });
        tokio::task::yield_now().await;
        waiter.abort();
        let _ = waiter.await;
        drop(first);
        assert!(
            locks.is_empty(),
            "the cancelled waiter's claim was given back"
        );
    }

    #[tokio::test]
    async fn new_pays_are_refused_at_their_share_while_other_work_goes_on() {
        let locks = Locks::new(4, 50);
        let _a = locks.lock(&key(1), W, Lane::Pay).await.unwrap();
        let _b = locks.lock(&key(2), W, Lane::Pay).await.unwrap();
        assert_eq!(
            locks.lock(&key(3), W, Lane::Pay).await.unwrap_err(),
            Refused::Full,
            "pays hold their share"
        );
        let _c = locks.lock(&key(3), W, Lane::Finish).await.unwrap();
        let _d = locks.lock(&key(4), W, Lane::Finish).await.unwrap();
        assert_eq!(
            locks.lock(&key(5), W, Lane::Finish).await.unwrap_err(),
            Refused::Full
        );
    }
}
