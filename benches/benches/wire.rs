//! Criterion benchmarks of the wire format's hot paths: what every request through the switch
//! pays on the way in (form parse + validate + verify), on the way out (XML write + sign), and for
//! every upstream answer (XML read + verify), plus the raw RSA2 operations that bound RSA2 callers.
//!
//! Run: `cargo bench -p switch-benches --bench wire`.

use alipay::{read_response, Charset, Form, FormLimits, Request, ResponseWriter};
use criterion::{black_box, criterion_group, criterion_main, Criterion};
use switch_benches::{md5_signer, pay_request_body, pay_response, rsa2_signer, PayShape, ECHO};

fn split_query(body: &[u8]) -> (&[u8], &[u8]) {
    // Send `_input_charset` in the URL query and the rest in the body, as a POST does.
    let amp = body.iter().position(|&b| b == b'&').unwrap_or(body.len());
    (&body[..amp], &body[(amp + 1).min(body.len())..])
}

fn form_parse_verify(c: &mut Criterion) {
    let limits = FormLimits::default();
    let mut scratch = Vec::with_capacity(1024);
    for (name, signer) in [("md5", md5_signer()), ("rsa2", rsa2_signer())] {
        let verifier = signer.verifier().unwrap_or_else(|e| panic!("{e}"));
        for (shape, shape_name) in PayShape::ALL {
            let body = pay_request_body(&signer, shape);
            let (query, rest) = split_query(&body);
            c.bench_function(
                &format!("pay_request/parse+verify/{name}/{shape_name}"),
                |b| {
                    b.iter(|| {
                        let form = Form::parse(black_box(query), black_box(rest), &limits)
                            .unwrap_or_else(|e| panic!("{e}"));
                        form.verify(&verifier, &mut scratch)
                            .unwrap_or_else(|e| panic!("{e}"));
                        form.params().len()
                    })
                },
            );
            c.bench_function(
                &format!("pay_request/parse+verify+validate/{name}/{shape_name}"),
                |b| {
                    b.iter(|| {
                        let form = Form::parse(black_box(query), black_box(rest), &limits)
                            .unwrap_or_else(|e| panic!("{e}"));
                        form.verify(&verifier, &mut scratch)
                            .unwrap_or_else(|e| panic!("{e}"));
                        let req = Request::from_form(&form).unwrap_or_else(|e| panic!("{e}"));
                        black_box(&req);
                    })
                },
            );
        }
    }
}

fn xml_write_read(c: &mut Criterion) {
    let response = pay_response();
    for (name, signer) in [("md5", md5_signer()), ("rsa2", rsa2_signer())] {
        let verifier = signer.verifier().unwrap_or_else(|e| panic!("{e}"));
        for encoding in [Charset::Utf8, Charset::Gbk] {
            let label = encoding.label();
            let mut writer = ResponseWriter::new();
            c.bench_function(&format!("pay_response/write+sign/{name}/{label}"), |b| {
                b.iter(|| {
                    writer
                        .write(encoding, ECHO, black_box(&response), &signer)
                        .map(<[u8]>::len)
                })
            });
            let body = writer
                .write(encoding, ECHO, &response, &signer)
                .unwrap_or_else(|e| panic!("{e}"))
                .to_vec();
            let mut scratch = String::new();
            let mut buf = Vec::with_capacity(1024);
            if name == "md5" {
                // The floor under read+verify: quick-xml's event loop over the same body, doing
                // nothing with the events.
                let text = std::str::from_utf8(&body).unwrap_or_else(|e| panic!("{e}"));
                c.bench_function(
                    &format!("pay_response/quick-xml-events-only/{label}"),
                    |b| {
                        b.iter(|| {
                            let mut reader = quick_xml::Reader::from_str(black_box(text));
                            let mut events = 0u32;
                            loop {
                                match reader.read_event() {
                                    Ok(quick_xml::events::Event::Eof) | Err(_) => break events,
                                    Ok(_) => events += 1,
                                }
                            }
                        })
                    },
                );
            }
            if name == "md5" {
                c.bench_function(&format!("pay_response/read/{label}"), |b| {
                    b.iter(|| {
                        let doc = read_response(black_box(&body), &mut scratch, 64 * 1024)
                            .unwrap_or_else(|e| panic!("{e}"));
                        black_box(doc.is_success)
                    })
                });
            }
            c.bench_function(&format!("pay_response/read+verify/{name}/{label}"), |b| {
                b.iter(|| {
                    let doc = read_response(black_box(&body), &mut scratch, 64 * 1024)
                        .unwrap_or_else(|e| panic!("{e}"));
                    doc.verify(&verifier, &mut buf)
                        .unwrap_or_else(|e| panic!("{e}"));
                    black_box(doc.is_success)
                })
            });
            c.bench_function(
                &format!("pay_response/read+verify+parse/{name}/{label}"),
                |b| {
                    b.iter(|| {
                        let doc = read_response(black_box(&body), &mut scratch, 64 * 1024)
                            .unwrap_or_else(|e| panic!("{e}"));
                        doc.verify(&verifier, &mut buf)
                            .unwrap_or_else(|e| panic!("{e}"));
                        let parsed: alipay::PayResponse<'_> =
                            doc.parse().unwrap_or_else(|e| panic!("{e}"));
                        black_box(parsed.result_code)
                    })
                },
            );
        }
    }
}

fn rsa2_raw(c: &mut Criterion) {
    let signer = rsa2_signer();
    let verifier = signer.verifier().unwrap_or_else(|e| panic!("{e}"));
    let message = pay_request_body(&md5_signer(), PayShape::Typical);
    let mut sig = String::with_capacity(344);
    c.bench_function("rsa2/sign", |b| {
        b.iter(|| {
            sig.clear();
            signer
                .sign(black_box(&message), &mut sig)
                .unwrap_or_else(|e| panic!("{e}"));
        })
    });
    c.bench_function("rsa2/verify", |b| {
        b.iter(|| verifier.verify(black_box(&message), &sig).is_ok())
    });
}

criterion_group!(benches, form_parse_verify, xml_write_read, rsa2_raw);
criterion_main!(benches);
