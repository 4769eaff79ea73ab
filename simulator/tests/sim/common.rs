//! Helpers of the integration tests: start a simulator in-process on loopback port 0, sign
//! requests like a merchant, read and verify answers, and use the admin API.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alipay::{
    Amount, BeijingTime, CancelRequest, Charset, Currency, ExtendInfo, IdentityCodeType,
    PayRequest, QueryRequest, RefundRequest, Request, Secret, SignType, Signer, Verifier,
};
use alipay_sim::client::{split_charset, HttpResponse};
use alipay_sim::{GatewayClient, SimHandle, SimOptions, Simulator};
use hyper::Method;
use serde_json::{json, Value};

pub const MD5: &str = "2088101122136241";
pub const RSA2: &str = "2088101122136242";
pub const RSA: &str = "2088101122136243";
/// The simulated Beijing time every test starts at.
pub const START: &str = "2026-03-02 10:00:00";
pub const NORMAL_CODE: &str = "286648812345678901";

fn key_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../config/keys")
        .join(name)
}

fn key(name: &str) -> String {
    std::fs::read_to_string(key_path(name)).unwrap()
}

/// The merchant's signer of `partner`.
pub fn merchant_signer(partner: &str) -> Signer {
    match partner {
        MD5 => Signer::md5(key("md5_2088101122136241.key").trim()).unwrap(),
        RSA2 => Signer::from_key_text(SignType::Rsa2, &key("merchant_rsa2_private.pem")).unwrap(),
        RSA => Signer::from_key_text(SignType::Rsa, &key("merchant_rsa_private.pem")).unwrap(),
        _ => panic!("no such test partner"),
    }
}

/// Verifies what the simulated Alipay signs for `partner`.
pub fn alipay_verifier(partner: &str) -> Verifier {
    match partner {
        MD5 => Verifier::from_key_text(SignType::Md5, &key("md5_2088101122136241.key")).unwrap(),
        RSA2 => Verifier::from_key_text(SignType::Rsa2, &key("alipay_rsa2_public.pem")).unwrap(),
        RSA => Verifier::from_key_text(SignType::Rsa, &key("alipay_rsa_public.pem")).unwrap(),
        _ => panic!("no such test partner"),
    }
}

/// A running simulator and clients for it.
pub struct Sim {
    pub handle: SimHandle,
    pub https: GatewayClient,
}

/// Starts a simulator at `scale`, after `tweak` adjusts the options.
pub async fn start_with(scale: u32, tweak: impl FnOnce(&mut SimOptions)) -> Sim {
    let mut o = SimOptions::for_tests().unwrap();
    o.time_scale = scale;
    o.clock_start = BeijingTime::parse_dashed(START);
    tweak(&mut o);
    let handle = Simulator::start(o).await.unwrap();
    let https = handle
        .https_client()
        .unwrap()
        .with_timeout(Duration::from_secs(10));
    Sim { handle, https }
}

/// Starts a simulator at `scale` with the shipped configuration.
pub async fn start(scale: u32) -> Sim {
    start_with(scale, |_| {}).await
}

/// A gateway answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub content_type: String,
}

impl Answer {
    pub fn of(r: HttpResponse) -> Answer {
        let content_type = r
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        Answer {
            status: r.status,
            body: r.body.to_vec(),
            content_type,
        }
    }

    /// Parses and verifies the signature with `verifier`; returns (is_success, error element).
    pub fn verify(&self, verifier: &Verifier) -> (bool, Option<String>) {
        assert_eq!(self.status, 200, "{}", String::from_utf8_lossy(&self.body));
        assert_eq!(self.content_type, "text/xml; charset=GBK");
        let mut scratch = String::new();
        let doc = alipay::read_response(&self.body, &mut scratch, 1 << 20).unwrap();
        assert_eq!(doc.encoding, Charset::Gbk);
        if doc.is_success || doc.sign.is_some() {
            assert!(doc.sign.is_some(), "an accepted answer must be signed");
            doc.verify(verifier, &mut Vec::new()).unwrap();
        }
        (doc.is_success, doc.error.as_deref().map(str::to_owned))
    }

