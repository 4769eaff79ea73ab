//! Finance: the journal's money movements as Alipay's files, reconciled against Alipay's own
//! transaction file, and settled per merchant.
//!
//! Everything here is a pure function of the journal's events (in seq order) and of a few
//! inputs the journal does not hold (fee rates, exchange rates, Alipay's file, the carry-over
//! state); the `ledger` CLI (`src/bin/ledger.rs`) reads the journal read-only and calls these.
//! This text is mirrored in the "Finance" section of `ledger/README.md`.
//!
//! Module map: [`rows`] (events → rows), [`export`], [`alipay_file`] (the parser),
//! [`reconcile`], [`carry`] (carry-over items and their state file), [`report`], [`settle`],
//! [`scan`] (one read-only pass over a journal; memory is one transaction state per
//! transaction), [`pricing`] (fee and exchange rates), [`amount`] and [`time`] (Alipay's money
//! and time text), [`error`].
//!
//! # Rows ([`rows`])
//!
//! The journal is folded with the writer's own fold ([`crate::state::fold`]); comparing each
//! transaction's state before and after every event yields one row per money movement:
//! `PAYMENT` (the trade became paid: `PayOutcome` Success, or a `QueryResult` `TradeSuccess` /
//! `TradeFinished`), `REFUND` (`RefundResult` Success), `REVERSAL` (`CancelResult` Success,
//! action `Refund`: the whole payment back), `CANCEL` (`CancelResult` Success, action `Close`).
//! A row's day is the Beijing (GMT+8) day of the journal event that moved the money, and its
//! time is that event's `at_ms` (Alipay's own pay time is kept beside it in the plain exports).
//! Alipay lists a row under `Partner_transaction_id` = the id the switch sent it: the upstream
//! trade id, or the upstream refund id for a REFUND; `Transaction_id` = Alipay's trade number.
//!
//! **Fees.** Alipay's pay response has no fee, so an event reports one only if the switch
//! learned it. A row's fee is, in order: the fee its event reported; else the fee computed from
//! the upstream partner's rate (`--fee-rate PARTNER=BPS`), half up, refunds and reversals
//! returning fees cumulatively (the fee on everything refunded so far, capped at the payment's
//! fee, less what was already returned; a reversal returns the rest), exactly as the simulator
//! charges; else unknown: written as `0.00`, marked `unknown` in the plain exports, not
//! compared by reconciliation, and counted in the settlement's footnote. A CANCEL has no fee.
//!
//! **Cancels of trades Alipay may not have.** Alipay lists no row for closing a trade it never
//! had. The journal knows Alipay had the trade when an answer named its trade number or a
//! query found it; when the last query said `NotExist`, or no answer said anything, the CANCEL
//! row is *unconfirmed*: listed in the plain exports, left out of the Alipay-format ones, and
//! never a difference (reported as a count).
//!
//! # Exports ([`export`])
//!
//! `alipay-transactions` → `{partner}_fptrade_{yyyyMMdd}.csv` and `alipay-settlement` →
//! `{partner}_settle_{yyyyMMdd}.csv`, one per upstream partner with rows that day, in spec §8's
//! formats with the simulator's conventions (`simulator/src/files.rs`): rows by time, then
//! PAYMENT, REFUND, REVERSAL, CANCEL, then id; times `yyyy-MM-dd HH:mm:ss` GMT+8;
//! `Order_scene` `paymentQrCode`; amounts unsigned with the currency's decimals (none for JPY
//! and KRW, two otherwise). The settlement file has no header line; it lists PAYMENT as `P`,
//! REFUND and REVERSAL as `R`, `Status` `L`, `Settlement` = `Amount` − `Fee`,
//! `Settlement_time` = `{day} 23:59:59`; `Rate` (8 decimals) and the `Rmb_*` columns come from
//! `--rate CCY=RATE` (CNY is always `1.00000000`) and are empty without one. The journal does
//! not hold the secondary merchant's industry and name, the operator or a pricing currency:
//! those columns are empty and `Trans_currency|Trans_amount|Trans_forex_rate` repeat the
//! currency and amount with `1.00000000`. `csv` → `{merchant}_{yyyyMMdd}.csv` (RFC 4180, CRLF,
//! columns [`export::CSV_COLUMNS`]; free text a spreadsheet would run as a formula gets a
//! leading `'`) and `json` → `{merchant}_{yyyyMMdd}.json` ([`export::MerchantDay`]), with every
//! row of the day including unconfirmed cancels. Merchant ids in file names have every byte
//! outside `[A-Za-z0-9_-]` written `%XX`.
//!
//! # Alipay's transaction file ([`alipay_file`])
//!
//! Parsed strictly: the header `Partner:{pid}|Payment_time:{yyyy-MM-dd}|Total_count:{n}`, the
//! exact column line, then rows of exactly 15 fields with a non-empty id, a supported currency,
//! amounts with the currency's decimals, a `yyyy-MM-dd HH:mm:ss` time and a known type; no
//! (type, id) twice; `Total_count` equal to the rows. The first problem is the error, with its
//! line and reason. CRLF, a UTF-8 BOM and trailing empty lines are accepted. Bounded: lines of
//! 16 KiB, 5 000 000 rows, 2 GiB.
//!
//! # Reconciliation ([`reconcile`], [`carry`], [`report`])
//!
//! Day D of one partner: the journal's rows of D against Alipay's file of D, matched by
//! (`Transaction_type`, `Partner_transaction_id`). A matched pair differs by its most serious
//! disagreement: `AmountMismatch` (amount or currency), else `FeeMismatch` (when the journal
//! knows the fee), else `TradeIdMismatch` (both know Alipay's trade number, and they differ).
//!
//! **Carry-over.** A switch record and Alipay's can fall on either side of midnight (the pay
//! answered at 23:59:59.9 is recorded at 00:00:00.1; a trade resolved by a query after
//! midnight). An item of D left unmatched is carried into D+1 instead of being reported when
//! its time is within the carry window (default 15 minutes, Alipay's cancel grace) of D's end,
//! or, for an Alipay row, when the journal's trade or refund is still pending, or the journal
//! has the same row on a later day. Carried items are written to
//! `{state_dir}/carry-{yyyyMMdd of D}.json` (one section per partner, replaced atomically);
//! reconciling D+1 reads them first and matches them with D+1's data; whatever is still
//! unmatched then is a difference, reported on D+1. Without `--state-dir` nothing is carried
//! in or out and every unmatched item is reported at once.
//!
//! **Final unmatched items.** A journal item and an Alipay item with the same id and different
//! types are one `StatusMismatch` (the journal says paid, Alipay lists a reversal); an Alipay
//! item whose id the journal knows in another state (still pending, failed, or with its row on
//! another day) is a `StatusMismatch`; one the journal has never heard of is
//! `MissingInJournal`; a journal item is `MissingAtAlipay` (unconfirmed cancels aside).
//!
//! The report is a human summary and a JSON document ([`report::ReportJson`], schema in
//! [`report`]); the CLI exits non-zero while differences remain.
//!
//! # Settlement ([`settle`])
//!
//! Per merchant and currency: counts of payments, refunds, reversals and cancels; gross paid,
//! refunded, reversed; fees charged less fees returned; net = gross − refunded − reversed −
//! fees. Over all merchants these equal the `alipay-settlement` export's columns.
//!
//! **Architecture Invariant:** finance only reads: it folds events it is given and never writes
//! to the journal; money is [`crate::Money`] minor units and integer arithmetic, never a float.

pub mod alipay_file;
pub mod amount;
pub mod carry;
pub mod error;
pub mod export;
pub mod pricing;
pub mod reconcile;
pub mod report;
pub mod rows;
pub mod scan;
pub mod settle;
pub mod time;

pub use error::FinanceError;
