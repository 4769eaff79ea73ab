//! The `trade_status_sync` notification: `to_form` → `Form::parse` → `Form::verify` →
//! `from_form` gives back the same notification, with and without its refund part, in every
//! charset; any change to the signed form is refused; and `from_form` checks its fields.

use alipay::form::FormLimits;
use alipay::notify::RefundNotice;
use alipay::{
    Amount, BeijingTime, Charset, Currency, Error, Form, Signer, TradeStatus, TradeStatusSync,
    NOTIFY_ACK,
};
use proptest::prelude::*;

use crate::common::{any_char, encode_pairs, gbk_char, md5, rsa2, text_of, verifier_for};

type Pairs = Vec<(String, String)>;

fn beijing(text: &str) -> BeijingTime {
    BeijingTime::parse_dashed(text).unwrap()
}

fn paid() -> TradeStatusSync {
    TradeStatusSync {
        notify_time: beijing("2026-01-01 08:00:05"),
        notify_id: "N20260101000001".into(),
        out_trade_no: "T20260101000001".into(),
        trade_no: "2026010121001004440000000001".into(),
        trade_status: TradeStatus::TradeSuccess,
        total_fee: Amount::from_minor(1230, Currency::USD),
        gmt_payment: Some(beijing("2026-01-01 08:00:01")),
        refund: None,
    }
}

fn refunded() -> TradeStatusSync {
    TradeStatusSync {
        notify_id: "N20260102000001".into(),
        trade_status: TradeStatus::TradeClosed,
        refund: Some(RefundNotice {
            partner_refund_id: "R20260102000001".into(),
            refund_amount: Amount::from_minor(1230, Currency::USD),
            refund_status: "REFUND_SUCCESS".into(),
        }),
        ..paid()
    }
}

/// Sends, receives, verifies and reads a notification.
fn receive(body: &[u8], signer: &Signer) -> Result<TradeStatusSync, Error> {
    let form = Form::parse(b"", body, &FormLimits::default())?;
    form.verify(&verifier_for(signer), &mut Vec::new())?;
    TradeStatusSync::from_form(&form)
}

fn pairs_of(body: &[u8]) -> Vec<(String, String)> {
    let form = Form::parse(b"", body, &FormLimits::default()).unwrap();
    form.params()
        .iter()
        .map(|p| (p.name().to_owned(), p.value().to_owned()))
        .collect()
}

fn set(pairs: &[(String, String)], name: &str, value: Option<&str>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs.iter().filter(|(n, _)| n != name).cloned().collect();
    if let Some(v) = value {
        out.push((name.to_owned(), v.to_owned()));
    }
    out
}

#[test]
fn round_trips_with_and_without_refund() {
    let mut chinese = refunded();
    chinese.out_trade_no = "订单 0001".into();
    chinese.refund = chinese.refund.map(|r| RefundNotice {
        refund_status: "REFUND_SUCCESS".into(),
        ..r
    });
    for n in [
        paid(),
        refunded(),
        chinese,
        TradeStatusSync {
            gmt_payment: None,
            ..paid()
        },
    ] {
        for charset in [Charset::Utf8, Charset::Gbk, Charset::Gb2312] {
            for signer in [&md5(), rsa2()] {
                let body = n.to_form(charset, signer).unwrap();
                let pairs = pairs_of(&body);
                assert!(pairs
                    .iter()
                    .any(|(k, v)| k == "notify_type" && v == "trade_status_sync"));
                assert_eq!(
                    receive(&body, signer).as_ref(),
                    Ok(&n),
                    "{charset:?} {signer:?}"
                );
            }
        }
    }
    assert_eq!(NOTIFY_ACK, b"success");
}

#[test]
fn a_changed_notification_is_refused() {
    let signer = md5();
    let body = refunded().to_form(Charset::Utf8, &signer).unwrap();
    let pairs = pairs_of(&body);
    let rows: Vec<(&str, Pairs, Error)> = vec![
        (
            "trade_status",
            set(&pairs, "trade_status", Some("TRADE_SUCCESS")),
            Error::SignatureMismatch,
        ),
        (
            "total_fee",
            set(&pairs, "total_fee", Some("1230.00")),
            Error::SignatureMismatch,
        ),
        (
            "currency",
            set(&pairs, "currency", Some("HKD")),
            Error::SignatureMismatch,
        ),
        (
            "out_trade_no",
            set(&pairs, "out_trade_no", Some("T2")),
            Error::SignatureMismatch,
        ),
        (
            "notify_id",
            set(&pairs, "notify_id", Some("N2")),
            Error::SignatureMismatch,
        ),
        (
            "notify_time",
            set(&pairs, "notify_time", Some("2026-01-01 08:00:06")),
            Error::SignatureMismatch,
        ),
        (
            "refund part removed",
            set(
                &set(
                    &set(&pairs, "partner_refund_id", None),
                    "refund_amount",
                    None,
                ),
                "refund_status",
                None,
            ),
            Error::SignatureMismatch,
        ),
        (
            "refund_status",
            set(&pairs, "refund_status", Some("REFUND_FAIL")),
            Error::SignatureMismatch,
        ),
        (
            "trade_no",
            set(&pairs, "trade_no", Some("2026010121001004440000000002")),
            Error::SignatureMismatch,
        ),
        (
            "gmt_payment removed",
            set(&pairs, "gmt_payment", None),
            Error::SignatureMismatch,
        ),
        (
            "_input_charset removed",
            set(&pairs, "_input_charset", None),
            Error::SignatureMismatch,
        ),
        (
            "a parameter added",
            set(&pairs, "x_extra", Some("1")),
            Error::SignatureMismatch,
        ),
        (
            "sign_type",
            set(&pairs, "sign_type", Some("RSA2")),
            Error::SignTypeNotRegistered {
                got: "RSA2",
                registered: "MD5",
            },
        ),
        (
            "unsigned",
            set(&pairs, "sign", None),
            Error::MissingSignature,
        ),
    ];
    for (what, pairs, want) in rows {
        let body = encode_pairs(Charset::Utf8, &pairs);
        assert_eq!(receive(&body, &signer), Err(want), "{what}");
    }
}

