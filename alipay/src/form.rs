//! Form parameters: parsing a GET query or a POST body, and encoding one for sending.
//!
//! Parsing borrows from the request bytes wherever it can: a value with no `%` escape and no `+`
//! that is valid in the declared charset is a slice of the input. Each parameter keeps its raw
//! bytes (after percent-decoding, still in the request charset: exactly what was signed) and its
//! decoded text. A repeated name is an error, not "first wins" or "last wins": either choice lets
//! an attacker make the verifier and the application read different values.

use std::borrow::Cow;

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::charset::Charset;
use crate::error::{Error, Result};
use crate::sign::{Signer, Verifier};

/// Limits on an incoming form. Every parse is bounded by them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FormLimits {
    /// Query plus body, in bytes.
    pub bytes_max: usize,
    /// Number of parameters.
    pub params_max: usize,
    /// Length of one name, in bytes.
    pub name_bytes_max: usize,
    /// Length of one value after percent-decoding, in bytes.
    pub value_bytes_max: usize,
}

/// Default size of a whole form: a pay request is about 1 KiB; 16 KiB leaves room for a long
/// `trade_information` and `memo`.
pub const DEFAULT_FORM_BYTES_MAX: usize = 16 * 1024;
/// Default parameter count: a pay request has at most 21 defined parameters.
pub const DEFAULT_FORM_PARAMS_MAX: usize = 32;

impl Default for FormLimits {
    fn default() -> FormLimits {
        FormLimits {
            bytes_max: DEFAULT_FORM_BYTES_MAX,
            params_max: DEFAULT_FORM_PARAMS_MAX,
            name_bytes_max: 64,
            value_bytes_max: 8 * 1024,
        }
    }
}

/// One parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param<'a> {
    name: &'a str,
    value: Cow<'a, str>,
    /// The bytes in the request charset, kept only when they differ from `value`'s UTF-8 (a
    /// non-ASCII value in GBK); otherwise `value` is the signed bytes.
    raw: Option<Box<[u8]>>,
}

impl<'a> Param<'a> {
    /// The name.
    pub fn name(&self) -> &'a str {
        self.name
    }
    /// The decoded text.
    pub fn value(&self) -> &str {
        &self.value
    }
    /// The bytes in the request charset, as they were signed.
    pub fn raw(&self) -> &[u8] {
        self.raw.as_deref().unwrap_or(self.value.as_bytes())
    }

    /// Decodes percent-decoded bytes in `charset`, borrowing from the request when they were not
    /// escaped and copying at most once when they were.
    fn decode(name: &'a str, bytes: Cow<'a, [u8]>, charset: Charset) -> Option<Param<'a>> {
        let utf8 = charset == Charset::Utf8 || bytes.is_ascii();
        let (value, raw) = match (bytes, utf8) {
            (Cow::Borrowed(b), true) => (Cow::Borrowed(std::str::from_utf8(b).ok()?), None),
            (Cow::Owned(b), true) => (Cow::Owned(String::from_utf8(b).ok()?), None),
            (bytes, false) => {
                let text = charset.decode(&bytes)?.into_owned();
                (
                    Cow::Owned(text),
                    Some(bytes.into_owned().into_boxed_slice()),
                )
            }
        };
        Some(Param { name, value, raw })
    }
}

/// A parsed form: its charset and its parameters, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form<'a> {
    charset: Charset,
    params: Vec<Param<'a>>,
}

