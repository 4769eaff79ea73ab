//! Finance: the journal's money movements as Alipay's files, reconciled against Alipay's own.

pub mod alipay_file;
pub mod amount;
pub mod carry;
pub mod error;
pub mod export;
pub mod pricing;
pub mod reconcile;
pub mod report;
pub mod rows;
pub mod settle;
pub mod time;

pub use error::FinanceError;
