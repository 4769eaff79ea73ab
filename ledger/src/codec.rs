//! Byte layouts of stored values and keys.
//!
//! Values: every stored value is `[FORMAT_VERSION] ++ postcard(value)`. Decoding checks the size
//! limit first, then the version (an unknown one is [`CodecError::UnknownVersion`], never a
//! guess), then decodes with postcard and refuses trailing bytes. Postcard decodes strings and
//! sequences only as far as the input goes, and the input is bounded by [`VALUE_BYTES_MAX`], so
//! decoding hostile bytes neither panics nor allocates without bound.
//!
//! Keys: fixed-width integers are big-endian so RocksDB's byte order is numeric order; strings
//! are length-prefixed (`u16` big-endian length, then the UTF-8 bytes), which makes every
//! composite key prefix-free: `("ab", "c")` and `("a", "bc")` can never collide, and the encoding
//! of one [`TxnKey`] is never a prefix of another's, so a prefix scan over `txn ++ seq` keys
//! finds exactly one transaction's events.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::CodecError;
use crate::record::{RefundKey, TxnKey, KEY_FIELD_BYTES_MAX};

/// The format version every stored value starts with. A new layout gets a new number and a
/// decoder for the old one; this build reads exactly this one.
pub const FORMAT_VERSION: u8 = 1;

/// The largest stored value, in bytes. A transaction snapshot at its worst
/// ([`crate::state::REFUNDS_PER_TXN_MAX`] refunds with every field at its limit) stays under it.
pub const VALUE_BYTES_MAX: usize = 2 * 1024 * 1024;

/// Bytes of a length prefix in a key.
const LEN_PREFIX_BYTES: usize = 2;

// A key field's length must fit the u16 prefix.
const _: () = assert!(KEY_FIELD_BYTES_MAX <= 0xFFFF);

/// Encodes a value as `[FORMAT_VERSION] ++ postcard(value)`.
pub fn encode_value<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let out = postcard::to_extend(value, vec![FORMAT_VERSION])
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if out.len() > VALUE_BYTES_MAX {
        return Err(CodecError::TooLarge {
            len_bytes: out.len(),
            max_bytes: VALUE_BYTES_MAX,
        });
    }
    Ok(out)
}

