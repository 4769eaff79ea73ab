//! The XML response envelope (spec §4): a writer straight into a reusable buffer, and a reader
//! on quick-xml that borrows from the body.
//!
//! The writer emits the declaration in the chosen encoding (Alipay's own responses say GBK), the
//! echoed request, the business fields in alphabetical order, and the signature over those
//! fields. Each field value is formatted once, into the string-to-sign buffer, and copied from
//! there, escaped, into the XML: no DOM and no intermediate strings.
//!
//! The reader honours the declared encoding, refuses a DOCTYPE (no entity tricks), refuses a
//! repeated critical element (two `<result_code>`s would let a forger choose which one a client
//! believes), bounds size, depth and counts, and verifies the signature over the same fields in
//! the same order.

use std::borrow::Cow;
use std::fmt::Display;
use std::io::Write as _;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use crate::charset::Charset;
use crate::error::{Error, Result};
use crate::message::GatewayErrorCode;
use crate::response::{BusinessResponse, Fields};
use crate::sign::{SignType, Signer, Verifier};

/// Default size limit of a response body: real responses are under 2 KiB.
pub const DEFAULT_RESPONSE_BYTES_MAX: usize = 64 * 1024;
/// Most business fields or echoed parameters a response may carry.
pub const RESPONSE_ITEMS_MAX: usize = 64;
/// Deepest element nesting in an Alipay response (`alipay/response/alipay/field` is 4).
const DEPTH_MAX: usize = 6;

/// Writes response envelopes into buffers it keeps between calls.
#[derive(Debug, Default)]
pub struct ResponseWriter {
    xml: Vec<u8>,
    to_sign: Vec<u8>,
    sign: String,
}

impl ResponseWriter {
    /// A writer with empty buffers; they grow to the largest response written and stay.
    pub fn new() -> ResponseWriter {
        ResponseWriter {
            xml: Vec::with_capacity(2048),
            to_sign: Vec::with_capacity(512),
            sign: String::with_capacity(344),
        }
    }

    /// Writes an `is_success=T` envelope: the echoed request parameters, the business fields of
    /// `response` and the signature made by `signer`. Returns the body.
    pub fn write<'r, R: BusinessResponse<'r>>(
        &mut self,
        encoding: Charset,
        echo: &[(&str, &str)],
        response: &R,
        signer: &Signer,
    ) -> Result<&[u8]> {
        let ResponseWriter { xml, to_sign, sign } = self;
        xml.clear();
        to_sign.clear();
        sign.clear();
        declaration(xml, encoding);
        xml.extend_from_slice(b"<alipay><is_success>T</is_success><request>");
        for (name, value) in echo {
            xml.extend_from_slice(b"<param name=\"");
            escape_into(name.as_bytes(), xml);
            xml.extend_from_slice(b"\">");
            escape_and_encode(value.as_bytes(), encoding, xml);
            xml.extend_from_slice(b"</param>");
        }
        xml.extend_from_slice(b"</request><response><alipay>");
        let mut last: &'static str = "";
        response.for_each_field(&mut |name: &'static str, value: &dyn Display| {
            assert!(
                name > last,
                "response fields must be emitted in ascending order: {last} then {name}"
            );
            last = name;
            let pair_start = to_sign.len();
            if pair_start > 0 {
                to_sign.push(b'&');
            }
            to_sign.extend_from_slice(name.as_bytes());
            to_sign.push(b'=');
            let value_start = to_sign.len();
            // Writing to a Vec cannot fail.
            let _ = write!(to_sign, "{value}");
            if value_start == to_sign.len() {
                to_sign.truncate(pair_start); // empty values are neither sent nor signed
                return;
            }
            xml.push(b'<');
            xml.extend_from_slice(name.as_bytes());
            xml.push(b'>');
            escape_and_encode(&to_sign[value_start..], encoding, xml);
            transcode_tail(to_sign, value_start, encoding);
            xml.extend_from_slice(b"</");
            xml.extend_from_slice(name.as_bytes());
            xml.push(b'>');
        });
        signer.sign(to_sign, sign)?;
        xml.extend_from_slice(b"</alipay></response><sign>");
        xml.extend_from_slice(sign.as_bytes());
        xml.extend_from_slice(b"</sign><sign_type>");
        xml.extend_from_slice(signer.sign_type().as_str().as_bytes());
        xml.extend_from_slice(b"</sign_type></alipay>");
        Ok(xml)
    }

    /// Writes an `is_success=F` envelope with `<error>code</error>`, signed over `error=CODE`
    /// when a signer is given.
    pub fn write_gateway_error(
        &mut self,
        encoding: Charset,
        code: GatewayErrorCode,
        signer: Option<&Signer>,
    ) -> Result<&[u8]> {
        let ResponseWriter { xml, to_sign, sign } = self;
        xml.clear();
        declaration(xml, encoding);
        xml.extend_from_slice(b"<alipay><is_success>F</is_success><error>");
        xml.extend_from_slice(code.as_str().as_bytes());
        xml.extend_from_slice(b"</error>");
        if let Some(signer) = signer {
            to_sign.clear();
            sign.clear();
            to_sign.extend_from_slice(b"error=");
            to_sign.extend_from_slice(code.as_str().as_bytes());
            signer.sign(to_sign, sign)?;
            xml.extend_from_slice(b"<sign>");
            xml.extend_from_slice(sign.as_bytes());
            xml.extend_from_slice(b"</sign><sign_type>");
            xml.extend_from_slice(signer.sign_type().as_str().as_bytes());
            xml.extend_from_slice(b"</sign_type>");
        }
        xml.extend_from_slice(b"</alipay>");
        Ok(xml)
    }
}

