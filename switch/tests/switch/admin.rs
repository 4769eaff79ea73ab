//! The operators' admin API over a real socket: a paid transaction looked up with its history;
//! a pay left unknown listed as pending and cancelled by an operator (journaled with who and why,
//! closed at the simulator); the refusals (final, not cancellable, bad bodies) change nothing;
//! a cancel the resolver gave up on listed as an exception until an operator acts. Then the
//! boundaries as tables: routing and path segments, operator bodies, views, error statuses.

use std::time::Duration;

use alipay_sim::client::{HttpClient, HttpResponse};
use hyper::Method;
use ledger::record::KEY_FIELD_BYTES_MAX;
use ledger::{Event, TxnKey};
use serde_json::{json, Value};
use switch::admin::{
    event_view, operator_body, route, Action, AdminError, List, Route, LIST_LIMIT_DEFAULT,
    OPERATOR_TEXT_CHARS_MAX,
};
use switch::resolver::OperatorError;

use crate::common::*;

/// The resolver leaves a pay whose outcome is unknown alone for ten minutes: it stays pending
/// for the whole test.
const PATIENT_RESOLVER: &str = "
[resolver]
first_query_after_ms = 600000
query_interval_ms = 600000
query_window_ms = 600000
";

/// The resolver gives up after the first cancel without a definite answer.
const IMPATIENT_RESOLVER: &str = "
[resolver]
first_query_after_ms = 600000
query_interval_ms = 600000
query_window_ms = 600000
cancel_retry_ms = [100]
cancel_attempts_max = 1
";

/// Generous upper bound for the resolver's background work to show.
const SETTLE: Duration = Duration::from_secs(20);

/// A client of the switch's admin API.
struct Admin {
    http: HttpClient,
}

impl Admin {
    fn of(env: &Env) -> Admin {
        let addr = env
            .switch
            .as_ref()
            .unwrap()
            .admin_api
            .expect("admin API bound");
        let http = HttpClient::new(&format!("http://{addr}"), None)
            .unwrap()
            .with_timeout(Duration::from_secs(30));
        Admin { http }
    }

    async fn raw(&self, method: Method, path: &str, body: &[u8]) -> HttpResponse {
        self.http
            .request(method, path, Some("application/json"), body.to_vec())
            .await
            .unwrap()
    }

    /// Status and JSON body; every answer, error or not, is JSON.
    async fn send(&self, method: Method, path: &str, body: &[u8]) -> (u16, Value) {
        let r = self.raw(method, path, body).await;
        assert_eq!(
            r.headers.get("content-type").unwrap(),
            "application/json",
            "{path}"
        );
        let v: Value = serde_json::from_slice(&r.body)
            .unwrap_or_else(|e| panic!("{path}: {e}: {}", String::from_utf8_lossy(&r.body)));
        (r.status, v)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(Method::GET, path, b"").await
    }

    async fn act(&self, caller: &str, ptid: &str, action: &str, body: Value) -> (u16, Value) {
        let path = format!("/txns/{caller}/{ptid}/{action}");
        self.send(Method::POST, &path, body.to_string().as_bytes())
            .await
    }

