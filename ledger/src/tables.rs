//! The column families as typed tables.
//!
//! Each table names its column family and its key and value codecs, so no code outside this
//! module builds a key or parses a value by hand (house style rule 9, after aptos-core's
//! `schemadb`). Values start with [`FORMAT_VERSION`]; keys are big-endian integers and
//! length-prefixed strings ([`crate::codec`]), so byte order is the order we iterate in.
//!
//! | table | key | value | written when |
//! |---|---|---|---|
//! | `events` | seq (u64 BE) | [`SealedEvent`] | every event |
//! | `txns` | [`TxnKey`] | [`TxnState`] | every append (the snapshot after it) |
//! | `txn_events` | [`TxnKey`] ++ seq | `()` | every event (a transaction's history) |
//! | `refunds` | [`RefundKey`] | [`TxnKey`] | `RefundIntent` |
//! | `upstream_ids` | partner ++ upstream id | [`TxnKey`] | `PayReceived` |
//! | `pending` | [`TxnKey`] | `()` | put while not final, deleted when final |
//! | `by_day` | Beijing `yyyymmdd` (u32 BE) ++ seq | `()` | money-moving events |
//! | `meta` | name | [`MetaValue`] | journal format at creation, chain head every write |

use serde::{Deserialize, Serialize};

use crate::codec::{self, KeyReader, KeyWriter, FORMAT_VERSION};
use crate::error::CodecError;
use crate::record::{Event, Hash, RefundKey, TxnKey};
use crate::state::TxnState;

/// Every column family of the journal (RocksDB's `default` is created but unused).
pub const COLUMN_FAMILIES: [&str; 8] = [
    Events::NAME,
    Txns::NAME,
    TxnEvents::NAME,
    Refunds::NAME,
    UpstreamIds::NAME,
    Pending::NAME,
    ByDay::NAME,
    Meta::NAME,
];

// `meta` must be created last: `Journal::open` recognises a creation cut short by a crash by
// `meta` being absent (see `check_tables` in journal.rs).
const _: () = {
    let last = COLUMN_FAMILIES[COLUMN_FAMILIES.len() - 1].as_bytes();
    let meta = Meta::NAME.as_bytes();
    assert!(last.len() == meta.len());
    let mut i = 0;
    while i < meta.len() {
        assert!(last[i] == meta[i]);
        i += 1;
    }
};

/// A column family with typed keys and values.
pub trait Table {
    /// The column family's name.
    const NAME: &'static str;
    /// The key type.
    type Key;
    /// The value type.
    type Value;
    /// The key's bytes.
    fn encode_key(key: &Self::Key) -> Result<Vec<u8>, CodecError>;
    /// The key from its bytes.
    fn decode_key(bytes: &[u8]) -> Result<Self::Key, CodecError>;
    /// The value's bytes, starting with the format version.
    fn encode_value(value: &Self::Value) -> Result<Vec<u8>, CodecError>;
    /// The value from its bytes.
    fn decode_value(bytes: &[u8]) -> Result<Self::Value, CodecError>;
}

/// An event with the chain hash sealed after it; stored as `[FORMAT_VERSION] ++
/// postcard(event) ++ hash` (postcard writes the 32-byte array as its raw bytes), see
/// [`crate::chain`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedEvent {
    /// The event.
    pub event: Event,
    /// Its hash: the chain link the next event's `prev_hash` must equal.
    pub hash: Hash,
}

/// The chain head: the last event's seq and hash (0 and zeros for an empty journal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    /// Seq of the last event.
    pub seq: u64,
    /// Hash of the last event.
    pub hash: Hash,
}

impl ChainHead {
    /// The head of an empty journal.
    pub const GENESIS: ChainHead = ChainHead {
        seq: 0,
        hash: [0; 32],
    };
}

/// Names in the `meta` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaKey {
    /// The journal layout's format version.
    Format,
    /// The chain head.
    Head,
}