    /// A business field.
    pub fn field(&self, name: &str) -> Option<String> {
        let mut scratch = String::new();
        let doc = alipay::read_response(&self.body, &mut scratch, 1 << 20).unwrap();
        doc.fields().get(name).map(|v| v.into_owned())
    }

    /// `result_code`.
    pub fn result(&self) -> String {
        self.field("result_code").unwrap_or_default()
    }

    /// The gateway `<error>` of a rejection (is_success=F).
    pub fn gateway_error(&self) -> Option<String> {
        let mut scratch = String::new();
        let doc = alipay::read_response(&self.body, &mut scratch, 1 << 20).unwrap();
        (!doc.is_success).then(|| doc.error.as_deref().unwrap_or("").to_owned())
    }
}

pub fn extend_info() -> ExtendInfo {
    ExtendInfo {
        secondary_merchant_id: "SM001".into(),
        secondary_merchant_name: "Test Cafe".into(),
        secondary_merchant_industry: "5812".into(),
        store_id: "ST01".into(),
        store_name: "Main St".into(),
        terminal_id: "T1".into(),
    }
}

/// A pay of `minor` USD cents.
pub fn pay<'a>(
    partner: &'a str,
    id: &'a str,
    minor: u64,
    code: &'a str,
    notify: Option<&'a str>,
) -> Request<'a> {
    Request::Pay(PayRequest {
        partner,
        partner_trans_id: id,
        trans_name: "Coffee",
        trans_amount: Amount::from_minor(minor, Currency::USD),
        buyer_identity_code: Secret::new(code),
        identity_code_type: IdentityCodeType::Barcode,
        trans_create_time: BeijingTime::parse_compact("20260302100000").unwrap(),
        extend_info: (partner == MD5).then(extend_info),
        trans_currency: None,
        quantity: None,
        memo: None,
        trade_information: None,
        notify_url: notify,
    })
}

pub fn query<'a>(partner: &'a str, id: &'a str) -> Request<'a> {
    Request::Query(QueryRequest {
        partner,
        partner_trans_id: Some(id),
        alipay_trans_id: None,
    })
}

pub fn cancel<'a>(partner: &'a str, id: &'a str) -> Request<'a> {
    Request::Cancel(CancelRequest {
        partner,
        out_trade_no: Some(id),
        trade_no: None,
        timestamp_ms: 1_772_416_800_000,
        terminal_timestamp_ms: None,
        notify_url: None,
    })
}

pub fn refund<'a>(partner: &'a str, id: &'a str, refund_id: &'a str, minor: u64) -> Request<'a> {
    Request::Refund(RefundRequest {
        partner,
        partner_trans_id: id,
        alipay_trans_id: None,
        partner_refund_id: refund_id,
        refund_amount: Amount::from_minor(minor, Currency::USD),
        refund_reason: Some("damaged"),
        is_sync: true,
        notify_url: None,
    })
}

/// An answer read frame by frame: when the head arrived, and when each data frame did.
pub struct Streamed {
    pub status: u16,
    pub head_at: Instant,
    pub frames: Vec<(Instant, usize)>,
    pub answer: Answer,
}

impl Streamed {
    /// Asserts a trickled body: the head came first, then at least two data frames, the last
    /// at least 0.8 × `over` after the head (lower bounds only: the machine may be slow).
    pub fn assert_trickled_over(&self, over: Duration) {
        assert_eq!(self.status, 200);
        assert!(self.frames.len() >= 2, "{} frames", self.frames.len());
        assert!(self.frames.iter().all(|(at, _)| *at >= self.head_at));
        let (last, _) = self.frames[self.frames.len() - 1];
        let spread = last - self.head_at;
        assert!(spread >= over.mul_f64(0.8), "the body took only {spread:?}");
    }
}