    async fn txn(&self, caller: &str, ptid: &str) -> Value {
        let (status, v) = self.get(&format!("/txns/{caller}/{ptid}")).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Polls `path` until `done` holds of its body, within [`SETTLE`].
    async fn wait_for(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let (status, v) = self.get(path).await;
            assert_eq!(status, 200, "{v}");
            if done(&v) {
                return v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{path} never showed what was awaited: {v}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn kinds(txn: &Value) -> Vec<String> {
    txn["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn operator_actions(txn: &Value) -> Vec<Value> {
    txn["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "OperatorAction")
        .map(|e| e["body"].clone())
        .collect()
}

fn item<'a>(list: &'a Value, ptid: &str) -> Option<&'a Value> {
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["partner_trans_id"] == ptid)
}

fn ops(why: &str) -> Value {
    json!({ "who": "ops-li", "why": why })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_paid_transaction_is_looked_up_with_its_history_and_cannot_be_resolved() {
    let env = start().await;
    let admin = Admin::of(&env);
    assert_eq!(
        env.call(&pay(M1, M1, "ADM-PAID-1", "12.34", CODE))
            .await
            .result(),
        "SUCCESS"
    );

    let txn = admin.txn(M1, "ADM-PAID-1").await;
    let state = &txn["state"];
    assert_eq!(
        state["txn"],
        json!({ "merchant": M1, "partner_trans_id": "ADM-PAID-1" })
    );
    assert_eq!(state["status"], "Paid");
    assert_eq!(state["amount"], json!({ "minor": 1234, "currency": "USD" }));
    assert_eq!(state["exception"], Value::Null);
    assert!(
        state["fingerprint"].as_str().unwrap().len() == 64,
        "{state}"
    );
    let k = kinds(&txn);
    assert_eq!(k.first().map(String::as_str), Some("PayReceived"), "{k:?}");
    assert!(k.iter().any(|k| k == "PayOutcome"), "{k:?}");
    let seqs: Vec<u64> = txn["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let outcome = &txn["events"][k.iter().position(|k| k == "PayOutcome").unwrap()];
    assert_eq!(outcome["body"]["result"], "Success", "{outcome}");
    assert!(outcome["at_ms"].as_i64().unwrap() > 0);
    // Percent-encoded segments name the same transaction.
    let encoded = admin.txn("2088%3000000000001", "ADM%2DPAID%2d1").await;
    assert_eq!(encoded["state"], txn["state"]);
    // Not pending, so in neither list.
    let (_, pending) = admin.get("/pending").await;
    assert_eq!(pending["total"], 0, "{pending}");

    // Absent transactions, unknown paths, wrong methods, bad queries.
    let (status, v) = admin.get(&format!("/txns/{M1}/NO-SUCH")).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("not_found")),
        "{v}"
    );
    let (status, v) = admin.get(&format!("/txns/{SI}/ADM-PAID-1")).await;
    assert_eq!(
        status, 404,
        "another caller's key is another transaction: {v}"
    );
    let (status, v) = admin.get("/nothing/here").await;
    assert_eq!(
        (status, v["error"].as_str()),
        (404, Some("no_route")),
        "{v}"
    );
    let r = admin
        .raw(Method::DELETE, &format!("/txns/{M1}/ADM-PAID-1"), b"")
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers.get("allow").unwrap(), "GET");
    let r = admin
        .raw(Method::GET, &format!("/txns/{M1}/ADM-PAID-1/resolve"), b"")
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers.get("allow").unwrap(), "POST");
    for bad in [
        "/pending?limit=0",
        "/pending?limit=1001",
        "/exceptions?size=3",
    ] {
        let (status, v) = admin.get(bad).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {v}"
        );
    }
    let (status, _) = admin.get(&format!("/txns/{M1}/bad%zz")).await;
    assert_eq!(status, 400);