fn declaration(xml: &mut Vec<u8>, encoding: Charset) {
    xml.extend_from_slice(b"<?xml version=\"1.0\" encoding=\"");
    xml.extend_from_slice(encoding.label().as_bytes());
    xml.extend_from_slice(b"\"?>\n");
}

/// Re-encodes `buf[start..]` (UTF-8 just formatted) into `encoding`, in place; a no-op for UTF-8
/// and for ASCII, which is nearly every field.
fn transcode_tail(buf: &mut Vec<u8>, start: usize, encoding: Charset) {
    if encoding == Charset::Utf8 || buf[start..].is_ascii() {
        return;
    }
    let utf8 = String::from_utf8_lossy(&buf[start..]).into_owned();
    buf.truncate(start);
    encoding.encode_into(&utf8, buf);
}

/// Appends the UTF-8 text `utf8` to the XML in `encoding`, escaped. Escaping comes first: a
/// character GBK lacks is then written as the character reference GBK's encoder emits
/// (`&#128512;`), which a reader resolves back to the character, instead of as the escaped,
/// literal text `&amp;#128512;`. ASCII and UTF-8 take the copy-free path.
fn escape_and_encode(utf8: &[u8], encoding: Charset, out: &mut Vec<u8>) {
    if encoding == Charset::Utf8 || utf8.is_ascii() {
        escape_into(utf8, out);
        return;
    }
    let mut escaped = Vec::with_capacity(utf8.len() + 16);
    escape_into(utf8, &mut escaped);
    encoding.encode_into(&String::from_utf8_lossy(&escaped), out);
}

/// Appends `raw` with the five XML special characters escaped. Safe for GBK bytes too: every
/// GBK trail byte is 0x40 or above, so it can never be mistaken for one of them.
fn escape_into(raw: &[u8], out: &mut Vec<u8>) {
    let mut from = 0;
    for (i, b) in raw.iter().enumerate() {
        let esc: &[u8] = match b {
            b'<' => b"&lt;",
            b'>' => b"&gt;",
            b'&' => b"&amp;",
            b'"' => b"&quot;",
            b'\'' => b"&apos;",
            _ => continue,
        };
        out.extend_from_slice(&raw[from..i]);
        out.extend_from_slice(esc);
        from = i + 1;
    }
    out.extend_from_slice(&raw[from..]);
}