impl Sim {
    /// POSTs `request` over plain HTTP with a fresh connection and reads the answer frame by
    /// frame, timing each.
    pub async fn post_streamed(&self, request: &Request<'_>) -> Streamed {
        use http_body_util::{BodyExt, Full};
        let signer = merchant_signer(request.partner());
        let form = GatewayClient::signed_form(request, Charset::Utf8, &signer).unwrap();
        let (query, body) = split_charset(&form);
        let addr = self.handle.http_addr().unwrap();
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let io = hyper_util::rt::TokioIo::new(tcp);
        let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        tokio::spawn(conn);
        let req = hyper::Request::post(format!("/gateway.do?{query}"))
            .header("host", addr.to_string())
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(hyper::body::Bytes::from(body)))
            .unwrap();
        let response = sender.send_request(req).await.unwrap();
        let head_at = Instant::now();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        let mut incoming = response.into_body();
        let (mut frames, mut bytes) = (Vec::new(), Vec::new());
        while let Some(frame) = incoming.frame().await {
            if let Some(data) = frame.unwrap().data_ref() {
                frames.push((Instant::now(), data.len()));
                bytes.extend_from_slice(data);
            }
        }
        let answer = Answer {
            status,
            body: bytes,
            content_type,
        };
        Streamed {
            status,
            head_at,
            frames,
            answer,
        }
    }

    /// Moves the simulated clock forward by `ms`.
    pub async fn advance_ms(&self, ms: u64) {
        self.admin_post("/admin/clock", json!({ "advance_ms": ms }))
            .await;
    }

    /// POSTs `request` over HTTPS, UTF-8, signed by its partner's merchant key.
    pub async fn post(&self, request: &Request<'_>) -> Answer {
        let signer = merchant_signer(request.partner());
        Answer::of(
            self.https
                .post(request, Charset::Utf8, &signer)
                .await
                .unwrap(),
        )
    }

    /// POSTs and checks the answer's signature; returns it.
    pub async fn call(&self, request: &Request<'_>) -> Answer {
        let a = self.post(request).await;
        let (ok, err) = a.verify(&alipay_verifier(request.partner()));
        assert!(ok, "gateway rejected: {err:?}");
        a
    }

    /// Queries until the status is `want` (or the real `deadline` passes); returns the status.
    pub async fn wait_status(
        &self,
        partner: &str,
        id: &str,
        want: &str,
        deadline: Duration,
    ) -> String {
        let until = Instant::now() + deadline;
        loop {
            let status = self
                .call(&query(partner, id))
                .await
                .field("alipay_trans_status");
            let status = status.unwrap_or_default();
            if status == want || Instant::now() > until {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    pub async fn admin_get(&self, path: &str) -> Value {
        let (status, v) = self.https.http().get_json(path).await.unwrap();
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    /// Every trade, through all the pages: `{"count": n, "trades": [...]}`.
    pub async fn trades(&self) -> Value {
        let all = self.https.http().get_all_trades(None).await.unwrap();
        json!({ "count": all.len(), "trades": all })
    }

    pub async fn trade(&self, partner: &str, id: &str) -> Value {
        self.admin_get(&format!("/admin/trades/{partner}/{id}"))
            .await
    }

    pub async fn trade_count(&self) -> u64 {
        self.trades().await["count"].as_u64().unwrap()
    }

    pub async fn put_dials(&self, dials: Value) -> Value {
        let (status, v) = self
            .https
            .http()
            .send_json(Method::PUT, "/admin/dials", &dials)
            .await
            .unwrap();
        assert_eq!(status, 200, "{v}");
        v
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Value {
        let (status, v) = self
            .https
            .http()
            .send_json(Method::POST, path, &body)
            .await
            .unwrap();
        assert_eq!(status, 200, "{v}");
        v
    }

    pub async fn reset(&self) {
        self.admin_post("/admin/reset", json!({})).await;
    }
}