    // A final transaction has nothing to resolve: 409, and nothing journaled.
    let before = env.journal_events();
    let (status, v) = admin.act(M1, "ADM-PAID-1", "resolve", ops("T-1")).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("conflict")),
        "{v}"
    );
    let (status, v) = admin.act(M1, "NO-SUCH", "resolve", ops("T-1")).await;
    assert_eq!(status, 404, "{v}");
    assert_eq!(env.journal_events(), before);
    // A failed pay cannot be cancelled: 409.
    let failed = env
        .call(&pay(M1, M1, "ADM-FAIL-1", "1.00", "280010000000000000"))
        .await;
    assert_eq!(failed.result(), "FAIL");
    let before_cancel = env.journal_events();
    let (status, v) = admin.act(M1, "ADM-FAIL-1", "cancel", ops("T-2")).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (409, Some("conflict")),
        "{v}"
    );
    assert_eq!(env.journal_events(), before_cancel);
    assert!(operator_actions(&admin.txn(M1, "ADM-PAID-1").await).is_empty());
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unknown_pay_is_pending_until_an_operator_cancels_it() {
    let env = start_with(|t| t + PATIENT_RESOLVER).await;
    let admin = Admin::of(&env);
    // 280003: the pay is answered UNKNOWN and the buyer never acts.
    let code = "280003000000000000";
    let a = env.call(&pay(M1, M1, "ADM-UNK-1", "5.00", code)).await;
    assert_eq!(
        a.result(),
        "UNKNOWN",
        "{}",
        String::from_utf8_lossy(&a.body)
    );
    let b = env.call(&pay(M1, M1, "ADM-UNK-2", "6.00", code)).await;
    assert_eq!(
        b.result(),
        "UNKNOWN",
        "{}",
        String::from_utf8_lossy(&b.body)
    );

    // A page of one says how many there are in all; the list is in key order.
    let page = admin.get("/pending?limit=1").await.1;
    assert_eq!(
        (page["total"].as_u64(), page["count"].as_u64()),
        (Some(2), Some(1)),
        "{page}"
    );
    assert!(item(&page, "ADM-UNK-1").is_some(), "{page}");
    let pending = admin.get("/pending").await.1;
    assert_eq!(
        (pending["total"].as_u64(), pending["count"].as_u64()),
        (Some(2), Some(2))
    );
    let line = item(&pending, "ADM-UNK-1").expect("listed");
    assert_eq!(line["merchant"], M1);
    assert_eq!(line["status"], "Unknown");
    assert!(line["received_at_ms"].as_i64().unwrap() > 0);
    assert!(line["updated_at_ms"].as_i64() >= line["received_at_ms"].as_i64());
    assert!(line.get("reason").is_none(), "no exception: {line}");
    let exceptions = admin.get("/exceptions").await.1;
    assert_eq!(exceptions["total"], 0, "{exceptions}");

    // Bad bodies: 400 (413 when too large), and nothing journaled.
    let before = env.journal_events();
    let path = format!("/txns/{M1}/ADM-UNK-1/cancel");
    let too_long = "x".repeat(129);
    let bad_bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"not json".to_vec(),
        b"{}".to_vec(),
        br#"{"who":"ops-li"}"#.to_vec(),
        br#"{"why":"T-3"}"#.to_vec(),
        br#"{"who":"","why":"T-3"}"#.to_vec(),
        br#"{"who":"ops-li","why":"  "}"#.to_vec(),
        br#"{"who":"ops-li","why":"T-3","extra":true}"#.to_vec(),
        br#"{"who":"ops\u0007li","why":"T-3"}"#.to_vec(),
        format!(r#"{{"who":"ops-li","why":"{too_long}"}}"#).into_bytes(),
    ];
    for body in &bad_bodies {
        let (status, v) = admin.send(Method::POST, &path, body).await;
        assert_eq!(
            (status, v["error"].as_str()),
            (400, Some("bad_request")),
            "{}: {v}",
            String::from_utf8_lossy(body)
        );
    }
    let huge = format!(
        r#"{{"who":"ops-li","why":"T-3","pad":"{}"}}"#,
        "x".repeat(17 * 1024)
    );
    let (status, v) = admin.send(Method::POST, &path, huge.as_bytes()).await;
    assert_eq!(
        (status, v["error"].as_str()),
        (413, Some("body_too_large")),
        "{v}"
    );
    assert_eq!(
        env.journal_events(),
        before,
        "a refused request journals nothing"
    );
    assert!(operator_actions(&admin.txn(M1, "ADM-UNK-1").await).is_empty());

    // The operator cancels: journaled with who and why, sent, and closed at the simulator.
    let (status, v) = admin
        .act(M1, "ADM-UNK-1", "cancel", ops("TICKET-7 buyer walked away"))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["action"], "cancel");
    assert_eq!(v["state"]["status"], "Closed", "{v}");
    let txn = admin.txn(M1, "ADM-UNK-1").await;
    assert_eq!(
        operator_actions(&txn),
        vec![json!({ "who": "ops-li", "why": "TICKET-7 buyer walked away", "action": "cancel" })]
    );
    let k = kinds(&txn);
    let acted = k.iter().position(|k| k == "OperatorAction").unwrap();
    let attempt = k.iter().position(|k| k == "CancelAttempt").unwrap();
    assert!(
        acted < attempt,
        "the action is journaled before the cancel is sent: {k:?}"
    );
    assert!(k.iter().any(|k| k == "CancelResult"), "{k:?}");
    let upstream_id = txn["state"]["upstream_trans_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let trades = env.sim_trades(ACQUIRER).await;
    let trade = trades
        .iter()
        .find(|t| t["partner_trans_id"] == upstream_id.as_str())
        .unwrap_or_else(|| panic!("no trade {upstream_id} in {trades:?}"));
    assert_eq!(trade["status"], "TRADE_CLOSED", "{trade}");
    assert!(!trade["cancel"].is_null(), "{trade}");

    // Final now: off the pending list (the other stays), and neither action applies any more.
    let pending = admin.wait_for("/pending", |v| v["total"] == 1).await;
    assert!(item(&pending, "ADM-UNK-1").is_none());
    assert!(item(&pending, "ADM-UNK-2").is_some());
    let before = env.journal_events();
    let (status, _) = admin.act(M1, "ADM-UNK-1", "resolve", ops("T-4")).await;
    assert_eq!(status, 409);
    let (status, _) = admin.act(M1, "ADM-UNK-1", "cancel", ops("T-4")).await;
    assert_eq!(status, 409);
    assert_eq!(env.journal_events(), before);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cancel_the_resolver_gave_up_on_is_an_exception_until_an_operator_acts() {
    let env = start_with(|t| t + IMPATIENT_RESOLVER).await;
    let admin = Admin::of(&env);
    // 280040: the trade's first cancel answers FAIL retry_flag=Y, the next succeeds.
    env.sim_dials(json!({ "cancel_retry_count": 1 })).await;
    let code = "280040000000000000";
    assert_eq!(
        env.call(&pay(M1, M1, "ADM-EXC-1", "7.00", code))
            .await
            .result(),
        "SUCCESS"
    );

    // The operator's cancel gets no definite answer; with one attempt allowed the resolver
    // gives up and the transaction waits for an operator.
    let (status, v) = admin.act(M1, "ADM-EXC-1", "cancel", ops("T-5")).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"]["status"], "Paid", "{v}");
    assert_eq!(v["state"]["cancel"]["attempts"], 1, "{v}");
    assert_eq!(v["state"]["cancel"]["retry"], true, "{v}");
    let exceptions = admin.wait_for("/exceptions", |v| v["total"] == 1).await;
    let line = item(&exceptions, "ADM-EXC-1").expect("listed");
    let reason = line["reason"].as_str().unwrap();
    assert!(reason.contains("cancel"), "{reason}");
    assert!(line["exception_at_ms"].as_i64().unwrap() > 0, "{line}");
    // The pending list shows it too, with its reason.
    let pending = admin.get("/pending").await.1;
    assert_eq!(item(&pending, "ADM-EXC-1").unwrap()["reason"], reason);
    let txn = admin.txn(M1, "ADM-EXC-1").await;
    assert_eq!(txn["state"]["exception"]["reason"], reason);
    assert!(kinds(&txn).iter().any(|k| k == "Exception"));

    // "Resolve now": journaled, and the answer's state has the exception cleared.
    let (status, v) = admin
        .act(M1, "ADM-EXC-1", "resolve", ops("T-6 retry now"))
        .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["action"], "resolve");
    assert_eq!(v["state"]["exception"], Value::Null, "{v}");
    let txn = admin.txn(M1, "ADM-EXC-1").await;
    let actions = operator_actions(&txn);
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[1]["who"], "ops-li");
    assert_eq!(actions[1]["why"], "T-6 retry now");
    assert_eq!(actions[1]["action"], "resolve now");

    // The action re-arms the resolver's limit: it sends the cancel again itself, gets Alipay's
    // definite answer, and the trade is reversed with nothing left to list.
    let done = admin
        .wait_for(&format!("/txns/{M1}/ADM-EXC-1"), |v| {
            v["state"]["status"] == "Reversed"
        })
        .await;
    assert_eq!(done["state"]["exception"], Value::Null, "{done}");
    assert_eq!(done["state"]["cancel"]["attempts"], 2, "{done}");
    admin.wait_for("/exceptions", |v| v["total"] == 0).await;
    admin.wait_for("/pending", |v| v["total"] == 0).await;
    let trades = env.sim_trades(ACQUIRER).await;
    assert_eq!(trades.len(), 1);
    assert_eq!(trades[0]["status"], "TRADE_CLOSED", "{}", trades[0]);
    env.stop().await;
}

