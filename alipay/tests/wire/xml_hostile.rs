//! The XML response reader against hostile and odd documents: DOCTYPEs and entity bombs,
//! repeated critical elements, oversize and deeply nested bodies, wrong roots; declared and
//! undeclared encodings; and signatures that must fail (reordered, changed, missing) or pass
//! (a signed gateway rejection over `error=CODE`).

use alipay::message::GatewayErrorCode;
use alipay::xml::DEFAULT_RESPONSE_BYTES_MAX;
use alipay::{
    read_response, Amount, Charset, Currency, Error, PayResponse, ResponseWriter, ResultCode,
    SignType, Verifier,
};

use crate::common::{md5, MD5_KEY};

/// MD5 over `to_sign` with the test key, as the wire carries it.
fn md5_sign(to_sign: &[u8]) -> String {
    let mut out = String::new();
    md5().sign(to_sign, &mut out).unwrap();
    out
}

fn verifier() -> Verifier {
    Verifier::from_key_text(SignType::Md5, MD5_KEY).unwrap()
}

/// Reads and verifies with the MD5 test key.
fn outcome(body: &[u8]) -> Result<(), Error> {
    let mut scratch = String::new();
    let doc = read_response(body, &mut scratch, DEFAULT_RESPONSE_BYTES_MAX)?;
    doc.verify(&verifier(), &mut Vec::new())
}

/// Compares outcomes, ignoring the free text of `MalformedXml`.
fn same(got: &Result<(), Error>, want: &Result<(), Error>) -> bool {
    match (got, want) {
        (Err(Error::MalformedXml(_)), Err(Error::MalformedXml(_))) => true,
        _ => got == want,
    }
}

fn malformed() -> Result<(), Error> {
    Err(Error::MalformedXml(String::new()))
}

fn repeated(name: &str) -> Result<(), Error> {
    Err(Error::XmlRepeatedElement(name.to_owned()))
}

/// A signed `is_success=T` document around `business` (the inner XML of `<response><alipay>`),
/// whose signature is over `to_sign`.
fn signed_doc(business: &str, to_sign: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><alipay><is_success>T</is_success>\
         <request><param name=\"service\">alipay.acquire.overseas.query</param></request>\
         <response><alipay>{business}</alipay></response>\
         <sign>{}</sign><sign_type>MD5</sign_type></alipay>",
        md5_sign(to_sign.as_bytes())
    )
}

/// A valid signed pay answer from the crate's own writer.
fn written_pay() -> Vec<u8> {
    let mut resp = PayResponse::bare(ResultCode::Success, None);
    resp.partner_trans_id = Some("T1".into());
    resp.alipay_trans_id = Some("2026010121001004440000000001".into());
    resp.currency = Some(Currency::USD);
    resp.trans_amount = Some(Amount::from_minor(1230, Currency::USD));
    ResponseWriter::new()
        .write(
            Charset::Utf8,
            &[("service", "alipay.acquire.overseas.spot.pay")],
            &resp,
            &md5(),
        )
        .unwrap()
        .to_vec()
}

fn replace(body: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(body.to_vec()).unwrap();
    assert!(text.contains(from), "{from} not in {text}");
    text.replacen(from, to, 1).into_bytes()
}