/// A parsed response envelope. Strings borrow from the body (or from the caller's scratch
/// buffer when the body had to be transcoded) unless unescaping changed them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseDoc<'a> {
    /// The declared encoding.
    pub encoding: Charset,
    /// `is_success`: `T` accepted by the gateway, `F` rejected.
    pub is_success: bool,
    /// The gateway error code when `is_success` is `F`.
    pub error: Option<Cow<'a, str>>,
    /// The echoed request parameters, in document order.
    pub request: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// The business fields, sorted by name.
    fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
    /// The signature.
    pub sign: Option<Cow<'a, str>>,
    /// The sign type.
    pub sign_type: Option<Cow<'a, str>>,
}

impl<'a> ResponseDoc<'a> {
    /// The business fields.
    pub fn fields(&self) -> Fields<'_, 'a> {
        Fields {
            sorted: &self.fields,
        }
    }

    /// The gateway error code, when the gateway rejected the request. An unrecognised code is
    /// reported as `SYSTEM_ERROR`, the only code that leaves the outcome open: the safe reading.
    pub fn gateway_error(&self) -> Option<GatewayErrorCode> {
        if self.is_success {
            return None;
        }
        let code = self.error.as_deref().unwrap_or("");
        Some(GatewayErrorCode::from_wire(code).unwrap_or(GatewayErrorCode::SystemError))
    }

    /// The typed business response.
    pub fn parse<R: BusinessResponse<'a>>(&self) -> Result<R> {
        if !self.is_success {
            return Err(Error::MalformedXml(
                "a gateway rejection has no business response".into(),
            ));
        }
        R::from_fields(&self.fields())
    }

    /// Verifies the signature: over the business fields for `is_success=T`, over `error=CODE` for
    /// a signed rejection. An unsigned `T` response fails; an unsigned rejection passes (Alipay
    /// does not always sign them), and the caller treats it as the rejection it claims to be.
    pub fn verify(&self, verifier: &Verifier, scratch: &mut Vec<u8>) -> Result<()> {
        if !self.is_success && self.sign.is_none() {
            return Ok(());
        }
        let sign = self
            .sign
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(Error::MissingSignature)?;
        let sign_type = self.sign_type.as_deref().unwrap_or("");
        let sign_type = SignType::from_wire(sign_type)
            .ok_or_else(|| Error::UnsupportedSignType(sign_type.chars().take(16).collect()))?;
        if sign_type != verifier.sign_type() {
            return Err(Error::SignTypeNotRegistered {
                got: sign_type.as_str(),
                registered: verifier.sign_type().as_str(),
            });
        }
        scratch.clear();
        if self.is_success {
            let signed = self.fields.iter().filter(|(_, v)| !v.is_empty());
            for (i, (name, value)) in signed.enumerate() {
                if i > 0 {
                    scratch.push(b'&');
                }
                scratch.extend_from_slice(name.as_bytes());
                scratch.push(b'=');
                // The signature is over the bytes in the declared encoding.
                self.encoding.encode_into(value, scratch);
            }
        } else {
            scratch.extend_from_slice(b"error=");
            scratch.extend_from_slice(self.error.as_deref().unwrap_or("").as_bytes());
        }
        verifier.verify(scratch, sign)
    }
}

/// Reads a response body. `scratch` receives the transcoded text when the body declares GBK
/// and is not pure ASCII; the returned document may borrow from it.
pub fn read_response<'a>(
    body: &'a [u8],
    scratch: &'a mut String,
    bytes_max: usize,
) -> Result<ResponseDoc<'a>> {
    if body.len() > bytes_max {
        return Err(Error::TooLarge {
            len_bytes: body.len(),
            max_bytes: bytes_max,
        });
    }
    let encoding = declared_encoding(body)?;
    let text: &'a str = if encoding == Charset::Utf8 || body.is_ascii() {
        std::str::from_utf8(body).map_err(|_| Error::MalformedXml("not valid UTF-8".into()))?
    } else {
        let decoded = encoding
            .decode(body)
            .ok_or_else(|| Error::MalformedXml(format!("not valid {}", encoding.label())))?;
        scratch.clear();
        scratch.push_str(&decoded);
        scratch.as_str()
    };
    let mut doc = Parser::new(text).run(encoding)?;
    // Alipay emits the fields in order; sort only what arrived out of order.
    if !doc.fields.is_sorted_by(|a, b| a.0 <= b.0) {
        doc.fields.sort_by(|a, b| a.0.cmp(&b.0));
    }
    if let Some(w) = doc.fields.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(Error::XmlRepeatedElement(w[0].0.chars().take(32).collect()));
    }
    Ok(doc)
}