/// Values in the `meta` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetaValue {
    /// The journal layout's format version ([`crate::JOURNAL_FORMAT`]).
    Format(u32),
    /// The chain head.
    Head(ChainHead),
}

/// `()` values: only the version byte.
fn encode_unit() -> Vec<u8> {
    vec![FORMAT_VERSION]
}

fn decode_unit(bytes: &[u8]) -> Result<(), CodecError> {
    let payload = codec::versioned_payload(bytes)?;
    if payload.is_empty() {
        Ok(())
    } else {
        Err(CodecError::TrailingBytes(payload.len()))
    }
}

/// `events`: seq → sealed event.
#[derive(Debug)]
pub struct Events;
impl Table for Events {
    const NAME: &'static str = "events";
    type Key = u64;
    type Value = SealedEvent;
    fn encode_key(key: &u64) -> Result<Vec<u8>, CodecError> {
        Ok(codec::seq_key(*key).to_vec())
    }
    fn decode_key(bytes: &[u8]) -> Result<u64, CodecError> {
        codec::decode_seq_key(bytes)
    }
    fn encode_value(value: &SealedEvent) -> Result<Vec<u8>, CodecError> {
        codec::encode_value(value)
    }
    fn decode_value(bytes: &[u8]) -> Result<SealedEvent, CodecError> {
        codec::decode_value(bytes)
    }
}

/// `txns`: idempotency key → current snapshot.
#[derive(Debug)]
pub struct Txns;
impl Table for Txns {
    const NAME: &'static str = "txns";
    type Key = TxnKey;
    type Value = TxnState;
    fn encode_key(key: &TxnKey) -> Result<Vec<u8>, CodecError> {
        codec::txn_key(key)
    }
    fn decode_key(bytes: &[u8]) -> Result<TxnKey, CodecError> {
        codec::decode_txn_key(bytes)
    }
    fn encode_value(value: &TxnState) -> Result<Vec<u8>, CodecError> {
        codec::encode_value(value)
    }
    fn decode_value(bytes: &[u8]) -> Result<TxnState, CodecError> {
        codec::decode_value(bytes)
    }
}

/// `txn_events`: (txn, seq) → (): a transaction's events in order by a prefix scan.
#[derive(Debug)]
pub struct TxnEvents;
impl Table for TxnEvents {
    const NAME: &'static str = "txn_events";
    type Key = (TxnKey, u64);
    type Value = ();
    fn encode_key((txn, seq): &(TxnKey, u64)) -> Result<Vec<u8>, CodecError> {
        let mut key = codec::txn_key(txn)?;
        key.extend_from_slice(&codec::seq_key(*seq));
        Ok(key)
    }
    fn decode_key(bytes: &[u8]) -> Result<(TxnKey, u64), CodecError> {
        let mut r = KeyReader::new(bytes);
        let txn = codec::read_txn_key(&mut r)?;
        let seq = r.u64()?;
        r.end()?;
        Ok((txn, seq))
    }
    fn encode_value(_: &()) -> Result<Vec<u8>, CodecError> {
        Ok(encode_unit())
    }
    fn decode_value(bytes: &[u8]) -> Result<(), CodecError> {
        decode_unit(bytes)
    }
}

/// `refunds`: refund key → the transaction it refunds.
#[derive(Debug)]
pub struct Refunds;
impl Table for Refunds {
    const NAME: &'static str = "refunds";
    type Key = RefundKey;
    type Value = TxnKey;
    fn encode_key(key: &RefundKey) -> Result<Vec<u8>, CodecError> {
        codec::refund_key(key)
    }
    fn decode_key(bytes: &[u8]) -> Result<RefundKey, CodecError> {
        codec::decode_refund_key(bytes)
    }
    fn encode_value(value: &TxnKey) -> Result<Vec<u8>, CodecError> {
        codec::encode_value(value)
    }
    fn decode_value(bytes: &[u8]) -> Result<TxnKey, CodecError> {
        codec::decode_value(bytes)
    }
}

