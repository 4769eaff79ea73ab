//! The hash chain that makes the journal tamper-evident (INV-7).
//!
//! Definition. Let `body_n = [FORMAT_VERSION] ++ postcard(event_n)`, where `event_n.prev_hash`
//! is `hash_{n-1}` (32 zero bytes for the first event, seq 1). Then
//!
//! ```text
//! hash_n = SHA-256( CHAIN_DOMAIN ‖ seq_n as u64 big-endian ‖ body_n )
//! ```
//!
//! and the value stored under key `seq_n` in `events` is `body_n ‖ hash_n` (which is exactly
//! `[FORMAT_VERSION] ++ postcard(SealedEvent { event, hash })`). The hash is taken over the
//! stored bytes, not over a re-encoding, so any changed byte is seen. Each event carries the
//! previous hash inside `body_n`, so every link covers all history before it; the seq is both the
//! key and inside the body, so a record moved to another key is seen too. The head (last seq and
//! hash) is written to `meta` in the same batch as the event; anchoring it elsewhere (a log line,
//! a finance export) detects a rewrite of the whole chain.
//!
//! Verification walks `events` in key order and reports the first break: an undecodable record
//! or a hash mismatch (a changed byte), a missing seq, a record under another seq's key or with a
//! `prev_hash` that is not the previous hash (reordered), or a `meta` head that is not the last
//! event.

use ring::digest::{Context, SHA256};

use crate::codec;
use crate::error::{hex, ChainBreak, CodecError};
use crate::record::{Event, Hash};
use crate::tables::{ChainHead, Events, SealedEvent, Table};

/// Domain separation for the chain's hashes.
pub const CHAIN_DOMAIN: &[u8] = b"alipay-switch/ledger/chain/v1\0";

/// Bytes of a hash at the end of a stored event.
const HASH_BYTES: usize = 32;

/// The hash of a stored event body at `seq`.
pub fn link_hash(seq: u64, body: &[u8]) -> Hash {
    let mut ctx = Context::new(&SHA256);
    ctx.update(CHAIN_DOMAIN);
    ctx.update(&seq.to_be_bytes());
    ctx.update(body);
    let digest = ctx.finish();
    let mut out = [0u8; HASH_BYTES];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Encodes an event for the `events` table: returns the stored value and the event's hash.
pub fn seal(event: &Event) -> Result<(Vec<u8>, Hash), CodecError> {
    let mut value = codec::encode_value(event)?;
    let hash = link_hash(event.seq, &value);
    value.extend_from_slice(&hash);
    Ok((value, hash))
}

/// Decodes a stored event and checks it belongs under `key_seq` and matches its own hash (not
/// its link to the previous one). Checked in that order, so a record moved to another key is
/// reported as [`ChainBreak::Misplaced`] rather than as a changed byte.
pub fn unseal(key_seq: u64, value: &[u8]) -> Result<SealedEvent, ChainBreak> {
    let sealed = Events::decode_value(value).map_err(|e| ChainBreak::Undecodable {
        seq: key_seq,
        reason: e.to_string(),
    })?;
    if sealed.event.seq != key_seq {
        return Err(ChainBreak::Misplaced {
            seq: key_seq,
            found: sealed.event.seq,
        });
    }
    // Decoding succeeded, so the value ends with the 32 hash bytes.
    let body = value
        .get(..value.len().saturating_sub(HASH_BYTES))
        .unwrap_or_default();
    if link_hash(key_seq, body) != sealed.hash {
        return Err(ChainBreak::HashMismatch { seq: key_seq });
    }
    Ok(sealed)
}

/// What a walk of the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// Events checked.
    pub checked: u64,
    /// The first event checked (1 for a full walk).
    pub first_seq: u64,
    /// The last good event: its seq and hash.
    pub last: ChainHead,
    /// The head recorded in `meta`.
    pub meta_head: ChainHead,
    /// The first break, if any; `None` means the chain verifies.
    pub broken: Option<ChainBreak>,
}

impl VerifyReport {
    /// True when the chain verified.
    pub fn is_ok(&self) -> bool {
        self.broken.is_none()
    }
}

/// Walks stored `(key, value)` pairs of the `events` table in key order, starting at
/// `start` (seq 1 with a zero hash for a full walk, or a trusted tail start), and compares the
/// end with `meta_head`.
pub fn verify_walk<I>(start: ChainHead, records: I, meta_head: ChainHead) -> VerifyReport
where
    I: IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
{
    verify_walk_with_progress(start, records, meta_head, 0, |_| {})
}