impl<'a> Form<'a> {
    /// Parses a request: `query` is the URL query (all parameters for GET; `_input_charset` and
    /// possibly others for POST), `body` the `application/x-www-form-urlencoded` body (empty for
    /// GET). A name in both is a repeat.
    pub fn parse(query: &'a [u8], body: &'a [u8], limits: &FormLimits) -> Result<Form<'a>> {
        let len_bytes = query.len().saturating_add(body.len());
        if len_bytes > limits.bytes_max {
            return Err(Error::TooLarge {
                len_bytes,
                max_bytes: limits.bytes_max,
            });
        }
        let mut pairs: Vec<RawPair<'a>> = Vec::with_capacity(24);
        split_pairs(query, limits, &mut pairs)?;
        split_pairs(body, limits, &mut pairs)?;
        pairs.sort_unstable_by(|a, b| a.name.cmp(b.name));
        if let Some(w) = pairs.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(Error::DuplicateParameter(w[0].name.to_owned()));
        }
        let charset = match pairs.iter().find(|p| p.name == "_input_charset") {
            None => Charset::Utf8,
            Some(p) => {
                let label = std::str::from_utf8(p.value).unwrap_or("");
                Charset::from_label(label)
                    .ok_or_else(|| Error::UnsupportedCharset(truncate(label).to_owned()))?
            }
        };
        let mut params = Vec::with_capacity(pairs.len());
        for pair in pairs {
            let name = pair.name;
            let param = match pair.plain {
                // No escape and pure ASCII: the same text in every supported charset.
                Some(text) => Param {
                    name,
                    value: Cow::Borrowed(text),
                    raw: None,
                },
                None => {
                    let decoded = percent_decode_form(pair.value)
                        .ok_or_else(|| Error::BadPercentEncoding(name.to_owned()))?;
                    Param::decode(name, decoded, charset)
                        .ok_or_else(|| Error::BadCharset(name.to_owned()))?
                }
            };
            if param.raw().len() > limits.value_bytes_max {
                return Err(Error::ParameterTooLong {
                    name: name.to_owned(),
                    max_bytes: limits.value_bytes_max,
                });
            }
            params.push(param);
        }
        Ok(Form { charset, params })
    }

    /// The request charset.
    pub fn charset(&self) -> Charset {
        self.charset
    }

    /// The parameters, sorted by name.
    pub fn params(&self) -> &[Param<'a>] {
        &self.params
    }

    /// The parameters an answer echoes in its `<request>` element, as Alipay does: every one but
    /// `sign` and `sign_type`, decoded, in name order.
    pub fn echo(&self) -> Vec<(&str, &str)> {
        self.params
            .iter()
            .filter(|p| p.name() != "sign" && p.name() != "sign_type")
            .map(|p| (p.name(), p.value()))
            .collect()
    }

    /// The value of `name`, if present (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        // A linear scan beats binary search at these sizes (at most `params_max`, typically 15):
        // `==` rejects on length before comparing bytes, where an ordering needs a memcmp each.
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(Param::value)
    }

    /// The value of `name` if present and not empty.
    pub fn get_nonempty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// Appends the string to sign (spec §3) to `out`: every parameter but `sign` and `sign_type`
    /// with a non-empty value, sorted by name, `name=value` joined by `&`, in the request charset.
    pub fn string_to_sign(&self, out: &mut Vec<u8>) {
        let signed = self.params.iter().filter(|p| is_signed(p.name, p.raw()));
        join_pairs(signed.map(|p| (p.name, p.raw())), out);
    }

    /// Verifies the `sign` parameter with `verifier`, after checking that `sign_type` is the one
    /// registered for the account. `scratch` is reused for the string to sign.
    pub fn verify(&self, verifier: &Verifier, scratch: &mut Vec<u8>) -> Result<()> {
        let got = self.get("sign_type").unwrap_or("");
        let got = crate::sign::SignType::from_wire(got)
            .ok_or_else(|| Error::UnsupportedSignType(truncate(got).to_owned()))?;
        if got != verifier.sign_type() {
            return Err(Error::SignTypeNotRegistered {
                got: got.as_str(),
                registered: verifier.sign_type().as_str(),
            });
        }
        let sign = self.get_nonempty("sign").ok_or(Error::MissingSignature)?;
        scratch.clear();
        self.string_to_sign(scratch);
        verifier.verify(scratch, sign)
    }
}