/// `upstream_ids`: (upstream partner, upstream trans id) → the transaction.
#[derive(Debug)]
pub struct UpstreamIds;
impl Table for UpstreamIds {
    const NAME: &'static str = "upstream_ids";
    type Key = (String, String);
    type Value = TxnKey;
    fn encode_key((partner, id): &(String, String)) -> Result<Vec<u8>, CodecError> {
        Ok(KeyWriter::new()
            .text("upstream_partner", partner)?
            .text("upstream_trans_id", id)?
            .finish())
    }
    fn decode_key(bytes: &[u8]) -> Result<(String, String), CodecError> {
        let mut r = KeyReader::new(bytes);
        let partner = r.text("upstream_partner")?;
        let id = r.text("upstream_trans_id")?;
        r.end()?;
        Ok((partner, id))
    }
    fn encode_value(value: &TxnKey) -> Result<Vec<u8>, CodecError> {
        codec::encode_value(value)
    }
    fn decode_value(bytes: &[u8]) -> Result<TxnKey, CodecError> {
        codec::decode_value(bytes)
    }
}

/// `pending`: transactions that are not final (the resolver's work list).
#[derive(Debug)]
pub struct Pending;
impl Table for Pending {
    const NAME: &'static str = "pending";
    type Key = TxnKey;
    type Value = ();
    fn encode_key(key: &TxnKey) -> Result<Vec<u8>, CodecError> {
        codec::txn_key(key)
    }
    fn decode_key(bytes: &[u8]) -> Result<TxnKey, CodecError> {
        codec::decode_txn_key(bytes)
    }
    fn encode_value(_: &()) -> Result<Vec<u8>, CodecError> {
        Ok(encode_unit())
    }
    fn decode_value(bytes: &[u8]) -> Result<(), CodecError> {
        decode_unit(bytes)
    }
}

/// `by_day`: (Beijing `yyyymmdd`, seq) → (): the settlement index.
#[derive(Debug)]
pub struct ByDay;
impl Table for ByDay {
    const NAME: &'static str = "by_day";
    type Key = (u32, u64);
    type Value = ();
    fn encode_key((day, seq): &(u32, u64)) -> Result<Vec<u8>, CodecError> {
        Ok(KeyWriter::new().u32(*day).u64(*seq).finish())
    }
    fn decode_key(bytes: &[u8]) -> Result<(u32, u64), CodecError> {
        let mut r = KeyReader::new(bytes);
        let day = r.u32()?;
        let seq = r.u64()?;
        r.end()?;
        Ok((day, seq))
    }
    fn encode_value(_: &()) -> Result<Vec<u8>, CodecError> {
        Ok(encode_unit())
    }
    fn decode_value(bytes: &[u8]) -> Result<(), CodecError> {
        decode_unit(bytes)
    }
}

/// `meta`: the journal's format and chain head.
#[derive(Debug)]
pub struct Meta;
impl Table for Meta {
    const NAME: &'static str = "meta";
    type Key = MetaKey;
    type Value = MetaValue;
    fn encode_key(key: &MetaKey) -> Result<Vec<u8>, CodecError> {
        Ok(match key {
            MetaKey::Format => b"format".to_vec(),
            MetaKey::Head => b"head".to_vec(),
        })
    }
    fn decode_key(bytes: &[u8]) -> Result<MetaKey, CodecError> {
        match bytes {
            b"format" => Ok(MetaKey::Format),
            b"head" => Ok(MetaKey::Head),
            _ => Err(CodecError::BadKey("unknown meta key")),
        }
    }
    fn encode_value(value: &MetaValue) -> Result<Vec<u8>, CodecError> {
        codec::encode_value(value)
    }
    fn decode_value(bytes: &[u8]) -> Result<MetaValue, CodecError> {
        codec::decode_value(bytes)
    }
}
