//! Hostile and malformed input (INV-9): each case gets its documented answer and leaves the
//! journal and the simulator untouched.

use std::time::Duration;

use alipay::{Charset, FormBuilder, SignType, Signer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::*;

/// Sends `p` signed by `signer` (not necessarily the caller's own).
async fn post_signed_by(env: &Env, p: &[(String, String)], signer: &Signer) -> Answer {
    let mut b = FormBuilder::new(Charset::Utf8);
    for (n, v) in p {
        b.push(n, v);
    }
    let (query, body) = b.finish_post(signer).unwrap();
    env.post_raw(&query, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_bad_input_table() {
    let env = start().await;
    // One good pay first, so the journal is not empty and the counts mean something.
    env.call(&pay(M1, M1, "OK-1", "1.00", CODE)).await;
    let events = env.journal_events();
    let upstream = env.sim_requests().await;

    let good = pay(M1, M1, "BAD-1", "1.00", CODE);
    let rsa2 = Signer::from_key_text(SignType::Rsa2, &key("merchant_rsa2_private.pem")).unwrap();
    let wrong_md5 = Signer::md5("0123456789abcdef0123456789abcdef").unwrap();

    // (name, answer, expected gateway error)
    let mut cases: Vec<(&str, Answer, &str)> = Vec::new();
    let (q, body) = signed(&good, M1);
    let mut dup = body.clone();
    dup.extend_from_slice(format!("&partner={M1}").as_bytes());
    cases.push((
        "duplicate parameter",
        env.post_raw(&q, dup).await,
        "ILLEGAL_ARGUMENT",
    ));
    cases.push((
        "sign type other than the registered one",
        post_signed_by(&env, &good, &rsa2).await,
        "ILLEGAL_SIGN_TYPE",
    ));
    cases.push((
        "bad signature",
        post_signed_by(&env, &good, &wrong_md5).await,
        "ILLEGAL_SIGN",
    ));
    let mut tampered = body.clone();
    let at = tampered.windows(4).position(|w| w == b"1.00").unwrap();
    tampered[at] = b'9';
    cases.push((
        "tampered amount",
        env.post_raw(&q, tampered).await,
        "ILLEGAL_SIGN",
    ));
    cases.push((
        "unknown partner",
        post_signed_by(
            &env,
            &set(good.clone(), "partner", "2088777777777777"),
            &wrong_md5,
        )
        .await,
        "ILLEGAL_PARTNER",
    ));
    for amount in [
        "1e3",
        "-1",
        "01.00",
        "1.001",
        "0.00",
        "100000000.01",
        " 1.00",
    ] {
        let p = set(good.clone(), "trans_amount", amount);
        cases.push(("malformed amount", env.post(&p).await, "ILLEGAL_ARGUMENT"));
    }
    let jpy = set(
        set(good.clone(), "currency", "JPY"),
        "trans_amount",
        "100.50",
    );
    cases.push(("decimals on JPY", env.post(&jpy).await, "ILLEGAL_ARGUMENT"));
    cases.push((
        "unknown service",
        env.post(&set(good.clone(), "service", "alipay.acquire.nothing"))
            .await,
        "ILLEGAL_SERVICE",
    ));
    cases.push((
        "unknown parameter",
        env.post(&set(good.clone(), "favourite_colour", "blue"))
            .await,
        "ILLEGAL_ARGUMENT",
    ));
    cases.push((
        "bad buyer code",
        env.post(&set(good.clone(), "buyer_identity_code", "12345"))
            .await,
        "ILLEGAL_ARGUMENT",
    ));
    let huge = vec![b'a'; 200 * 1024];
    cases.push((
        "oversize body",
        env.post_raw(&q, huge).await,
        "ILLEGAL_ARGUMENT",
    ));
    cases.push((
        "not a form",
        env.post_raw("", b"%zz=1&partner=%".to_vec()).await,
        "ILLEGAL_ARGUMENT",
    ));

    for (name, answer, want) in &cases {
        assert_eq!(answer.status, 200, "{name}");
        assert_eq!(
            answer.gateway_error().as_deref(),
            Some(*want),
            "{name}: {}",
            String::from_utf8_lossy(&answer.body)
        );
    }

    // Slow headers: the connection is closed, not held.
    let addr = env.switch.as_ref().unwrap().http.unwrap();
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.write_all(b"POST /gateway.do HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), tcp.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "a slow-headers connection must be closed by the switch"
    );

    assert_eq!(env.journal_events(), events, "nothing journaled");
    assert_eq!(env.sim_requests().await, upstream, "nothing sent upstream");
    env.stop().await;
}