#[test]
fn hostile_documents_table() {
    let ok = || Ok(());
    let pay = written_pay();
    let valid = signed_doc("<result_code>SUCCESS</result_code>", "result_code=SUCCESS");
    let laughs = "<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">\
        <!ENTITY lol2 \"&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;\">\
        <!ENTITY lol3 \"&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;\">\
        <!ENTITY lol9 \"&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;\">]>\
        <alipay><is_success>T</is_success><response><alipay><result_code>&lol9;</result_code>\
        </alipay></response></alipay>";
    let deep = |n: usize| {
        format!(
            "<alipay><is_success>T</is_success>{}{}</alipay>",
            "<x>".repeat(n),
            "</x>".repeat(n)
        )
    };
    let rows: Vec<(&str, Vec<u8>, Result<(), Error>)> = vec![
        ("the writer's own output", pay.clone(), ok()),
        ("a hand-made signed document", valid.clone().into_bytes(), ok()),
        // DOCTYPE in every shape is refused before any entity is looked at.
        ("billion laughs", laughs.into(), Err(Error::XmlDoctype)),
        ("external entity", b"<!DOCTYPE alipay [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><alipay><is_success>T</is_success><error>&x;</error></alipay>".to_vec(), Err(Error::XmlDoctype)),
        ("external DTD", b"<?xml version=\"1.0\"?><!DOCTYPE alipay SYSTEM \"http://evil.example/a.dtd\"><alipay><is_success>F</is_success></alipay>".to_vec(), Err(Error::XmlDoctype)),
        ("DOCTYPE inside the root", b"<alipay><!DOCTYPE alipay><is_success>F</is_success></alipay>".to_vec(), Err(Error::XmlDoctype)),
        ("DOCTYPE in a GBK document", [b"<?xml version=\"1.0\" encoding=\"GBK\"?><!DOCTYPE a []>".as_ref(), b"<alipay><is_success>F</is_success></alipay>"].concat(), Err(Error::XmlDoctype)),
        ("an undefined entity", b"<alipay><is_success>F</is_success><error>&lol;</error></alipay>".to_vec(), malformed()),
        // Repeated critical elements.
        ("is_success twice", replace(&pay, "<is_success>T</is_success>", "<is_success>T</is_success><is_success>F</is_success>"), repeated("is_success")),
        ("is_success twice, apart", replace(&pay, "</sign_type>", "</sign_type><is_success>T</is_success>"), repeated("is_success")),
        ("sign twice", replace(&pay, "<sign_type>", "<sign>AAAA</sign><sign_type>"), repeated("sign")),
        ("sign_type twice", replace(&pay, "</alipay></response>", "</alipay></response><sign_type>RSA</sign_type>"), repeated("sign_type")),
        ("error twice", b"<alipay><is_success>F</is_success><error>SYSTEM_ERROR</error><error>ILLEGAL_SIGN</error></alipay>".to_vec(), repeated("error")),
        ("result_code twice", replace(&pay, "<result_code>SUCCESS</result_code>", "<result_code>SUCCESS</result_code><result_code>FAIL</result_code>"), repeated("result_code")),
        ("result_code twice, first empty", replace(&pay, "<result_code>SUCCESS</result_code>", "<result_code></result_code><result_code>SUCCESS</result_code>"), repeated("result_code")),
        ("a field twice, apart", replace(&pay, "<result_code>", "<trans_amount>0.01</trans_amount><result_code>"), repeated("trans_amount")),
        ("<response><alipay> twice", replace(&pay, "</alipay></response>", "</alipay><alipay><result_code>FAIL</result_code></alipay></response>"), repeated("response")),
        ("<response> twice", replace(&pay, "<sign>", "<response><alipay><result_code>FAIL</result_code></alipay></response><sign>"), repeated("response")),
        ("an empty <response><alipay> first", replace(&pay, "<response>", "<response><alipay></alipay></response><response>"), repeated("response")),
        ("an empty-element <alipay/> first", replace(&pay, "<response>", "<response><alipay/></response><response>"), repeated("response")),
        // Structure.
        ("wrong root", b"<response><is_success>T</is_success></response>".to_vec(), malformed()),
        ("a second root", [pay.as_slice(), b"<alipay><is_success>F</is_success></alipay>"].concat(), malformed()),
        ("an empty second root", [pay.as_slice(), b"<alipay/>"].concat(), malformed()),
        ("no is_success", b"<alipay><error>SYSTEM_ERROR</error></alipay>".to_vec(), malformed()),
        ("is_success neither T nor F", b"<alipay><is_success>Y</is_success></alipay>".to_vec(), malformed()),
        ("empty body", Vec::new(), malformed()),
        ("text, not XML", b"success".to_vec(), malformed()),
        ("an HTML error page", b"<html><body>502 Bad Gateway</body></html>".to_vec(), malformed()),
        ("unclosed", pay[..pay.len() - 9].to_vec(), malformed()),
        ("mismatched end tag", replace(&pay, "</result_code>", "</result_cod>"), malformed()),
        ("an element inside a value", replace(&pay, "<result_code>SUCCESS", "<result_code><b>x</b>SUCCESS"), malformed()),
        ("an empty element inside a value", replace(&pay, "<result_code>SUCCESS", "<result_code><b/>SUCCESS"), malformed()),
        ("mixed content", replace(&pay, "<result_code>SUCCESS", "<result_code>SUC<!-- -->CESS"), malformed()),
        ("text directly under the root", replace(&pay, "<is_success>", "hello<is_success>"), malformed()),
        ("unsupported declared encoding", replace(&pay, "UTF-8", "ISO-8859-1"), malformed()),
        ("unterminated declaration", b"<?xml version=\"1.0\" encoding=\"GBK\"".to_vec(), malformed()),
        // Depth: Alipay's own is 4; anything much deeper is refused, however deep.
        ("an unknown wrapper, depth 6", deep(4).into_bytes(), Err(Error::MissingSignature)),
        ("nested 8 deep", deep(8).into_bytes(), Err(Error::XmlTooDeep)),
        ("nested 5000 deep", deep(5_000).into_bytes(), Err(Error::XmlTooDeep)),
        // Size is checked before parsing: garbage over the limit is TooLarge, not malformed.
        ("garbage over the limit", vec![b'<'; DEFAULT_RESPONSE_BYTES_MAX + 1], Err(Error::TooLarge { len_bytes: DEFAULT_RESPONSE_BYTES_MAX + 1, max_bytes: DEFAULT_RESPONSE_BYTES_MAX })),
        ("a valid response padded over the limit", [pay.as_slice(), &vec![b' '; DEFAULT_RESPONSE_BYTES_MAX]].concat(), Err(Error::TooLarge { len_bytes: pay.len() + DEFAULT_RESPONSE_BYTES_MAX, max_bytes: DEFAULT_RESPONSE_BYTES_MAX })),
        ("a valid response padded to exactly the limit", [pay.as_slice(), &vec![b'\n'; DEFAULT_RESPONSE_BYTES_MAX - pay.len()]].concat(), ok()),
        // Signatures.
        ("a field changed", replace(&pay, "<trans_amount>12.30<", "<trans_amount>12.31<"), Err(Error::SignatureMismatch)),
        ("a field added", replace(&pay, "<result_code>", "<payment_inst>ALIPAYCN</payment_inst><result_code>"), Err(Error::SignatureMismatch)),
        ("a field removed", replace(&pay, "<partner_trans_id>T1</partner_trans_id>", ""), Err(Error::SignatureMismatch)),
        ("an empty field made non-empty", replace(&pay, "<result_code>", "<error>X</error><result_code>"), Err(Error::SignatureMismatch)),
        ("an empty field added", replace(&pay, "<result_code>", "<error></error><result_code>"), ok()),
        ("the echo changed (not signed, spec §4)", replace(&pay, "spot.pay</param>", "spot.refund</param>"), ok()),
        ("fields out of order, signed in order", signed_doc("<result_code>SUCCESS</result_code><alipay_trans_id>1</alipay_trans_id>", "alipay_trans_id=1&result_code=SUCCESS").into_bytes(), ok()),
        ("signed in document order, not sorted", signed_doc("<result_code>SUCCESS</result_code><alipay_trans_id>1</alipay_trans_id>", "result_code=SUCCESS&alipay_trans_id=1").into_bytes(), Err(Error::SignatureMismatch)),
        ("signed in reverse order", signed_doc("<alipay_trans_id>1</alipay_trans_id><result_code>SUCCESS</result_code>", "result_code=SUCCESS&alipay_trans_id=1").into_bytes(), Err(Error::SignatureMismatch)),
        ("signed with is_success included", signed_doc("<result_code>SUCCESS</result_code>", "is_success=T&result_code=SUCCESS").into_bytes(), Err(Error::SignatureMismatch)),
        ("a CDATA value, signed as its text", signed_doc("<alipay_trans_id><![CDATA[a<b]]></alipay_trans_id><result_code>SUCCESS</result_code>", "alipay_trans_id=a<b&result_code=SUCCESS").into_bytes(), ok()),
        ("an escaped value, signed unescaped", signed_doc("<alipay_trans_id>a&amp;b&#x4E2D;</alipay_trans_id><result_code>SUCCESS</result_code>", "alipay_trans_id=a&b中&result_code=SUCCESS").into_bytes(), ok()),
        ("unsigned is_success=T", replace(&pay, &format!("<sign>{}</sign>", signature_of(&pay)), ""), Err(Error::MissingSignature)),
        ("empty sign", replace(&pay, &format!("<sign>{}</sign>", signature_of(&pay)), "<sign></sign>"), Err(Error::MissingSignature)),
        ("no sign_type", replace(&pay, "<sign_type>MD5</sign_type>", ""), Err(Error::UnsupportedSignType(String::new()))),
        ("another sign_type", replace(&pay, "<sign_type>MD5</sign_type>", "<sign_type>RSA2</sign_type>"), Err(Error::SignTypeNotRegistered { got: "RSA2", registered: "MD5" })),
        ("sign with whitespace around it", replace(&pay, "<sign>", "<sign>\n  "), ok()),
        // Gateway rejections.
        ("a signed rejection", rejection("ILLEGAL_SIGN", &md5_sign(b"error=ILLEGAL_SIGN")).into_bytes(), ok()),
        ("a rejection signed over another code", rejection("ILLEGAL_PARTNER", &md5_sign(b"error=ILLEGAL_SIGN")).into_bytes(), Err(Error::SignatureMismatch)),
        ("a rejection signed over the wrong string", rejection("ILLEGAL_SIGN", &md5_sign(b"ILLEGAL_SIGN")).into_bytes(), Err(Error::SignatureMismatch)),
        ("an unsigned rejection", b"<alipay><is_success>F</is_success><error>ILLEGAL_PARTNER</error></alipay>".to_vec(), ok()),
    ];
    let mut failures = Vec::new();
    for (what, body, want) in &rows {
        let got = outcome(body);
        if !same(&got, want) {
            failures.push(format!("{what}: expected {want:?}, got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

fn rejection(code: &str, sign: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"GBK\"?>\n<alipay>\n  <is_success>F</is_success>\n  <error>{code}</error>\n  <sign>{sign}</sign>\n  <sign_type>MD5</sign_type>\n</alipay>\n")
}

fn signature_of(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let start = text.find("<sign>").unwrap() + 6;
    let end = text.find("</sign>").unwrap();
    text[start..end].to_owned()
}

#[test]
fn a_signed_rejection_reads_as_its_code() {
    let body = rejection("ILLEGAL_SIGN", &md5_sign(b"error=ILLEGAL_SIGN"));
    let mut scratch = String::new();
    let doc = read_response(body.as_bytes(), &mut scratch, DEFAULT_RESPONSE_BYTES_MAX).unwrap();
    assert_eq!(doc.gateway_error(), Some(GatewayErrorCode::IllegalSign));
    doc.verify(&verifier(), &mut Vec::new()).unwrap();
    assert!(doc.parse::<PayResponse>().is_err());
    // An unknown code reads as SYSTEM_ERROR, the only code that leaves the outcome open.
    let body = rejection("SOMETHING_NEW", "");
    let doc = read_response(body.as_bytes(), &mut scratch, DEFAULT_RESPONSE_BYTES_MAX).unwrap();
    assert_eq!(doc.gateway_error(), Some(GatewayErrorCode::SystemError));
    assert_eq!(
        doc.verify(&verifier(), &mut Vec::new()),
        Err(Error::MissingSignature)
    );
}

/// A response as Alipay sends it: declared GBK, pretty-printed, Chinese text; the signature is
/// over the GBK bytes. The same text declared in the other spellings reads the same.
#[test]
fn a_gbk_declared_body_with_chinese_text_decodes_and_verifies() {
    let login = "张**(zhang@example.com)";
    let mut to_sign = Vec::new();
    Charset::Gbk.encode_into(
        &format!(
            "alipay_buyer_login_id={login}&currency=HKD&result_code=SUCCESS&trans_amount=88.00"
        ),
        &mut to_sign,
    );
    let sign = md5_sign(&to_sign);
    for decl in [
        "<?xml version=\"1.0\" encoding=\"GBK\"?>",
        "<?xml version=\"1.0\" encoding=\"gbk\"?>",
        "<?xml version='1.0' encoding='GBK'?>",
        "<?xml version=\"1.0\" encoding = \"GBK\" standalone=\"yes\"?>",
        "<?xml version=\"1.0\" encoding=\"GB2312\"?>",
    ] {
        let text = format!(
            "{decl}\n<alipay>\n  <is_success>T</is_success>\n  <request>\n    \
             <param name=\"trans_name\">咖啡两杯</param>\n  </request>\n  <response>\n    <alipay>\n      \
             <alipay_buyer_login_id>{login}</alipay_buyer_login_id>\n      <currency>HKD</currency>\n      \
             <result_code>SUCCESS</result_code>\n      <trans_amount>88.00</trans_amount>\n    \
             </alipay>\n  </response>\n  <sign>{sign}</sign>\n  <sign_type>MD5</sign_type>\n</alipay>\n"
        );
        let mut body = Vec::new();
        Charset::Gbk.encode_into(&text, &mut body);
        assert!(
            std::str::from_utf8(&body).is_err(),
            "the body must really be GBK"
        );
        let mut scratch = String::new();
        let doc = read_response(&body, &mut scratch, DEFAULT_RESPONSE_BYTES_MAX)
            .unwrap_or_else(|e| panic!("{decl}: {e}"));
        doc.verify(&verifier(), &mut Vec::new())
            .unwrap_or_else(|e| panic!("{decl}: {e}"));
        assert_eq!(doc.request[0].1, "咖啡两杯");
        let pay: PayResponse = doc.parse().unwrap();
        assert_eq!(pay.alipay_buyer_login_id.as_deref(), Some(login));
        assert_eq!(
            pay.trans_amount,
            Some(Amount::from_minor(8800, Currency::HKD))
        );
        // The same signature does not verify over the UTF-8 bytes of the text.
        let mut utf8_body = text.clone().into_bytes();
        let decl_end = utf8_body.iter().position(|&b| b == b'\n').unwrap();
        utf8_body.splice(
            ..decl_end,
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                .iter()
                .copied(),
        );
        assert_eq!(outcome(&utf8_body), Err(Error::SignatureMismatch), "{decl}");
    }
}

#[test]
fn an_undeclared_encoding_is_utf8() {
    let business =
        "<alipay_buyer_login_id>张**</alipay_buyer_login_id><result_code>SUCCESS</result_code>";
    let sign = md5_sign("alipay_buyer_login_id=张**&result_code=SUCCESS".as_bytes());
    for decl in ["", "<?xml version=\"1.0\"?>"] {
        let body = format!(
            "{decl}<alipay><is_success>T</is_success><response><alipay>{business}</alipay>\
             </response><sign>{sign}</sign><sign_type>MD5</sign_type></alipay>"
        );
        let mut scratch = String::new();
        let doc = read_response(body.as_bytes(), &mut scratch, DEFAULT_RESPONSE_BYTES_MAX).unwrap();
        assert_eq!(doc.encoding, Charset::Utf8, "{decl:?}");
        doc.verify(&verifier(), &mut Vec::new()).unwrap();
        assert_eq!(
            doc.parse::<PayResponse>()
                .unwrap()
                .alipay_buyer_login_id
                .as_deref(),
            Some("张**")
        );
        // GBK bytes in a body that does not declare GBK are not UTF-8: refused, not guessed.
        let mut gbk = Vec::new();
        Charset::Gbk.encode_into(&body, &mut gbk);
        assert!(
            matches!(outcome(&gbk), Err(Error::MalformedXml(_))),
            "{decl:?}"
        );
    }
}