#[test]
fn from_form_checks_every_field() {
    let signer = md5();
    let pairs = pairs_of(&refunded().to_form(Charset::Utf8, &signer).unwrap());
    let rows: Vec<(Pairs, Result<(), Error>)> = vec![
        (pairs.clone(), Ok(())),
        (
            set(&pairs, "notify_url", Some("https://x.example")),
            Err(Error::UnexpectedParameter("notify_url".into())),
        ),
        (
            set(&pairs, "notify_type", Some("batch_refund_notify")),
            Err(Error::BadEnumValue("notify_type")),
        ),
        (
            set(&pairs, "trade_status", Some("PAID")),
            Err(Error::BadEnumValue("trade_status")),
        ),
        (
            set(&pairs, "currency", Some("usd")),
            Err(Error::BadCurrency {
                field: "currency",
                value: "usd".into(),
            }),
        ),
        (
            set(&pairs, "total_fee", Some("12.3")),
            Err(Error::BadAmount {
                field: "total_fee",
                reason: alipay::AmountError::WrongPrecision { expected: 2 },
            }),
        ),
        (
            set(&pairs, "refund_amount", Some("0.00")),
            Err(Error::BadAmount {
                field: "refund_amount",
                reason: alipay::AmountError::OutOfRange,
            }),
        ),
        (
            set(&pairs, "notify_time", Some("20260101080005")),
            Err(Error::BadTime("notify_time")),
        ),
        (
            set(&pairs, "gmt_payment", Some("2026-02-30 08:00:00")),
            Err(Error::BadTime("gmt_payment")),
        ),
        (
            set(&pairs, "refund_amount", None),
            Err(Error::MissingField("refund_amount")),
        ),
        (
            set(&pairs, "refund_status", None),
            Err(Error::MissingField("refund_status")),
        ),
        (set(&pairs, "partner_refund_id", None), Ok(())),
        (set(&pairs, "gmt_payment", None), Ok(())),
    ];
    let mut rows = rows;
    for field in [
        "notify_type",
        "notify_time",
        "notify_id",
        "out_trade_no",
        "trade_no",
        "trade_status",
        "total_fee",
        "currency",
    ] {
        rows.push((set(&pairs, field, None), Err(Error::MissingField(field))));
        rows.push((
            set(&pairs, field, Some("")),
            Err(Error::MissingField(field)),
        ));
    }
    for (pairs, want) in rows {
        let body = encode_pairs(Charset::Utf8, &pairs);
        let form = Form::parse(b"", &body, &FormLimits::default()).unwrap();
        let got = TradeStatusSync::from_form(&form).map(drop);
        assert_eq!(got, want, "{}", String::from_utf8_lossy(&body));
    }
}

fn notification() -> impl Strategy<Value = (Charset, TradeStatusSync)> {
    proptest::sample::select(vec![Charset::Utf8, Charset::Gbk, Charset::Gb2312]).prop_flat_map(
        |c| {
            let text = move || {
                let chars = if c == Charset::Utf8 {
                    any_char().boxed()
                } else {
                    gbk_char().boxed()
                };
                text_of(chars, 24)
            };
            let time = || {
                (946_684_800_i64..4_102_444_800)
                    .prop_map(|s| BeijingTime::from_unix_ms(s * 1000).unwrap())
            };
            let money = proptest::sample::select(Currency::ALL.to_vec()).prop_flat_map(|cur| {
                (1..=cur.max_minor(), 1..=cur.max_minor()).prop_map(move |(a, b)| {
                    (Amount::from_minor(a, cur), Amount::from_minor(b, cur))
                })
            });
            let status = proptest::sample::select(vec![
                TradeStatus::WaitBuyerPay,
                TradeStatus::TradeSuccess,
                TradeStatus::TradeClosed,
                TradeStatus::TradeFinished,
            ]);
            let refund = proptest::option::of((text(), text()));
            (
                Just(c),
                (
                    time(),
                    text(),
                    text(),
                    text(),
                    status,
                    money,
                    proptest::option::of(time()),
                    refund,
                ),
            )
                .prop_map(
                    |(c, (nt, id, otn, tn, status, (fee, refund_amount), gmt, refund))| {
                        (
                            c,
                            TradeStatusSync {
                                notify_time: nt,
                                notify_id: id,
                                out_trade_no: otn,
                                trade_no: tn,
                                trade_status: status,
                                total_fee: fee,
                                gmt_payment: gmt,
                                refund: refund.map(|(rid, rstatus)| RefundNotice {
                                    partner_refund_id: rid,
                                    refund_amount,
                                    refund_status: rstatus,
                                }),
                            },
                        )
                    },
                )
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_notification_round_trips((charset, n) in notification()) {
        let signer = md5();
        let body = n.to_form(charset, &signer).unwrap();
        prop_assert_eq!(receive(&body, &signer), Ok(n));
    }
}