/// The encoding named in `<?xml ... encoding="..."?>`, UTF-8 when there is none.
fn declared_encoding(body: &[u8]) -> Result<Charset> {
    let head = &body[..body.len().min(256)];
    if !head.starts_with(b"<?xml") {
        return Ok(Charset::Utf8);
    }
    let end = memchr::memmem::find(head, b"?>")
        .ok_or_else(|| Error::MalformedXml("unterminated declaration".into()))?;
    let decl = &head[..end];
    let Some(at) = memchr::memmem::find(decl, b"encoding") else {
        return Ok(Charset::Utf8);
    };
    let rest = &decl[at + 8..];
    let rest = rest
        .strip_prefix(b"=")
        .or_else(|| rest.trim_ascii_start().strip_prefix(b"="))
        .unwrap_or(rest);
    let rest = rest.trim_ascii_start();
    let quote = *rest
        .first()
        .ok_or_else(|| Error::MalformedXml("bad declaration".into()))?;
    let label_end = rest[1..]
        .iter()
        .position(|&b| b == quote)
        .ok_or_else(|| Error::MalformedXml("bad declaration".into()))?;
    let label = std::str::from_utf8(&rest[1..=label_end]).unwrap_or("");
    Charset::from_label(label).ok_or_else(|| {
        Error::MalformedXml(format!(
            "unsupported encoding {}",
            label.chars().take(16).collect::<String>()
        ))
    })
}

/// Where the parser is in the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    Top,
    Root,
    Request,
    Response,
    Business,
    /// Inside an element of no interest, at this depth.
    Skip(usize),
}