/// True when a parameter takes part in the string to sign.
fn is_signed(name: &str, value: &[u8]) -> bool {
    !value.is_empty() && name != "sign" && name != "sign_type"
}

/// Joins sorted `(name, value)` pairs as `name=value&...` onto `out`.
pub(crate) fn join_pairs<'x>(pairs: impl Iterator<Item = (&'x str, &'x [u8])>, out: &mut Vec<u8>) {
    for (i, (name, value)) in pairs.enumerate() {
        if i > 0 {
            out.push(b'&');
        }
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value);
    }
}

fn truncate(s: &str) -> &str {
    let end = s.char_indices().nth(32).map_or(s.len(), |(i, _)| i);
    &s[..end]
}

/// A `name=value` pair as found in the input, before decoding.
struct RawPair<'a> {
    name: &'a str,
    value: &'a [u8],
    /// The value as text when it needs no decoding (ASCII, no `%` or `+`).
    plain: Option<&'a str>,
}

/// Bytes allowed in a parameter name: `[A-Za-z0-9_]`.
const NAME_CHAR: u8 = 1;

#[allow(clippy::as_conversions)]
const fn byte_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c: u8 = 0;
    loop {
        if c.is_ascii_alphanumeric() || c == b'_' {
            t[c as usize] = NAME_CHAR; // u8 to usize: lossless (`usize::from` is not const)
        }
        if c == u8::MAX {
            return t;
        }
        c += 1;
    }
}

static BYTE_CLASS: [u8; 256] = byte_classes();

/// Splits one `a=1&b=2` part into pairs, classifying each value on the way (with SIMD passes over
/// the whole part, not per value) so that plain ones are never looked at again.
fn split_pairs<'a>(
    part: &'a [u8],
    limits: &FormLimits,
    pairs: &mut Vec<RawPair<'a>>,
) -> Result<()> {
    // One UTF-8 check for the whole part (form bodies are ASCII in practice); slicing the str
    // at `&` and `=` positions, which are ASCII, is then free.
    let text = std::str::from_utf8(part).ok();
    let ascii = text.is_some_and(str::is_ascii);
    let mut start = 0;
    for end in memchr::memchr_iter(b'&', part).chain(std::iter::once(part.len())) {
        let segment_start = start;
        let segment = &part[start..end];
        start = end + 1;
        if segment.is_empty() {
            continue; // an empty segment, as in `a=1&&b=2`
        }
        let name_len = segment
            .iter()
            .position(|&b| b == b'=')
            .unwrap_or(segment.len());
        let name_ok = segment[..name_len]
            .iter()
            .all(|&b| BYTE_CLASS[usize::from(b)] == NAME_CHAR);
        let value_start = segment_start + (name_len + 1).min(segment.len());
        let (name_start, name_end, value_end) = (segment_start, segment_start + name_len, end);
        let value = &part[value_start..value_end];
        let needs_decoding = has_escape(value) || !(ascii || value.is_ascii());
        if pairs.len() == limits.params_max {
            return Err(Error::TooManyParameters {
                max: limits.params_max,
            });
        }
        let name = &part[name_start..name_end];
        if !name_ok || name.is_empty() {
            return Err(Error::BadParameterName);
        }
        let name = match text.and_then(|t| t.get(name_start..name_end)) {
            Some(name) => name,
            None => std::str::from_utf8(name).map_err(|_| Error::BadParameterName)?,
        };
        if name.len() > limits.name_bytes_max {
            return Err(Error::ParameterTooLong {
                name: truncate(name).to_owned(),
                max_bytes: limits.name_bytes_max,
            });
        }
        let plain = if !needs_decoding {
            text.and_then(|t| t.get(value_start..value_end))
        } else {
            None
        };
        pairs.push(RawPair {
            name,
            value: &part[value_start..value_end],
            plain,
        });
    }
    Ok(())
}

