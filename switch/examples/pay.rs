//! Sends one signed pay, then a query, to a running switch as the shipped test merchant
//! 2088000000000001 (MD5, key `config/keys/caller_md5_2088000000000001.key`, TEST ONLY), and
//! prints the answers. Run the switch first (`cargo run --release -p switch`), then, from the
//! repository root:
//!
//! ```sh
//! cargo run -p switch --example pay                   # a pay of 10.00 USD, then a query
//! cargo run -p switch --example pay -- 280001000000000000   # a buyer code with a magic behaviour
//! ```
//!
//! The switch's plain-HTTP gateway is `http://127.0.0.1:8080/gateway.do` in the shipped
//! configuration; set `SWITCH_URL` to use another.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use alipay::{Charset, FormBuilder, Signer};
use alipay_sim::GatewayClient;

const CALLER: &str = "2088000000000001";

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let url = std::env::var("SWITCH_URL").unwrap_or_else(|_| "http://127.0.0.1:8080".into());
    let code = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "286648812345678901".into());
    let key = std::fs::read_to_string("config/keys/caller_md5_2088000000000001.key")
        .expect("run from the repository root");
    let signer = Signer::md5(key.trim()).unwrap();
    let client = GatewayClient::new(&url, None).unwrap();
    let order = format!("EX{}", std::process::id());
    let pay = [
        ("service", "alipay.acquire.overseas.spot.pay"),
        ("partner", CALLER),
        ("alipay_seller_id", CALLER),
        ("partner_trans_id", order.as_str()),
        ("trans_name", "Example"),
        ("currency", "USD"),
        ("trans_amount", "10.00"),
        ("buyer_identity_code", code.as_str()),
        ("identity_code_type", "barcode"),
        ("trans_create_time", "20261127120000"),
        ("biz_product", "OVERSEAS_MBARCODE_PAY"),
    ];
    let query = [
        ("service", "alipay.acquire.overseas.query"),
        ("partner", CALLER),
        ("partner_trans_id", order.as_str()),
    ];
    for params in [&pay[..], &query[..]] {
        let mut b = FormBuilder::new(Charset::Utf8);
        for (n, v) in params {
            b.push(n, v);
        }
        let (q, body) = b.finish_post(&signer).unwrap();
        let answer = client.post_raw(&q, body).await.unwrap();
        println!(
            "HTTP {}\n{}\n",
            answer.status,
            String::from_utf8_lossy(&answer.body)
        );
    }
}