/// A leaf element whose text is being read.
#[derive(Debug)]
enum Leaf<'a> {
    IsSuccess,
    Error,
    Sign,
    SignType,
    Param(Cow<'a, str>),
    Field(Cow<'a, str>),
}

struct Parser<'a> {
    text: &'a str,
    reader: Reader<&'a [u8]>,
    doc: ResponseDoc<'a>,
    seen_is_success: bool,
    seen_business: bool,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Parser<'a> {
        // Text is kept exactly: a business value is signed with its leading and trailing
        // whitespace. Whitespace between elements is skipped in `run`.
        let reader = Reader::from_str(text);
        let doc = ResponseDoc {
            encoding: Charset::Utf8,
            is_success: false,
            error: None,
            request: Vec::with_capacity(16),
            fields: Vec::with_capacity(16),
            sign: None,
            sign_type: None,
        };
        Parser {
            text,
            reader,
            doc,
            seen_is_success: false,
            seen_business: false,
        }
    }

    fn run(mut self, encoding: Charset) -> Result<ResponseDoc<'a>> {
        self.doc.encoding = encoding;
        let mut stack: Vec<Ctx> = Vec::with_capacity(DEPTH_MAX + 1);
        stack.push(Ctx::Top);
        let mut leaf: Option<(Leaf<'a>, Cow<'a, str>)> = None;
        let mut root_done = false;
        loop {
            let event = self
                .reader
                .read_event()
                .map_err(|e| Error::MalformedXml(e.to_string()))?;
            match event {
                Event::DocType(_) => return Err(Error::XmlDoctype),
                Event::Eof => break,
                Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::Text(t) => match &mut leaf {
                    Some((_, value)) if value.is_empty() => {
                        // The document was validated as UTF-8 once; text without an entity is
                        // a slice of it, so skip quick-xml's per-text decoding and unescaping.
                        *value = match borrow_from(self.text, &t) {
                            Some(raw) if !raw.contains('&') => Cow::Borrowed(raw),
                            _ => t
                                .unescape()
                                .map_err(|e| Error::MalformedXml(e.to_string()))?,
                        };
                    }
                    Some(_) => return Err(Error::MalformedXml("mixed content".into())),
                    None if matches!(stack.last(), Some(Ctx::Skip(_))) => {}
                    None if t.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n')) => {}
                    None => return Err(Error::MalformedXml("unexpected text".into())),
                },
                Event::CData(c) => {
                    let text = std::str::from_utf8(c.into_inner().as_ref())
                        .map(str::to_owned)
                        .map_err(|_| Error::MalformedXml("bad CDATA".into()))?;
                    if let Some((_, value)) = &mut leaf {
                        *value = Cow::Owned(text);
                    }
                }
                Event::Start(e) => {
                    if root_done {
                        return Err(Error::MalformedXml("content after the root element".into()));
                    }
                    if leaf.is_some() {
                        return Err(Error::MalformedXml("element inside a value".into()));
                    }
                    if stack.len() > DEPTH_MAX {
                        return Err(Error::XmlTooDeep);
                    }
                    let ctx = *stack.last().unwrap_or(&Ctx::Top);
                    match self.open(ctx, e, stack.len())? {
                        Open::Container(next) => stack.push(next),
                        Open::Leaf(l) => leaf = Some((l, Cow::Borrowed(""))),
                    }
                }
                Event::Empty(e) => {
                    // The same structure rules as for a start tag: `<a/>` is `<a></a>`.
                    if root_done {
                        return Err(Error::MalformedXml("content after the root element".into()));
                    }
                    if leaf.is_some() {
                        return Err(Error::MalformedXml("element inside a value".into()));
                    }
                    let ctx = *stack.last().unwrap_or(&Ctx::Top);
                    if let Open::Leaf(l) = self.open(ctx, e, stack.len())? {
                        self.close_leaf(l, Cow::Borrowed(""))?;
                    }
                }
                Event::End(_) => {
                    if let Some((l, value)) = leaf.take() {
                        self.close_leaf(l, value)?;
                    } else {
                        stack.pop();
                        if stack.len() == 1 {
                            root_done = true;
                        }
                    }
                }
            }
        }
        if !root_done || !self.seen_is_success {
            return Err(Error::MalformedXml("not an Alipay envelope".into()));
        }
        Ok(self.doc)
    }

    fn open(&mut self, ctx: Ctx, e: BytesStart<'a>, depth: usize) -> Result<Open<'a>> {
        let name = element_name(self.text, &e)?;
        Ok(match (ctx, name.as_ref()) {
            (Ctx::Top, "alipay") => Open::Container(Ctx::Root),
            (Ctx::Top, _) => {
                return Err(Error::MalformedXml(
                    "the root element is not <alipay>".into(),
                ))
            }
            (Ctx::Root, "is_success") => Open::Leaf(Leaf::IsSuccess),
            (Ctx::Root, "error") => Open::Leaf(Leaf::Error),
            (Ctx::Root, "sign") => Open::Leaf(Leaf::Sign),
            (Ctx::Root, "sign_type") => Open::Leaf(Leaf::SignType),
            (Ctx::Root, "request") => Open::Container(Ctx::Request),
            (Ctx::Root, "response") => Open::Container(Ctx::Response),
            (Ctx::Request, "param") => {
                if self.doc.request.len() == RESPONSE_ITEMS_MAX {
                    return Err(Error::MalformedXml("too many echoed parameters".into()));
                }
                let attr = e
                    .try_get_attribute("name")
                    .map_err(|err| Error::MalformedXml(err.to_string()))?
                    .ok_or_else(|| Error::MalformedXml("<param> without a name".into()))?;
                let name = match borrow_from(self.text, &attr.value) {
                    Some(name) if !name.contains('&') => Cow::Borrowed(name),
                    _ => {
                        let value = attr
                            .unescape_value()
                            .map_err(|err| Error::MalformedXml(err.to_string()))?;
                        Cow::Owned(value.into_owned())
                    }
                };
                Open::Leaf(Leaf::Param(name))
            }
            (Ctx::Response, "alipay") => {
                // Refused even when the first one was empty: a forger must not be able to add a
                // second business section after an empty one.
                if self.seen_business {
                    return Err(Error::XmlRepeatedElement("response".into()));
                }
                self.seen_business = true;
                Open::Container(Ctx::Business)
            }
            (Ctx::Business, _) => {
                if self.doc.fields.len() == RESPONSE_ITEMS_MAX {
                    return Err(Error::MalformedXml("too many fields".into()));
                }
                Open::Leaf(Leaf::Field(name))
            }
            _ => Open::Container(Ctx::Skip(depth)),
        })
    }

    fn close_leaf(&mut self, leaf: Leaf<'a>, value: Cow<'a, str>) -> Result<()> {
        fn once<'a>(
            slot: &mut Option<Cow<'a, str>>,
            name: &str,
            value: Cow<'a, str>,
        ) -> Result<()> {
            if slot.is_some() {
                return Err(Error::XmlRepeatedElement(name.into()));
            }
            *slot = Some(value);
            Ok(())
        }
        // The envelope's own elements are not signed: tolerate whitespace around them.
        let value = match leaf {
            Leaf::IsSuccess | Leaf::Error | Leaf::Sign | Leaf::SignType => trim_xml_space(value),
            Leaf::Param(_) | Leaf::Field(_) => value,
        };
        match leaf {
            Leaf::IsSuccess => {
                if self.seen_is_success {
                    return Err(Error::XmlRepeatedElement("is_success".into()));
                }
                self.seen_is_success = true;
                self.doc.is_success = match value.as_ref() {
                    "T" => true,
                    "F" => false,
                    _ => return Err(Error::MalformedXml("is_success is neither T nor F".into())),
                };
            }
            Leaf::Error => once(&mut self.doc.error, "error", value)?,
            Leaf::Sign => once(&mut self.doc.sign, "sign", value)?,
            Leaf::SignType => once(&mut self.doc.sign_type, "sign_type", value)?,
            Leaf::Param(name) => self.doc.request.push((name, value)),
            Leaf::Field(name) => self.doc.fields.push((name, value)),
        }
        Ok(())
    }
}

