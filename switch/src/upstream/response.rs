//! What an HTTP answer from Alipay means, as a pure function of its status and body: an answer
//! the engine can read, or an unknown outcome with a reason.
//!
//! The reasons are fixed texts: they go to logs and the journal, and a response body may echo the
//! request (`buyer_identity_code` included), so no byte of the body ever reaches a reason.

use alipay::xml::read_response;
use alipay::Verifier;

/// Why an answer cannot be taken as Alipay's word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// HTTP 429: Alipay (or a balancer in front of it) is throttling this account.
    Throttled,
    /// Any HTTP status but 200 and 429.
    Status(u16),
    /// The body is not an Alipay response document (or is over the size limit).
    NotADocument(&'static str),
    /// The document's signature does not verify with the account's verifier: an alarm.
    BadSignature(&'static str),
}

impl Rejected {
    /// A one-line reason, free of response content.
    pub fn reason(&self) -> String {
        match self {
            Rejected::Throttled => "HTTP 429: throttled".to_owned(),
            Rejected::Status(s) => format!("HTTP status {s}"),
            Rejected::NotADocument(why) => format!("not an Alipay response: {why}"),
            Rejected::BadSignature(why) => format!("the answer's signature does not verify: {why}"),
        }
    }
}

/// Checks the status line: only 200 carries an answer.
pub fn check_status(status: u16) -> Result<(), Rejected> {
    match status {
        200 => Ok(()),
        429 => Err(Rejected::Throttled),
        s => Err(Rejected::Status(s)),
    }
}

/// Checks a body: a response document within `bytes_max` whose signature verifies with
/// `verifier` (a business answer must be signed; an unsigned gateway rejection passes, a signed
/// one must verify: [`alipay::ResponseDoc::verify`]).
pub fn check_body(body: &[u8], bytes_max: usize, verifier: &Verifier) -> Result<(), Rejected> {
    let mut text = String::new();
    let doc = read_response(body, &mut text, bytes_max).map_err(|e| {
        Rejected::NotADocument(match e {
            alipay::Error::TooLarge { .. } => "the body is over the size limit",
            alipay::Error::XmlDoctype => "the XML carries a DOCTYPE",
            alipay::Error::XmlTooDeep => "the XML is nested too deeply",
            alipay::Error::XmlRepeatedElement(_) => "an element that must be unique is repeated",
            _ => "malformed XML or not Alipay's envelope",
        })
    })?;
    doc.verify(verifier, &mut Vec::new()).map_err(|e| {
        Rejected::BadSignature(match e {
            alipay::Error::MissingSignature => "the answer is not signed",
            alipay::Error::UnsupportedSignType(_) => "unsupported sign_type",
            alipay::Error::SignTypeNotRegistered { .. } => "not the account's sign_type",
            alipay::Error::MalformedSignature => "the signature is not well-formed",
            _ => "the signature does not match",
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use alipay::{SignType, Signer};

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const OTHER_KEY: &str = "fedcba9876543210fedcba9876543210";

    fn signed_answer(key: &str, code: &str) -> Vec<u8> {
        let signer = Signer::md5(key).unwrap();
        let mut sign = String::new();
        let message = format!("partner_trans_id=P1&result_code={code}");
        signer.sign(message.as_bytes(), &mut sign).unwrap();
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><alipay><is_success>T</is_success>\
             <response><alipay><partner_trans_id>P1</partner_trans_id>\
             <result_code>{code}</result_code></alipay></response>\
             <sign>{sign}</sign><sign_type>MD5</sign_type></alipay>"
        )
        .into_bytes()
    }

    fn verifier(key: &str) -> Verifier {
        Verifier::from_key_text(SignType::Md5, key).unwrap()
    }

    #[test]
    fn statuses() {
        let cases = [
            (200, Ok(())),
            (429, Err(Rejected::Throttled)),
            (502, Err(Rejected::Status(502))),
            (500, Err(Rejected::Status(500))),
            (204, Err(Rejected::Status(204))),
            (301, Err(Rejected::Status(301))),
        ];
        for (status, expected) in cases {
            assert_eq!(check_status(status), expected, "status {status}");
        }
    }

    #[test]
    fn bodies() {
        let good = signed_answer(KEY, "SUCCESS");
        let forged = signed_answer(OTHER_KEY, "SUCCESS");
        let unsigned_t: &[u8] = b"<alipay><is_success>T</is_success><response><alipay>\
            <result_code>SUCCESS</result_code></alipay></response></alipay>";
        let unsigned_f: &[u8] =
            b"<alipay><is_success>F</is_success><error>SYSTEM_ERROR</error></alipay>";
        let html: &[u8] = b"<html><body>502 Bad Gateway</body></html>";
        let doctype: &[u8] = b"<!DOCTYPE x [<!ENTITY a \"b\">]><alipay></alipay>";
        let cases: [(&[u8], Result<(), Rejected>); 6] = [
            (&good, Ok(())),
            (unsigned_f, Ok(())),
            (
                &forged,
                Err(Rejected::BadSignature("the signature does not match")),
            ),
            (
                unsigned_t,
                Err(Rejected::BadSignature("the answer is not signed")),
            ),
            (
                html,
                Err(Rejected::NotADocument(
                    "malformed XML or not Alipay's envelope",
                )),
            ),
            (
                doctype,
                Err(Rejected::NotADocument("the XML carries a DOCTYPE")),
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                check_body(body, 64 * 1024, &verifier(KEY)),
                expected,
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            check_body(&good, good.len() - 1, &verifier(KEY)),
            Err(Rejected::NotADocument("the body is over the size limit"))
        );
    }

    #[test]
    fn reasons_never_quote_the_body() {
        let secret = "286648812345678901";
        let body = format!("<alipay><is_success>T</is_success><request><param name=\"buyer_identity_code\">{secret}</param></request><bogus>{secret}</alipay>");
        let r = check_body(body.as_bytes(), 64 * 1024, &verifier(KEY)).unwrap_err();
        assert!(!r.reason().contains(secret), "{}", r.reason());
    }
}