/// True if `value` has a `%` or `+`. Written as a fold without early exit so that it compiles to
/// vector compares: values are short and escapes, when present, dense.
fn has_escape(value: &[u8]) -> bool {
    value
        .iter()
        .fold(false, |found, &b| found | (b == b'%') | (b == b'+'))
}

/// Decodes `+` to space and `%XX` escapes; borrows when there is neither.
fn percent_decode_form(input: &[u8]) -> Option<Cow<'_, [u8]>> {
    if !has_escape(input) {
        return Some(Cow::Borrowed(input));
    }
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        match input[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = hex_value(*input.get(i + 1)?)?;
                let lo = hex_value(*input.get(i + 2)?)?;
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    Some(Cow::Owned(out))
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Characters left unescaped by [`FormBuilder`]: the RFC 3986 unreserved set.
const FORM_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Builds a signed form for sending: the client side of [`Form::parse`].
///
/// Parameters are added in any order; [`FormBuilder::finish`] sorts them, signs them in the chosen
/// charset and writes the URL-encoded body with `sign` and `sign_type` appended.
#[derive(Debug, Clone, Default)]
pub struct FormBuilder {
    charset: Charset,
    params: Vec<(String, Vec<u8>)>,
}

impl FormBuilder {
    /// An empty form in `charset`. `_input_charset` is added with the charset's label.
    pub fn new(charset: Charset) -> FormBuilder {
        let mut b = FormBuilder {
            charset,
            params: Vec::with_capacity(24),
        };
        b.push("_input_charset", charset.label());
        b
    }

    /// Adds a parameter (empty values are sent but not signed, as Alipay does).
    pub fn push(&mut self, name: &str, value: &str) -> &mut FormBuilder {
        let mut raw = Vec::with_capacity(value.len());
        self.charset.encode_into(value, &mut raw);
        self.params.push((name.to_owned(), raw));
        self
    }

    /// Adds a parameter if `value` is `Some`.
    pub fn push_opt(&mut self, name: &str, value: Option<&str>) -> &mut FormBuilder {
        if let Some(v) = value {
            self.push(name, v);
        }
        self
    }

    /// Signs and encodes for a GET: one `application/x-www-form-urlencoded` string with every
    /// parameter, including `_input_charset`, `sign` and `sign_type`.
    pub fn finish(self, signer: &Signer) -> Result<Vec<u8>> {
        let (query, body) = self.encode(signer, |_| false)?;
        debug_assert!(query.is_empty());
        Ok(body)
    }

    /// Signs and encodes for a POST (spec §1): `_input_charset` goes in the URL query (returned
    /// first, without the `?`), every other parameter in the body.
    pub fn finish_post(self, signer: &Signer) -> Result<(String, Vec<u8>)> {
        let (query, body) = self.encode(signer, |name| name == "_input_charset")?;
        // Only percent-encoded bytes are written, so the query is ASCII.
        Ok((String::from_utf8_lossy(&query).into_owned(), body))
    }

    /// Sorts, signs, and writes each parameter into the query when `in_query(name)`, else into
    /// the body.
    fn encode(
        mut self,
        signer: &Signer,
        in_query: impl Fn(&str) -> bool,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        self.params.sort_by(|a, b| a.0.cmp(&b.0));
        let mut to_sign = Vec::with_capacity(512);
        let signed = self.params.iter().filter(|(n, v)| is_signed(n, v));
        join_pairs(
            signed.map(|(n, v)| (n.as_str(), v.as_slice())),
            &mut to_sign,
        );
        let mut sign = String::with_capacity(344);
        signer.sign(&to_sign, &mut sign)?;
        let tail = [
            ("sign".to_owned(), sign.into_bytes()),
            (
                "sign_type".to_owned(),
                signer.sign_type().as_str().as_bytes().to_vec(),
            ),
        ];
        let mut query = Vec::new();
        let mut body = Vec::with_capacity(to_sign.len() + 400);
        for (name, value) in self.params.iter().chain(tail.iter()) {
            let out = if in_query(name) {
                &mut query
            } else {
                &mut body
            };
            if !out.is_empty() {
                out.push(b'&');
            }
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            out.extend(percent_encode(value, FORM_ESCAPE).flat_map(str::bytes));
        }
        Ok((query, body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str, b: &str) -> Result<Vec<(String, String)>> {
        let f = Form::parse(q.as_bytes(), b.as_bytes(), &FormLimits::default())?;
        Ok(f.params()
            .iter()
            .map(|p| (p.name().to_owned(), p.value().to_owned()))
            .collect())
    }

    #[test]
    fn parses_and_sorts() {
        let got = parse("_input_charset=utf-8", "b=2&a=x+y%21&c=").unwrap();
        let want = [
            ("_input_charset", "utf-8"),
            ("a", "x y!"),
            ("b", "2"),
            ("c", ""),
        ];
        assert_eq!(got, want.map(|(a, b)| (a.to_owned(), b.to_owned())));
    }

    #[test]
    fn borrows_plain_values() {
        let body = b"a=plain&b=esc%41";
        let f = Form::parse(b"", body, &FormLimits::default()).unwrap();
        assert!(matches!(f.params()[0].value, Cow::Borrowed(_)));
        assert!(matches!(f.params()[1].value, Cow::Owned(_)));
        assert_eq!(f.get("b"), Some("escA"));
    }

    #[test]
    fn decodes_gbk() {
        let f = Form::parse(
            b"_input_charset=gbk",
            b"n=%D6%A7%B8%B6%B1%A6",
            &FormLimits::default(),
        )
        .unwrap();
        assert_eq!(f.get("n"), Some("支付宝"));
        assert_eq!(f.params()[1].raw(), [0xd6, 0xa7, 0xb8, 0xb6, 0xb1, 0xa6]);
    }

    #[test]
    fn finish_post_puts_the_charset_in_the_query() {
        let signer = Signer::md5("0123456789abcdef0123456789abcdef").unwrap();
        let mut b = FormBuilder::new(Charset::Gbk);
        b.push("service", "alipay.acquire.overseas.query")
            .push("n", "支付宝");
        let (query, body) = b.finish_post(&signer).unwrap();
        assert_eq!(query, "_input_charset=GBK");
        assert!(!body.windows(14).any(|w| w == b"_input_charset"));
        let form = Form::parse(query.as_bytes(), &body, &FormLimits::default()).unwrap();
        assert_eq!(form.charset(), Charset::Gbk);
        assert_eq!(form.get("n"), Some("支付宝"));
        form.verify(&signer.verifier().unwrap(), &mut Vec::new())
            .unwrap();
    }

    #[test]
    fn rejects_bad_forms() {
        let cases: &[(&str, &str, Error)] = &[
            ("", "a=1&a=2", Error::DuplicateParameter("a".into())),
            ("a=1", "a=1", Error::DuplicateParameter("a".into())),
            ("", "a=%4", Error::BadPercentEncoding("a".into())),
            ("", "a=%zz", Error::BadPercentEncoding("a".into())),
            ("", "=1", Error::BadParameterName),
            ("", "a%20b=1", Error::BadParameterName),
            (
                "_input_charset=latin1",
                "",
                Error::UnsupportedCharset("latin1".into()),
            ),
            ("", "a=%FF", Error::BadCharset("a".into())),
        ];
        for (q, b, want) in cases {
            assert_eq!(parse(q, b).as_ref().err(), Some(want), "{q} {b}");
        }
        let limits = FormLimits {
            bytes_max: 10,
            ..FormLimits::default()
        };
        assert!(matches!(
            Form::parse(b"", b"a=12345678901", &limits),
            Err(Error::TooLarge { .. })
        ));
        let limits = FormLimits {
            params_max: 2,
            ..FormLimits::default()
        };
        assert_eq!(
            Form::parse(b"", b"a=1&b=2&c=3", &limits),
            Err(Error::TooManyParameters { max: 2 })
        );
    }
}