/// [`verify_walk`], calling `progress` with the count of events checked so far each time it
/// reaches a multiple of `progress_every` (0 never calls it). Only events that verified are
/// counted, so the counts increase and end at or below the report's `checked`.
pub fn verify_walk_with_progress<I>(
    start: ChainHead,
    records: I,
    meta_head: ChainHead,
    progress_every: u64,
    mut progress: impl FnMut(u64),
) -> VerifyReport
where
    I: IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
{
    let mut report = VerifyReport {
        checked: 0,
        first_seq: start.seq.saturating_add(1),
        last: start,
        meta_head,
        broken: None,
    };
    for (key, value) in records {
        if let Err(brk) = check_one(&mut report, &key, &value) {
            report.broken = Some(brk);
            return report;
        }
        if progress_every != 0 && report.checked % progress_every == 0 {
            progress(report.checked);
        }
    }
    if report.last != meta_head {
        report.broken = Some(ChainBreak::HeadMismatch {
            head_seq: meta_head.seq,
            head_hash_hex: hex(&meta_head.hash),
            last_seq: report.last.seq,
        });
    }
    report
}

fn check_one(report: &mut VerifyReport, key: &[u8], value: &[u8]) -> Result<(), ChainBreak> {
    let expected = report.last.seq.saturating_add(1);
    let seq = Events::decode_key(key).map_err(|_| ChainBreak::BadKey {
        after: report.last.seq,
    })?;
    if seq != expected {
        return Err(ChainBreak::Missing {
            seq: expected,
            found: seq,
        });
    }
    let sealed = unseal(seq, value)?;
    if sealed.event.prev_hash != report.last.hash {
        return Err(ChainBreak::BrokenLink { seq });
    }
    report.last = ChainHead {
        seq,
        hash: sealed.hash,
    };
    report.checked = report.checked.saturating_add(1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{EventBody, TxnKey};

    fn event(seq: u64, prev_hash: Hash) -> Event {
        Event {
            seq,
            prev_hash,
            at_ms: 1,
            txn: TxnKey::new("m", "o"),
            body: EventBody::CancelAttempt { attempt: 1 },
        }
    }

    type Records = Vec<(Vec<u8>, Vec<u8>)>;

    fn chain(n: u64) -> (Records, ChainHead) {
        let mut out = Vec::new();
        let mut head = ChainHead::GENESIS;
        for seq in 1..=n {
            let (value, hash) = seal(&event(seq, head.hash)).unwrap();
            out.push((seq.to_be_bytes().to_vec(), value));
            head = ChainHead { seq, hash };
        }
        (out, head)
    }

    #[test]
    fn sealed_value_is_the_versioned_postcard_of_sealed_event() {
        let e = event(1, [0; 32]);
        let (value, hash) = seal(&e).unwrap();
        let typed = Events::encode_value(&SealedEvent { event: e, hash }).unwrap();
        assert_eq!(value, typed);
    }

    #[test]
    fn walk_finds_each_kind_of_break() {
        let (records, head) = chain(5);
        assert!(verify_walk(ChainHead::GENESIS, records.clone(), head).is_ok());

        let mut flipped = records.clone();
        flipped[2].1[10] ^= 1;
        let r = verify_walk(ChainHead::GENESIS, flipped, head);
        assert_eq!(r.broken, Some(ChainBreak::HashMismatch { seq: 3 }));
        assert_eq!(r.checked, 2);

        let mut missing = records.clone();
        missing.remove(1);
        let r = verify_walk(ChainHead::GENESIS, missing, head);
        assert_eq!(r.broken, Some(ChainBreak::Missing { seq: 2, found: 3 }));

        let mut swapped = records.clone();
        let v1 = swapped[1].1.clone();
        swapped[1].1 = swapped[3].1.clone();
        swapped[3].1 = v1;
        let r = verify_walk(ChainHead::GENESIS, swapped, head);
        assert_eq!(r.broken, Some(ChainBreak::Misplaced { seq: 2, found: 4 }));

        let mut truncated = records.clone();
        truncated.pop();
        let r = verify_walk(ChainHead::GENESIS, truncated, head);
        assert!(matches!(
            r.broken,
            Some(ChainBreak::HeadMismatch {
                head_seq: 5,
                last_seq: 4,
                ..
            })
        ));
    }

    #[test]
    fn progress_counts_only_events_that_verified() {
        let (records, head) = chain(7);
        let mut ticks = Vec::new();
        let r = verify_walk_with_progress(ChainHead::GENESIS, records.clone(), head, 2, |n| {
            ticks.push(n)
        });
        assert!(r.is_ok());
        assert_eq!(ticks, [2, 4, 6]);

        let mut flipped = records;
        flipped[4].1[10] ^= 1;
        let mut ticks = Vec::new();
        let r = verify_walk_with_progress(ChainHead::GENESIS, flipped, head, 1, |n| ticks.push(n));
        assert_eq!(r.broken, Some(ChainBreak::HashMismatch { seq: 5 }));
        assert_eq!(
            ticks,
            [1, 2, 3, 4],
            "no tick for the broken event or after it"
        );

        let mut never = 0;
        verify_walk_with_progress(ChainHead::GENESIS, chain(3).0, chain(3).1, 0, |_| {
            never += 1
        });
        assert_eq!(never, 0, "0 never calls it");
    }
}
