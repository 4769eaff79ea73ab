//! The four services, for MD5, RSA2 and RSA accounts, over HTTPS and plain HTTP, GET and POST,
//! UTF-8 and GBK.

use alipay::{
    Amount, BeijingTime, Charset, Currency, IdentityCodeType, PayRequest, Request, Secret,
};
use alipay_sim::GatewayClient;

use crate::common::*;

async fn four_services(sim: &Sim, partner: &str) {
    let paid = sim
        .call(&pay(partner, "P1", 1_234, NORMAL_CODE, None))
        .await;
    assert_eq!(paid.result(), "SUCCESS");
    let alipay_id = paid.field("alipay_trans_id").unwrap();
    assert_eq!(alipay_id.len(), 28);
    assert!(alipay_id.starts_with("20260302"));
    assert_eq!(paid.field("trans_amount").as_deref(), Some("12.34"));
    assert_eq!(paid.field("currency").as_deref(), Some("USD"));
    assert_eq!(paid.field("exchange_rate").as_deref(), Some("7.10650000"));
    assert_eq!(paid.field("trans_amount_cny").as_deref(), Some("87.69"));
    assert_eq!(
        paid.field("alipay_pay_time").as_deref(),
        Some("20260302100000")
    );
    let login = paid.field("alipay_buyer_login_id").unwrap();
    assert_eq!(&login[3..7], "****");
    assert!(paid
        .field("alipay_buyer_user_id")
        .unwrap()
        .starts_with("2088"));

    let q = sim.call(&query(partner, "P1")).await;
    assert_eq!(q.result(), "SUCCESS");
    assert_eq!(
        q.field("alipay_trans_status").as_deref(),
        Some("TRADE_SUCCESS")
    );
    assert_eq!(q.field("out_trade_no").as_deref(), Some("P1"));
    assert_eq!(q.field("payment_inst").as_deref(), Some("ALIPAYCN"));

    let r = sim.call(&refund(partner, "P1", "R1", 234)).await;
    assert_eq!(r.result(), "SUCCESS");
    assert_eq!(r.field("refund_amount").as_deref(), Some("2.34"));
    assert_eq!(r.field("alipay_trans_id"), Some(alipay_id.clone()));

    let c = sim.call(&cancel(partner, "P1")).await;
    assert_eq!(c.result(), "SUCCESS");
    assert_eq!(c.field("action").as_deref(), Some("refund"));
    assert_eq!(c.field("retry_flag").as_deref(), Some("N"));

    let t = sim.trade(partner, "P1").await;
    assert_eq!(t["status"], "TRADE_CLOSED");
    assert_eq!(t["amount"]["minor"], 1_234);
    assert_eq!(t["refunded"]["value"], "12.34");
    assert_eq!(t["refunds"][0]["partner_refund_id"], "R1");
    assert_eq!(t["cancel"]["refunded"]["value"], "10.00");
    assert!(
        !t.to_string().contains(NORMAL_CODE),
        "the buyer code must never show"
    );
}

#[tokio::test]
async fn md5_account_four_services_over_https() {
    let sim = start(1).await;
    four_services(&sim, MD5).await;
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn rsa2_account_four_services_over_https() {
    let sim = start(1).await;
    four_services(&sim, RSA2).await;
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn rsa_account_get_over_https_and_gbk_post_over_plain_http() {
    let sim = start(1).await;
    let signer = merchant_signer(RSA);
    let verifier = alipay_verifier(RSA);
    let got = sim
        .https
        .get(
            &pay(RSA, "G1", 500, NORMAL_CODE, None),
            Charset::Utf8,
            &signer,
        )
        .await;
    let got = Answer::of(got.unwrap());
    assert_eq!(got.verify(&verifier), (true, None));
    assert_eq!(got.result(), "SUCCESS");

    let http = GatewayClient::new(&sim.handle.http_url().unwrap(), None).unwrap();
    let chinese = Request::Pay(PayRequest {
        partner: RSA,
        partner_trans_id: "订单-1",
        trans_name: "咖啡与茶",
        trans_amount: Amount::from_minor(1_000, Currency::JPY),
        buyer_identity_code: Secret::new(NORMAL_CODE),
        identity_code_type: IdentityCodeType::Qrcode,
        trans_create_time: BeijingTime::parse_compact("20260302100000").unwrap(),
        extend_info: None,
        trans_currency: None,
        quantity: None,
        memo: None,
        trade_information: None,
        notify_url: None,
    });
    let a = Answer::of(http.post(&chinese, Charset::Gbk, &signer).await.unwrap());
    assert_eq!(a.verify(&verifier), (true, None));
    assert_eq!(a.result(), "SUCCESS");
    assert_eq!(a.field("trans_amount").as_deref(), Some("1000"));
    assert_eq!(a.field("trans_amount_cny").as_deref(), Some("47.50"));
    let text = String::from_utf8_lossy(&a.body).into_owned();
    assert!(!text.contains("咖啡"), "the XML is GBK, not UTF-8");
    let q = Answer::of(
        http.get(&query(RSA, "订单-1"), Charset::Gbk, &signer)
            .await
            .unwrap(),
    );
    assert_eq!(q.verify(&verifier), (true, None));
    assert_eq!(
        q.field("alipay_trans_status").as_deref(),
        Some("TRADE_SUCCESS")
    );
    let all = sim.trades().await;
    assert_eq!(all["count"], 2);
    assert_eq!(all["trades"][1]["trans_name"], "咖啡与茶");
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn query_by_alipay_trans_id_and_unknown_trades() {
    let sim = start(1).await;
    let paid = sim.call(&pay(RSA2, "Q1", 100, NORMAL_CODE, None)).await;
    let id = paid.field("alipay_trans_id").unwrap();
    let by_id = Request::Query(alipay::QueryRequest {
        partner: RSA2,
        partner_trans_id: Some("no-such"),
        alipay_trans_id: Some(&id),
    });
    let q = sim.call(&by_id).await;
    assert_eq!(q.field("partner_trans_id").as_deref(), Some("Q1"));
    let missing = sim.call(&query(RSA2, "no-such")).await;
    assert_eq!(
        (missing.result(), missing.field("error")),
        ("FAIL".into(), Some("TRADE_NOT_EXIST".into()))
    );
    sim.handle.shutdown().await;
}
