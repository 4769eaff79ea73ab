//! The request charsets Alipay accepts: UTF-8, GBK and GB2312.
//!
//! Values are signed as bytes in the request's charset, so the charset travels with every form
//! and every response. GB2312 is decoded as GBK (its superset), as the WHATWG encoding standard
//! and Alipay's own servers do.

use std::borrow::Cow;

use encoding_rs::{Encoding, GBK, UTF_8};

/// A charset named by `_input_charset` or an XML declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Charset {
    /// UTF-8, the default.
    #[default]
    Utf8,
    /// GBK.
    Gbk,
    /// GB2312, decoded as GBK.
    Gb2312,
}

impl Charset {
    /// Parses a charset label, case-insensitively (`utf-8`, `UTF-8`, `gbk`, `GB2312`).
    pub fn from_label(label: &str) -> Option<Charset> {
        if label.eq_ignore_ascii_case("utf-8") || label.eq_ignore_ascii_case("utf8") {
            Some(Charset::Utf8)
        } else if label.eq_ignore_ascii_case("gbk") {
            Some(Charset::Gbk)
        } else if label.eq_ignore_ascii_case("gb2312") {
            Some(Charset::Gb2312)
        } else {
            None
        }
    }

    /// The label as it is written on the wire.
    pub const fn label(self) -> &'static str {
        match self {
            Charset::Utf8 => "UTF-8",
            Charset::Gbk => "GBK",
            Charset::Gb2312 => "GB2312",
        }
    }

    /// The `encoding_rs` encoding.
    pub fn encoding(self) -> &'static Encoding {
        match self {
            Charset::Utf8 => UTF_8,
            Charset::Gbk | Charset::Gb2312 => GBK,
        }
    }

    /// Decodes bytes strictly (malformed input is `None`), borrowing when no conversion is needed
    /// (always for valid UTF-8, and for ASCII-only GBK).
    pub fn decode<'a>(self, bytes: &'a [u8]) -> Option<Cow<'a, str>> {
        match self {
            Charset::Utf8 => std::str::from_utf8(bytes).ok().map(Cow::Borrowed),
            Charset::Gbk | Charset::Gb2312 => {
                GBK.decode_without_bom_handling_and_without_replacement(bytes)
            }
        }
    }

    /// Appends `text` encoded in this charset. Characters GBK cannot represent become numeric
    /// character references (`&#NNNN;`), deterministically, so a signature over the result can be
    /// recomputed by the reader.
    pub fn encode_into(self, text: &str, out: &mut Vec<u8>) {
        if self == Charset::Utf8 || text.is_ascii() {
            out.extend_from_slice(text.as_bytes());
        } else {
            let (bytes, _, _) = self.encoding().encode(text);
            out.extend_from_slice(&bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbk_round_trip() {
        let mut out = Vec::new();
        Charset::Gbk.encode_into("支付宝", &mut out);
        assert_eq!(out, [0xd6, 0xa7, 0xb8, 0xb6, 0xb1, 0xa6]);
        assert_eq!(Charset::Gb2312.decode(&out).unwrap(), "支付宝");
        assert!(Charset::Utf8.decode(&out).is_none());
        assert!(matches!(
            Charset::Gbk.decode(b"abc"),
            Some(Cow::Borrowed("abc"))
        ));
    }
}
