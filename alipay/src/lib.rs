//! The Alipay MAPI barcode-payment wire format, both directions, with no I/O.
//!
//! Everything the switch, the simulator and the load generator say to each other goes through
//! this crate: form parameters ([`form`]), the string to sign and MD5/RSA/RSA2 signatures
//! ([`sign`]), typed requests ([`message`]) and responses ([`response`]), the XML envelope
//! ([`xml`]), the `trade_status_sync` notification ([`notify`]), money ([`amount`]) and Beijing
//! time ([`time`]). The protocol itself is described in `shared/alipay-mapi.md`.
//!
//! **Architecture Invariant:** this crate does no I/O and never reads the clock; callers pass
//! bytes in and get bytes out, and pass "now" in where time matters.

pub mod amount;
pub mod charset;
pub mod error;
pub mod form;
pub mod message;
pub mod notify;
pub mod response;
pub mod secret;
pub mod sign;
pub mod time;
pub mod xml;

pub use amount::{Amount, Currency};
pub use charset::Charset;
pub use error::{AmountError, Error, Result};
pub use form::{Form, FormBuilder, FormLimits};
pub use message::{
    CancelAction, CancelRequest, ExtendInfo, GatewayErrorCode, IdentityCodeType, PayRequest,
    QueryRequest, RefundRequest, Request, ResultCode, SellerRule, Service, TradeStatus,
};
pub use notify::{TradeStatusSync, NOTIFY_ACK};
pub use response::{BusinessResponse, CancelResponse, PayResponse, QueryResponse, RefundResponse};
pub use secret::Secret;
pub use sign::{SignType, Signer, Verifier};
pub use time::{BeijingDay, BeijingTime};
pub use xml::{read_response, ResponseDoc, ResponseWriter};
