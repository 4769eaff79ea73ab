//! The pooled TLS client to Alipay (being written).
