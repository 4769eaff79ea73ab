use alipay::*;
use std::borrow::Cow;

#[test]
fn xml_round_trip_md5_and_gbk() {
    let signer = Signer::md5("0123456789abcdef0123456789abcdef").unwrap();
    let verifier = signer.verifier().unwrap();
    let mut resp = PayResponse::bare(ResultCode::Success, None);
    resp.partner_trans_id = Some(Cow::Borrowed("T1<&>"));
    resp.alipay_buyer_login_id = Some(Cow::Borrowed("支付宝***"));
    resp.currency = Some(Currency::USD);
    resp.trans_amount = Some(Amount::from_minor(1234, Currency::USD));
    for enc in [Charset::Utf8, Charset::Gbk] {
        let mut w = ResponseWriter::new();
        let body = w
            .write(enc, &[("service", "x&y")], &resp, &signer)
            .unwrap()
            .to_vec();
        let mut scratch = String::new();
        let doc = read_response(&body, &mut scratch, 1 << 16).unwrap();
        let mut buf = Vec::new();
        doc.verify(&verifier, &mut buf).unwrap();
        let back: PayResponse = doc.parse().unwrap();
        assert_eq!(back, resp);
    }
}