// ---------------------------------------------------------------------------------------------
// The boundaries, one table each, without a socket: routing and path segments, operator bodies,
// the views, the error statuses.

fn key(m: &str, p: &str) -> TxnKey {
    TxnKey::new(m, p)
}

/// One routing case: method, path with query, expected route or error code.
fn check(method: Method, target: &str, expected: Result<Route, &str>) {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let got = route(&method, path, query).map_err(|e| e.code());
    assert_eq!(got, expected, "{method} {target}");
}

#[test]
fn routes() {
    use Action::*;
    use List::*;
    let m = "2088000000000001";
    check(
        Method::GET,
        "/txns/2088000000000001/A1",
        Ok(Route::Txn(key(m, "A1"))),
    );
    check(
        Method::GET,
        "/txns/2088000000000001/A%2F1%20x%C3%A9",
        Ok(Route::Txn(key(m, "A/1 xé"))),
    );
    check(
        Method::GET,
        "/txns/2088000000000001/a+b",
        Ok(Route::Txn(key(m, "a+b"))),
    );
    check(
        Method::POST,
        "/txns/2088000000000001/A1/resolve",
        Ok(Route::Act(key(m, "A1"), Resolve)),
    );
    check(
        Method::POST,
        "/txns/2088000000000001/A1/cancel",
        Ok(Route::Act(key(m, "A1"), Cancel)),
    );
    check(
        Method::GET,
        "/pending",
        Ok(Route::List(Pending, LIST_LIMIT_DEFAULT)),
    );
    check(Method::GET, "/pending?limit=7", Ok(Route::List(Pending, 7)));
    check(
        Method::GET,
        "/exceptions?limit=1000",
        Ok(Route::List(Exceptions, 1000)),
    );
    check(
        Method::GET,
        "/exceptions?",
        Ok(Route::List(Exceptions, 100)),
    );
    // Wrong methods.
    check(Method::POST, "/txns/m/p", Err("method_not_allowed"));
    check(Method::GET, "/txns/m/p/resolve", Err("method_not_allowed"));
    check(Method::DELETE, "/pending", Err("method_not_allowed"));
    check(Method::PUT, "/txns/m/p/cancel", Err("method_not_allowed"));
    // Unknown paths.
    for p in [
        "/",
        "",
        "/txns",
        "/txns/m",
        "/txns/m/p/refund",
        "/txns/m/p/resolve/x",
        "/pending/",
        "/Pending",
        "/txns/m/p/",
        "/metrics",
    ] {
        check(Method::GET, p, Err("no_route"));
    }
    // Bad segments and queries.
    for p in [
        "/txns//p",
        "/txns/m/",
        "/txns/m/%",
        "/txns/m/%4",
        "/txns/m/%zz",
        "/txns/m/%FF",
        "/txns/m/a%00b",
        "/txns/m/a%0Ab",
        "/pending?limit=0",
        "/pending?limit=1001",
        "/pending?limit=-1",
        "/pending?limit=",
        "/pending?limit=ten",
        "/pending?limit=99999999999999999999999",
        "/pending?lmit=5",
    ] {
        check(Method::GET, p, Err("bad_request"));
    }
    let long = "x".repeat(KEY_FIELD_BYTES_MAX);
    check(
        Method::GET,
        &format!("/txns/m/{long}"),
        Ok(Route::Txn(key("m", &long))),
    );
    check(Method::GET, &format!("/txns/m/{long}x"), Err("bad_request"));
    let encoded = "%41".repeat(KEY_FIELD_BYTES_MAX + 1);
    check(
        Method::GET,
        &format!("/txns/m/{encoded}"),
        Err("bad_request"),
    );
}