/// `value` without leading and trailing XML whitespace.
fn trim_xml_space(value: Cow<'_, str>) -> Cow<'_, str> {
    let space: &[char] = &[' ', '\t', '\r', '\n'];
    match value {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim_matches(space)),
        Cow::Owned(s) if s.trim_matches(space).len() == s.len() => Cow::Owned(s),
        Cow::Owned(s) => Cow::Owned(s.trim_matches(space).to_owned()),
    }
}

enum Open<'a> {
    Container(Ctx),
    Leaf(Leaf<'a>),
}

/// The element's name, borrowed from the document text when the tag's bytes lie inside it
/// (always, for a reader over a `&str`), else copied.
fn element_name<'a>(text: &'a str, e: &BytesStart<'_>) -> Result<Cow<'a, str>> {
    let name = e.name();
    if let Some(borrowed) = borrow_from(text, name.as_ref()) {
        return Ok(Cow::Borrowed(borrowed));
    }
    let name = std::str::from_utf8(name.as_ref())
        .map_err(|_| Error::MalformedXml("element name is not UTF-8".into()))?;
    Ok(Cow::Owned(name.to_owned()))
}

/// `bytes` as a slice of `text` with `text`'s lifetime, if that is what it is. quick-xml hands
/// out names and attribute values with the lifetime of the event, even when they point into the
/// document; this recovers the document's lifetime without copying, by address arithmetic only.
fn borrow_from<'a>(text: &'a str, bytes: &[u8]) -> Option<&'a str> {
    let offset = bytes.as_ptr().addr().checked_sub(text.as_ptr().addr())?;
    let borrowed = text.get(offset..offset.checked_add(bytes.len())?)?;
    (borrowed.as_bytes().as_ptr() == bytes.as_ptr()).then_some(borrowed)
}
