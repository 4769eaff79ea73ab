//! The admin files endpoints after a pay, a partial refund and cancels.

use crate::common::*;

/// A pay, a partial refund, a cancel of a paid trade and a cancel of an unpaid one; returns the
/// three Alipay trade numbers.
async fn book_the_day(sim: &Sim) -> (String, String, String) {
    sim.call(&pay(MD5, "F1", 10_000, NORMAL_CODE, None)).await;
    sim.call(&refund(MD5, "F1", "F1-R1", 2_500)).await;
    sim.call(&pay(MD5, "F2", 1_000, NORMAL_CODE, None)).await;
    sim.call(&cancel(MD5, "F2")).await;
    sim.call(&pay(MD5, "F3", 500, "280003000000000000", None))
        .await;
    sim.call(&cancel(MD5, "F3")).await;
    let id = |t: serde_json::Value| t["alipay_trans_id"].as_str().unwrap().to_owned();
    (
        id(sim.trade(MD5, "F1").await),
        id(sim.trade(MD5, "F2").await),
        id(sim.trade(MD5, "F3").await),
    )
}

#[tokio::test]
async fn the_transaction_file_lists_payments_refunds_reversals_and_cancels() {
    let sim = start(1).await;
    let (f1, f2, f3) = book_the_day(&sim).await;

    let path = format!("/admin/files/transactions?partner={MD5}&day=2026-03-02");
    let r = sim
        .https
        .http()
        .request(hyper::Method::GET, &path, None, Vec::new())
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let disposition = r
        .headers
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap();
    assert_eq!(
        disposition,
        "attachment; filename=\"2088101122136241_fptrade_20260302.csv\""
    );
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "Partner:2088101122136241|Payment_time:2026-03-02|Total_count:5"
    );
    assert!(lines[1].starts_with("Partner_transaction_id|Transaction_id|Transaction_amount|"));
    let rows: Vec<Vec<&str>> = lines[2..].iter().map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 5);
    let find = |kind: &str, pid: &str| {
        rows.iter()
            .find(|r| r[6] == kind && r[0] == pid)
            .unwrap_or_else(|| panic!("no {kind} row for {pid}: {text}"))
            .clone()
    };
    let p = find("PAYMENT", "F1");
    assert_eq!(
        (p[1], p[2], p[3], p[4]),
        (f1.as_str(), "100.00", "1.80", "USD")
    );
    assert_eq!((p[8], p[9], p[11]), ("5812", "Test Cafe", "paymentQrCode"));
    let r = find("REFUND", "F1-R1");
    assert_eq!(
        (r[1], r[2], r[3], r[7]),
        (f1.as_str(), "25.00", "0.45", "damaged")
    );
    let v = find("REVERSAL", "F2");
    assert_eq!((v[1], v[2], v[3]), (f2.as_str(), "10.00", "0.18"));
    let c = find("CANCEL", "F3");
    assert_eq!((c[1], c[2], c[3]), (f3.as_str(), "5.00", "0.00"));
    assert!(p[5].starts_with("2026-03-02 10:00"));
    let other_day = format!("/admin/files/transactions?partner={MD5}&day=2026-03-03");
    let r = sim
        .https
        .http()
        .request(hyper::Method::GET, &other_day, None, Vec::new())
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&r.body)
        .starts_with("Partner:2088101122136241|Payment_time:2026-03-03|Total_count:0\n"));
    sim.handle.shutdown().await;
}

#[tokio::test]
async fn the_settlement_file_lists_payments_and_refunds() {
    let sim = start(1).await;
    book_the_day(&sim).await;

    let path = format!("/admin/files/settlement?partner={MD5}&day=2026-03-02");
    let r = sim
        .https
        .http()
        .request(hyper::Method::GET, &path, None, Vec::new())
        .await
        .unwrap();
    let disposition = r
        .headers
        .get("content-disposition")
        .unwrap()
        .to_str()
        .unwrap();
    assert!(disposition.contains("2088101122136241_settle_20260302.csv"));
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("Partner_transaction_id|Transaction_id|Amount|Rmb_amount|Fee|"),
        "no header line: the columns come first: {text}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split('|').collect()).collect();
    assert_eq!(rows.len(), 4, "{text}");
    let p = rows.iter().find(|r| r[0] == "F1" && r[11] == "P").unwrap();
    assert_eq!(
        (p[2], p[3], p[4], p[5], p[8], p[12]),
        ("100.00", "710.65", "1.80", "98.20", "7.10650000", "L")
    );
    assert!(rows.iter().any(|r| r[0] == "F1-R1" && r[11] == "R"));
    sim.handle.shutdown().await;
}