fn check_body(body: &str, expected: Result<(&str, &str), &str>) {
    let got = operator_body(body.as_bytes());
    match (&got, expected) {
        (Ok((w, y)), Ok((ew, ey))) => assert_eq!((w.as_str(), y.as_str()), (ew, ey), "{body}"),
        (Err(e), Err(fragment)) => {
            assert_eq!(e.code(), "bad_request", "{body}");
            assert!(e.to_string().contains(fragment), "{body}: {e}");
        }
        _ => panic!("{body}: got {got:?}"),
    }
}

#[test]
fn operator_bodies() {
    check_body(
        r#"{"who":"ops-li","why":"TICKET-42"}"#,
        Ok(("ops-li", "TICKET-42")),
    );
    check_body(r#"{"why":" 工单 7 ","who":" 李 "}"#, Ok(("李", "工单 7")));
    let max = "w".repeat(OPERATOR_TEXT_CHARS_MAX);
    check_body(&format!(r#"{{"who":"{max}","why":"y"}}"#), Ok((&max, "y")));
    check_body(
        &format!(r#"{{"who":"{max}w","why":"y"}}"#),
        Err("`who` is over"),
    );
    check_body(r#"{"who":"a"}"#, Err("missing field `why`"));
    check_body(r#"{"why":"a"}"#, Err("missing field `who`"));
    check_body(r#"{"who":"","why":"y"}"#, Err("`who` is empty"));
    check_body(r#"{"who":"w","why":"   "}"#, Err("`why` is empty"));
    check_body(r#"{"who":"w","why":"a\nb"}"#, Err("`why` has a control"));
    check_body(r#"{"who":"w\u0000","why":"y"}"#, Err("`who` has a control"));
    check_body(r#"{"who":"w","why":"y","extra":1}"#, Err("unknown field"));
    check_body(r#"{"who":1,"why":"y"}"#, Err("invalid type"));
    check_body(r#"{"who":null,"why":"y"}"#, Err("invalid type"));
    check_body("", Err("the body must be"));
    check_body("who=w&why=y", Err("the body must be"));
    check_body("[]", Err("the body must be"));
    check_body(r#"{"who":"w","why":"y"} trailing"#, Err("trailing"));
}

#[test]
fn an_event_is_shown_with_its_kind_and_fields() {
    let event = Event {
        seq: 9,
        prev_hash: [7; 32],
        at_ms: 1_700_000_000_000,
        txn: key("m", "p"),
        body: ledger::EventBody::OperatorAction {
            who: "ops".into(),
            why: "T-1".into(),
            action: "cancel".into(),
        },
    };
    assert_eq!(
        event_view(&event).unwrap(),
        json!({
            "seq": 9,
            "at_ms": 1_700_000_000_000_i64,
            "kind": "OperatorAction",
            "body": { "who": "ops", "why": "T-1", "action": "cancel" },
        })
    );
}

#[test]
fn errors_have_their_status() {
    let cases = [
        (AdminError::BadRequest("x".into()), 400),
        (AdminError::NotFound, 404),
        (AdminError::NoRoute, 404),
        (AdminError::Method("GET"), 405),
        (AdminError::BodyTimeout, 408),
        (AdminError::BodyTooLarge, 413),
        (AdminError::Conflict("x".into()), 409),
        (AdminError::Busy("x".into()), 503),
        (AdminError::Internal("x".into()), 500),
    ];
    for (e, status) in cases {
        assert_eq!(e.status().as_u16(), status, "{e:?}");
    }
    assert_eq!(
        AdminError::from(OperatorError::Final).status().as_u16(),
        409
    );
    assert_eq!(
        AdminError::from(OperatorError::NotCancellable("Closed".into()))
            .status()
            .as_u16(),
        409
    );
    assert_eq!(
        AdminError::from(OperatorError::NotFound).status().as_u16(),
        404
    );
    assert_eq!(
        AdminError::from(OperatorError::Busy("journal"))
            .status()
            .as_u16(),
        503
    );
}
