//! Runs one wire-format operation N times, for instruction-count profiling under callgrind
//! (`valgrind --tool=callgrind`), which is repeatable on a shared, noisy machine where wall-clock
//! timings are not. Usage: `wire_profile parse|validate|write|read|show N`
//! (`FULL=1` for the full pay request shape).

use alipay::{read_response, Charset, Form, FormLimits, ResponseWriter};
use std::hint::black_box;
use switch_benches::{md5_signer, pay_request_body, pay_response, PayShape, ECHO};

#[allow(clippy::print_stdout)] // a command-line tool: `show` prints the request
fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "parse".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let signer = md5_signer();
    let verifier = signer.verifier().unwrap_or_else(|e| panic!("{e}"));
    let shape = if std::env::var_os("FULL").is_some() {
        PayShape::Full
    } else {
        PayShape::Typical
    };
    let body = pay_request_body(&signer, shape);
    let amp = body.iter().position(|&b| b == b'&').unwrap_or(0);
    let (query, rest) = (&body[..amp], &body[amp + 1..]);
    let limits = FormLimits::default();
    let mut scratch = Vec::new();
    let mut writer = ResponseWriter::new();
    let response = pay_response();
    let xml = writer
        .write(Charset::Gbk, ECHO, &response, &signer)
        .unwrap_or_else(|e| panic!("{e}"))
        .to_vec();
    let mut text = String::new();
    if what == "show" {
        println!("{} bytes: {}", body.len(), String::from_utf8_lossy(&body));
        return;
    }
    for _ in 0..n {
        match what.as_str() {
            "parse" => {
                let form = Form::parse(black_box(query), black_box(rest), &limits)
                    .unwrap_or_else(|e| panic!("{e}"));
                form.verify(&verifier, &mut scratch)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
            "validate" => {
                let form = Form::parse(black_box(query), black_box(rest), &limits)
                    .unwrap_or_else(|e| panic!("{e}"));
                form.verify(&verifier, &mut scratch)
                    .unwrap_or_else(|e| panic!("{e}"));
                black_box(alipay::Request::from_form(&form).map(|r| r.service()).ok());
            }
            "write" => {
                black_box(
                    writer
                        .write(Charset::Gbk, ECHO, &response, &signer)
                        .map(<[u8]>::len)
                        .ok(),
                );
            }
            _ => {
                let doc = read_response(black_box(&xml), &mut text, 1 << 16)
                    .unwrap_or_else(|e| panic!("{e}"));
                doc.verify(&verifier, &mut scratch)
                    .unwrap_or_else(|e| panic!("{e}"));
            }
        }
    }
}