/// Checks the size limit and the version byte, and returns the postcard payload.
pub fn versioned_payload(bytes: &[u8]) -> Result<&[u8], CodecError> {
    if bytes.len() > VALUE_BYTES_MAX {
        return Err(CodecError::TooLarge {
            len_bytes: bytes.len(),
            max_bytes: VALUE_BYTES_MAX,
        });
    }
    let Some((&version, payload)) = bytes.split_first() else {
        return Err(CodecError::Empty);
    };
    if version != FORMAT_VERSION {
        return Err(CodecError::UnknownVersion {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    Ok(payload)
}

/// Decodes a value written by [`encode_value`]; the whole input must be the value.
pub fn decode_value<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let payload = versioned_payload(bytes)?;
    decode_payload(payload)
}

/// Decodes a postcard payload that must be consumed exactly.
pub fn decode_payload<T: DeserializeOwned>(payload: &[u8]) -> Result<T, CodecError> {
    let (value, rest) = postcard::take_from_bytes::<T>(payload)
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(CodecError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Builds a composite key.
#[derive(Debug, Default)]
pub struct KeyWriter {
    buf: Vec<u8>,
}

impl KeyWriter {
    /// An empty key.
    pub fn new() -> KeyWriter {
        KeyWriter::default()
    }

    /// Appends a length-prefixed string field.
    pub fn text(mut self, field: &'static str, text: &str) -> Result<KeyWriter, CodecError> {
        let too_long = CodecError::KeyFieldTooLong {
            field,
            len_bytes: text.len(),
            max_bytes: KEY_FIELD_BYTES_MAX,
        };
        if text.len() > KEY_FIELD_BYTES_MAX {
            return Err(too_long);
        }
        let len = u16::try_from(text.len()).map_err(|_| too_long)?;
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(text.as_bytes());
        Ok(self)
    }

    /// Appends a big-endian u64.
    pub fn u64(mut self, n: u64) -> KeyWriter {
        self.buf.extend_from_slice(&n.to_be_bytes());
        self
    }

    /// Appends a big-endian u32.
    pub fn u32(mut self, n: u32) -> KeyWriter {
        self.buf.extend_from_slice(&n.to_be_bytes());
        self
    }

    /// The key's bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads a composite key written by [`KeyWriter`], field by field; [`KeyReader::end`] checks
/// nothing is left.
#[derive(Debug)]
pub struct KeyReader<'a> {
    rest: &'a [u8],
}

impl<'a> KeyReader<'a> {
    /// A reader over `key`.
    pub fn new(key: &'a [u8]) -> KeyReader<'a> {
        KeyReader { rest: key }
    }

    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        if self.rest.len() < n {
            return Err(CodecError::BadKey(what));
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Ok(head)
    }

    /// Reads a length-prefixed string field.
    pub fn text(&mut self, field: &'static str) -> Result<String, CodecError> {
        let len = self.take(LEN_PREFIX_BYTES, "truncated length prefix")?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        if len > KEY_FIELD_BYTES_MAX {
            return Err(CodecError::KeyFieldTooLong {
                field,
                len_bytes: len,
                max_bytes: KEY_FIELD_BYTES_MAX,
            });
        }
        let bytes = self.take(len, "truncated text field")?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CodecError::BadKey("text field not UTF-8"))
    }

    /// Reads a big-endian u64.
    pub fn u64(&mut self) -> Result<u64, CodecError> {
        let bytes = self.take(8, "truncated u64")?;
        let mut a = [0u8; 8];
        a.copy_from_slice(bytes);
        Ok(u64::from_be_bytes(a))
    }

    /// Reads a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, CodecError> {
        let bytes = self.take(4, "truncated u32")?;
        let mut a = [0u8; 4];
        a.copy_from_slice(bytes);
        Ok(u32::from_be_bytes(a))
    }

    /// Checks the whole key was read.
    pub fn end(self) -> Result<(), CodecError> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(CodecError::BadKey("trailing bytes"))
        }
    }
}

/// `lp(merchant) ++ lp(partner_trans_id)`.
pub fn txn_key(key: &TxnKey) -> Result<Vec<u8>, CodecError> {
    Ok(KeyWriter::new()
        .text("merchant", &key.merchant)?
        .text("partner_trans_id", &key.partner_trans_id)?
        .finish())
}

/// Reads the two fields of a [`txn_key`] from `reader`.
pub fn read_txn_key(reader: &mut KeyReader<'_>) -> Result<TxnKey, CodecError> {
    let merchant = reader.text("merchant")?;
    let partner_trans_id = reader.text("partner_trans_id")?;
    Ok(TxnKey {
        merchant,
        partner_trans_id,
    })
}

/// Decodes a whole [`txn_key`].
pub fn decode_txn_key(bytes: &[u8]) -> Result<TxnKey, CodecError> {
    let mut r = KeyReader::new(bytes);
    let key = read_txn_key(&mut r)?;
    r.end()?;
    Ok(key)
}

/// `lp(merchant) ++ lp(partner_refund_id)`.
pub fn refund_key(key: &RefundKey) -> Result<Vec<u8>, CodecError> {
    Ok(KeyWriter::new()
        .text("merchant", &key.merchant)?
        .text("partner_refund_id", &key.partner_refund_id)?
        .finish())
}

/// Decodes a whole [`refund_key`].
pub fn decode_refund_key(bytes: &[u8]) -> Result<RefundKey, CodecError> {
    let mut r = KeyReader::new(bytes);
    let merchant = r.text("merchant")?;
    let partner_refund_id = r.text("partner_refund_id")?;
    r.end()?;
    Ok(RefundKey {
        merchant,
        partner_refund_id,
    })
}

/// `seq` as 8 big-endian bytes.
pub fn seq_key(seq: u64) -> [u8; 8] {
    seq.to_be_bytes()
}

/// Decodes a [`seq_key`].
pub fn decode_seq_key(bytes: &[u8]) -> Result<u64, CodecError> {
    let mut r = KeyReader::new(bytes);
    let seq = r.u64()?;
    r.end()?;
    Ok(seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn length_prefixes_keep_keys_apart() {
        let a = txn_key(&TxnKey::new("ab", "c")).unwrap();
        let b = txn_key(&TxnKey::new("a", "bc")).unwrap();
        assert_ne!(a, b);
        let short = txn_key(&TxnKey::new("m", "1")).unwrap();
        let long = txn_key(&TxnKey::new("m", "12")).unwrap();
        assert!(!long.starts_with(&short));
    }

    #[test]
    fn keys_round_trip_and_reject_garbage() {
        let k = TxnKey::new("2088", "order-1");
        assert_eq!(decode_txn_key(&txn_key(&k).unwrap()).unwrap(), k);
        let r = RefundKey::new("2088", "r-1");
        assert_eq!(decode_refund_key(&refund_key(&r).unwrap()).unwrap(), r);
        assert_eq!(decode_seq_key(&seq_key(42)).unwrap(), 42);
        assert!(decode_seq_key(&[1, 2, 3]).is_err());
        assert!(decode_txn_key(&[0, 5, b'a']).is_err());
        let mut extra = txn_key(&k).unwrap();
        extra.push(0);
        assert!(decode_txn_key(&extra).is_err());
        let long = "x".repeat(KEY_FIELD_BYTES_MAX + 1);
        assert!(txn_key(&TxnKey::new(long, "1")).is_err());
    }

    #[test]
    fn unknown_version_is_a_clear_error() {
        let mut bytes = encode_value(&7u32).unwrap();
        assert_eq!(bytes[0], FORMAT_VERSION);
        bytes[0] = FORMAT_VERSION + 1;
        assert_eq!(
            decode_value::<u32>(&bytes),
            Err(CodecError::UnknownVersion {
                found: FORMAT_VERSION + 1,
                supported: FORMAT_VERSION
            })
        );
        assert_eq!(decode_value::<u32>(&[]), Err(CodecError::Empty));
    }
}
