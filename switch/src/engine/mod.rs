//! The transaction engine: idempotency, coalescing and the journal around every upstream call.
//!
//! For each service the engine follows "The life of a payment" (`ARCHITECTURE.md`):
//!
//! 1. take the transaction key's lock in the bounded in-flight table ([`locks`]): duplicates
//!    wait for the first and then find its journaled answer, so one upstream call serves them
//!    all; refunds of one payment are serialized;
//! 2. read the journal and decide ([`decide`], pure): replay a stored answer, refuse a changed
//!    resubmission (`CONTEXT_INCONSISTENT`) with nothing sent, or go on;
//! 3. journal the intent (synced) before anything leaves the process (INV-3); a refund's intent
//!    reserves its amount in the same write (INV-5); a full journal queue or a failed journal
//!    refuses the request here, before anything was sent (INV-8);
//! 4. call upstream ([`crate::upstream`]); a pay that may have been written is never sent again
//!    (INV-2): its outcome is unknown and stays so until the resolver settles it;
//! 5. journal the outcome (synced) before answering (INV-1), and answer from the journaled state,
//!    so a replay renders the very same answer.
//!
//! Requests are identified in the caller's namespace: the key is `(caller, partner_trans_id)`,
//! as at Alipay (`partner_trans_id` is unique per `partner`). Merchant isolation follows: no
//! caller can name another caller's transaction, and a transaction whose merchant the caller
//! may no longer act for is answered as absent.

pub mod decide;
pub mod locks;
mod resolve;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use alipay::xml::{read_response, DEFAULT_RESPONSE_BYTES_MAX};
use alipay::{Charset, FormBuilder, PayRequest, Request, Service};
use ledger::{
    AppendError, Appended, Draft, EventBody, Hash, Journal, Outcome, RefundKey, Rejected, TxnKey,
    TxnState,
};
use ring::digest;

use crate::telemetry;
use crate::tenants::{Account, Caller, Route, Tenants};
use crate::upstream::{Call, Upstream};
use decide::{PayStep, RefundStep};
use locks::{Lane, Locks};
pub use resolve::{Acted, RefundSend};

/// Reads the clock, in UTC milliseconds: the only time source of the engine.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// Told about every transaction an answer leaves pending (the resolver's intake). It must not
/// block.
pub type Tracker = Arc<dyn Fn(&TxnKey) + Send + Sync>;

/// Why a request was not processed. Nothing was journaled and nothing sent: the caller may
/// retry with the same parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Busy {
    /// The in-flight table is full.
    InFlight,
    /// Another request for the same transaction held it longer than the wait allowed (this
    /// request was not processed; the other one may still be).
    Duplicate,
    /// The journal's queue is full.
    JournalQueue,
    /// The journal cannot write (failed closed) or read.
    Journal,
    /// No upstream endpoint of the account is usable.
    Upstream,
    /// The request could not be built or signed for upstream.
    Build,
}

impl Busy {
    /// A short name for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Busy::InFlight => "in_flight",
            Busy::Duplicate => "duplicate",
            Busy::JournalQueue => "journal_queue",
            Busy::Journal => "journal",
            Busy::Upstream => "upstream",
            Busy::Build => "build",
        }
    }
}

/// The engine's answer to a pay, cancel or query: the transaction's journaled state, from which
/// the gateway renders the merchant's answer.
#[derive(Debug)]
pub enum Answer {
    /// Render from this state.
    State(Box<TxnState>),
    /// No such transaction in the caller's namespace: `TRADE_NOT_EXIST`.
    NotFound,
    /// Same key, different parameters: `CONTEXT_INCONSISTENT`, nothing sent.
    Conflict,
    /// Refused by the transaction's rules (e.g. a refund over the paid amount, a cancel of a
    /// failed pay): the Alipay error code to answer, with the state when there is one.
    Refused(&'static str, Option<Box<TxnState>>),
    /// Not processed; safe to retry.
    Busy(Busy),
}

/// The engine's bounds.
#[derive(Debug, Clone, Copy)]
pub struct EngineLimits {
    /// Transactions locked or awaited at once.
    pub in_flight_max: usize,
    /// Longest wait for another request on the same transaction.
    pub lock_wait: Duration,
    /// The share of `in_flight_max` new pays may take (percent); the rest is kept for the
    /// work that finishes transactions.
    pub pay_share_percent: u8,
    /// A merchant's query of an unresolved transaction asks upstream only when nobody did for
    /// this long (the resolver's query interval); otherwise it is answered from the journal.
    pub query_fresh: Duration,
}

/// The engine.
pub struct Engine {
    journal: Arc<Journal>,
    tenants: Arc<Tenants>,
    upstreams: HashMap<String, Arc<Upstream>>,
    locks: Locks,
    lock_wait: Duration,
    node: String,
    clock: Clock,
    /// When each recently queried transaction was last asked upstream.
    queried: Mutex<HashMap<TxnKey, tokio::time::Instant>>,
    query_fresh: Duration,
    tracker: OnceLock<Tracker>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("node", &self.node)
            .field("in_flight", &self.locks.len())
            .finish_non_exhaustive()
    }
}

/// How long an outcome append waits between tries while the journal's queue is full. The
/// upstream call happened; its outcome must be journaled, so it waits rather than drops.
const OUTCOME_RETRY: Duration = Duration::from_millis(1);

/// Parameters that do not take part in the fingerprint: the signature, its type, the charset
/// (the decoded values are compared) and where to send notifications.
const UNFINGERPRINTED: [&str; 4] = ["sign", "sign_type", "_input_charset", "notify_url"];

/// The fingerprint of a request: SHA-256 over its parameters' decoded names and values (the form
/// is sorted by name), length-prefixed, except [`UNFINGERPRINTED`] and empty values.
pub fn fingerprint(form: &alipay::Form<'_>) -> Hash {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in form.params() {
        if UNFINGERPRINTED.contains(&p.name()) || p.value().is_empty() {
            continue;
        }
        for part in [p.name().as_bytes(), p.value().as_bytes()] {
            let len = u64::try_from(part.len()).unwrap_or(u64::MAX);
            ctx.update(&len.to_le_bytes());
            ctx.update(part);
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// The id the switch sends upstream for `(caller, id)`: the node's prefix, a kind letter and 30
/// hex digits of SHA-256 — unique in the upstream account (120 bits; a collision is refused by
/// the journal's index, never merged), the same on every retry, at most 40 characters.
pub fn upstream_id(node: &str, kind: char, caller: &str, id: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    ctx.update(caller.as_bytes());
    ctx.update(&[0]);
    ctx.update(id.as_bytes());
    let d = ctx.finish();
    let mut s = String::with_capacity(node.len() + 31);
    s.push_str(node);
    s.push(kind);
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in d.as_ref().iter().take(15) {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

impl Engine {
    /// An engine over an open journal, the routing table and one upstream client per account.
    /// A request waits at most `lock_wait` for another request on the same transaction (so
    /// that the wait plus its own upstream call fit in the merchant's deadline).
    pub fn new(
        journal: Arc<Journal>,
        tenants: Arc<Tenants>,
        upstreams: HashMap<String, Arc<Upstream>>,
        limits: EngineLimits,
        node: String,
        clock: Clock,
    ) -> Engine {
        Engine {
            journal,
            tenants,
            upstreams,
            locks: Locks::new(limits.in_flight_max, limits.pay_share_percent),
            lock_wait: limits.lock_wait,
            node,
            clock,
            queried: Mutex::new(HashMap::new()),
            query_fresh: limits.query_fresh,
            tracker: OnceLock::new(),
        }
    }

    /// Installs the resolver's intake (once; later calls are ignored).
    pub fn set_tracker(&self, tracker: Tracker) {
        let _ = self.tracker.set(tracker);
    }

    /// Hands a transaction left pending to the resolver.
    fn track(&self, key: &TxnKey, state: &TxnState) {
        if state.is_pending() {
            if let Some(t) = self.tracker.get() {
                t(key);
            }
        }
    }

    /// The tenants.
    pub fn tenants(&self) -> &Arc<Tenants> {
        &self.tenants
    }

    /// The node id (prefix of upstream ids).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The engine's clock, UTC milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.now()
    }

    /// True when someone asked upstream about `key` less than the freshness interval ago.
    fn queried_recently(&self, key: &TxnKey) -> bool {
        let map = self
            .queried
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.get(key).is_some_and(|t| t.elapsed() < self.query_fresh)
    }

    /// Notes an upstream query of `key`; forgets the stale entries when the map grows, so it
    /// holds about one interval's worth of queried transactions.
    fn note_queried(&self, key: &TxnKey) {
        let mut map = self
            .queried
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() >= QUERIED_PRUNE_AT {
            let fresh = self.query_fresh;
            map.retain(|_, t| t.elapsed() < fresh);
        }
        map.insert(key.clone(), tokio::time::Instant::now());
    }

    /// The journal.
    pub fn journal(&self) -> &Arc<Journal> {
        &self.journal
    }

    /// The upstream clients by account name.
    pub fn upstreams(&self) -> &HashMap<String, Arc<Upstream>> {
        &self.upstreams
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    async fn lock(&self, key: &TxnKey, lane: Lane) -> Result<locks::Held<'_>, Busy> {
        let held = self
            .locks
            .lock(key, self.lock_wait, lane)
            .await
            .map_err(|r| match r {
                locks::Refused::Full => Busy::InFlight,
                locks::Refused::Timeout => Busy::Duplicate,
            })?;
        if held.waited {
            metrics::counter!(telemetry::COALESCED).increment(1);
        }
        metrics::gauge!(telemetry::ENGINE_IN_FLIGHT).set(usize_f64(self.locks.len()));
        Ok(held)
    }

    fn read(&self, key: &TxnKey) -> Result<Option<TxnState>, Busy> {
        self.journal.txn(key).map_err(|e| {
            tracing::error!(error = %e, "journal read failed");
            Busy::Journal
        })
    }

    /// Journals an intent: refused at once when the queue is full (nothing sent yet).
    async fn intent(&self, key: &TxnKey, drafts: Vec<Draft>) -> Result<Appended, AppendError> {
        self.journal.try_append(key.clone(), drafts).await
    }

    /// Journals an outcome: waits while the queue is full, because the call already happened.
    async fn outcome(&self, key: &TxnKey, drafts: Vec<Draft>) -> Result<Appended, AppendError> {
        loop {
            match self.journal.try_append(key.clone(), drafts.clone()).await {
                Err(AppendError::QueueFull) => tokio::time::sleep(OUTCOME_RETRY).await,
                other => return other,
            }
        }
    }

    fn upstream_of(&self, account: &Account) -> Option<&Arc<Upstream>> {
        self.upstreams.get(&account.name)
    }

    /// The transaction `ptid` of `caller`, if it exists and the caller may still act for its
    /// merchant.
    /// The caller's transaction `ptid`, if it exists, the caller may still act for its
    /// merchant, and Alipay's trade number, when the request gives one, is the journal's.
    fn find(
        &self,
        caller: &Caller,
        ptid: &str,
        alipay_trans_id: Option<&str>,
    ) -> Result<Option<(TxnKey, TxnState)>, Busy> {
        let key = TxnKey::new(caller.id.as_str(), ptid);
        let Some(state) = self.read(&key)? else {
            return Ok(None);
        };
        if !self.permitted(caller, &state) {
            return Ok(None);
        }
        if let (Some(given), Some(known)) = (alipay_trans_id, state.alipay_trans_id.as_deref()) {
            if given != known {
                return Ok(None);
            }
        }
        Ok(Some((key, state)))
    }

    /// The caller's transaction `ptid`, locked, with its state read under the lock.
    async fn lock_txn(
        &self,
        caller: &Caller,
        ptid: &str,
        alipay_trans_id: Option<&str>,
    ) -> Result<(locks::Held<'_>, TxnKey, TxnState), Answer> {
        let key = match self.find(caller, ptid, alipay_trans_id) {
            Ok(Some((key, _))) => key,
            Ok(None) => return Err(Answer::NotFound),
            Err(b) => return Err(Answer::Busy(b)),
        };
        let held = self.lock(&key, Lane::Finish).await.map_err(Answer::Busy)?;
        match self.read(&key) {
            Ok(Some(s)) => Ok((held, key, s)),
            Ok(None) => Err(Answer::NotFound),
            Err(b) => Err(Answer::Busy(b)),
        }
    }

    fn permitted(&self, caller: &Caller, state: &TxnState) -> bool {
        self.tenants
            .owner(
                &state.upstream_partner,
                state.secondary_merchant_id.as_deref(),
            )
            .is_some_and(|m| caller.may_act_for(&m.id))
    }

    fn route_of(&self, state: &TxnState) -> Option<(Arc<Account>, Arc<Upstream>)> {
        let account = self.tenants.account_by_partner(&state.upstream_partner)?;
        let upstream = self.upstream_of(account)?;
        Some((Arc::clone(account), Arc::clone(upstream)))
    }

    /// A pay: replayed, refused as a conflict, or journaled, sent once and journaled again.
    pub async fn pay(
        &self,
        caller: &Caller,
        route: &Route,
        req: &PayRequest<'_>,
        extend_info: Option<alipay::ExtendInfo>,
        fingerprint: Hash,
    ) -> Answer {
        let key = TxnKey::new(caller.id.as_str(), req.partner_trans_id);
        let _held = match self.lock(&key, Lane::Pay).await {
            Ok(h) => h,
            Err(b) => return Answer::Busy(b),
        };
        let existing = match self.read(&key) {
            Ok(s) => s,
            Err(b) => return Answer::Busy(b),
        };
        match decide::pay_step(existing.as_ref(), &fingerprint) {
            PayStep::Replay => {
                return match existing {
                    Some(s) if self.permitted(caller, &s) => Answer::State(Box::new(s)),
                    _ => Answer::Conflict,
                }
            }
            PayStep::Conflict => return Answer::Conflict,
            PayStep::Start => {}
        }
        let Some(upstream) = self.upstream_of(&route.account) else {
            return Answer::Busy(Busy::Upstream);
        };
        if !upstream.usable() {
            return Answer::Busy(Busy::Upstream);
        }
        let account = &route.account;
        let upstream_trans_id = upstream_id(&self.node, 'P', &caller.id, req.partner_trans_id);
        // Built and signed before the intent is journaled: a request that cannot be built is
        // refused with nothing journaled.
        // The store, for settlement: the one routed to in acquirer mode.
        let store_id = extend_info
            .as_ref()
            .filter(|_| route.merchant.mode == crate::tenants::Mode::Acquirer)
            .map(|e| e.store_id.clone());
        let mut forward = req.clone();
        forward.partner = &account.partner;
        forward.partner_trans_id = &upstream_trans_id;
        forward.extend_info = extend_info;
        forward.notify_url = None;
        let mut b = FormBuilder::new(Charset::Utf8);
        Request::Pay(forward).write_form(&mut b);
        let Ok((query, body)) = b.finish_post(&account.signer) else {
            return Answer::Busy(Busy::Build);
        };
        let amount = decide::money(req.trans_amount);
        let notify_url = req
            .notify_url
            .map(str::to_owned)
            .or_else(|| caller.notify_url.clone());
        let ext = route.merchant.mode == crate::tenants::Mode::Acquirer;
        let primary = account
            .endpoints
            .first()
            .map(|e| e.name.clone())
            .unwrap_or_default();
        let now = self.now();
        let drafts = vec![
            Draft::new(
                now,
                EventBody::PayReceived {
                    upstream_partner: account.partner.clone(),
                    upstream_trans_id,
                    fingerprint,
                    amount,
                    trans_create_time: req.trans_create_time.compact().to_string(),
                    secondary_merchant_id: ext
                        .then(|| route.merchant.secondary_merchant_id.clone()),
                    store_id,
                    notify_url,
                },
            ),
            Draft::new(
                now,
                EventBody::PaySent {
                    attempt: 1,
                    endpoint: primary.clone(),
                },
            ),
        ];
        let sent_state = match self.intent(&key, drafts).await {
            Ok(a) => a.state,
            Err(e) => return self.refused_intent(e),
        };
        let call = upstream.call(Service::Pay, &query, body).await;
        let (attempt, endpoint, body) = match call {
            Call::Answered {
                endpoint,
                attempt,
                body,
            } => (attempt, endpoint, Some(body)),
            Call::Unknown {
                endpoint, attempt, ..
            } => (attempt, endpoint, None),
            Call::NotSent { reason } => {
                // Nothing reached Alipay: the pay definitely did not happen.
                tracing::warn!(%reason, "pay not sent upstream");
                let outcome = EventBody::PayOutcome {
                    result: Outcome::Fail,
                    alipay_trans_id: None,
                    amount: None,
                    paid_at_ms: None,
                    fee: None,
                    error_code: Some(NOT_SENT_CODE.to_owned()),
                };
                return self
                    .finish_or_unknown(&key, vec![outcome], sent_state)
                    .await;
            }
        };
        let outcome = match &body {
            Some(body) => {
                let mut scratch = String::new();
                match read_response(body, &mut scratch, DEFAULT_RESPONSE_BYTES_MAX) {
                    Ok(doc) => decide::pay_outcome(Some(&doc), amount),
                    Err(_) => decide::pay_outcome(None, amount),
                }
            }
            None => decide::pay_outcome(None, amount),
        };
        let mut events = Vec::with_capacity(2);
        if endpoint != primary {
            // Failed over (or the primary's breaker was open): the pay went to this endpoint.
            events.push(EventBody::PaySent {
                attempt: attempt.max(2),
                endpoint,
            });
        }
        events.push(outcome);
        self.finish_or_unknown(&key, events, sent_state).await
    }

    /// Journals outcome events and answers from the resulting state; when the journal cannot
    /// take them, answers from the state before them (a pay in flight reads as UNKNOWN).
    async fn finish(&self, key: &TxnKey, events: Vec<EventBody>, before: TxnState) -> Answer {
        let now = self.now();
        let drafts = events.into_iter().map(|b| Draft::new(now, b)).collect();
        match self.outcome(key, drafts).await {
            Ok(a) => {
                self.track(key, &a.state);
                Answer::State(Box::new(a.state))
            }
            Err(e) => {
                // The call happened but its outcome is not journaled: unknown to the merchant,
                // whatever an earlier state says.
                tracing::error!(error = %e, status = ?before.status, "outcome not journaled; answering unknown");
                Answer::Busy(Busy::Journal)
            }
        }
    }

    fn refused_intent(&self, e: AppendError) -> Answer {
        match e {
            AppendError::QueueFull => Answer::Busy(Busy::JournalQueue),
            AppendError::Rejected(r) => match refund_refusal(&r) {
                Some(code) => Answer::Refused(code, None),
                None => Answer::Conflict,
            },
            other => {
                tracing::error!(error = %other, "intent not journaled");
                Answer::Busy(Busy::Journal)
            }
        }
    }

    /// A query: final states from the journal; otherwise one upstream query (under the
    /// transaction's lock, so concurrent pollers share it), journaled. A transaction asked
    /// about upstream less than one query interval ago (by the resolver or another poll), or
    /// being cancelled, is answered from the journal: a cashier polling every second adds no
    /// upstream traffic, and the resolver alone decides a cancel's sequel.
    pub async fn query(
        &self,
        caller: &Caller,
        ptid: &str,
        alipay_trans_id: Option<&str>,
    ) -> Answer {
        let found = match self.find(caller, ptid, alipay_trans_id) {
            Ok(f) => f,
            Err(b) => return Answer::Busy(b),
        };
        let Some((key, state)) = found else {
            return Answer::NotFound;
        };
        if decide::query_from_journal(&state)
            || state.cancel.attempts != 0
            || self.queried_recently(&key)
        {
            metrics::counter!(telemetry::QUERIES_FROM_JOURNAL).increment(1);
            return Answer::State(Box::new(state));
        }
        let held = match self.lock(&key, Lane::Finish).await {
            Ok(h) => h,
            Err(_) => return Answer::State(Box::new(state)),
        };
        let state = match self.read(&key) {
            Ok(Some(s)) => s,
            Ok(None) => return Answer::NotFound,
            Err(b) => return Answer::Busy(b),
        };
        // Someone else just asked (or the pay just finished): their answer is fresh.
        if held.waited || decide::query_from_journal(&state) || self.queried_recently(&key) {
            metrics::counter!(telemetry::QUERIES_FROM_JOURNAL).increment(1);
            return Answer::State(Box::new(state));
        }
        let (state, _) = self.query_upstream(&key, state, false).await;
        Answer::State(Box::new(state))
    }

    /// Asks upstream about the transaction: the journal event its answer becomes, or `None`
    /// when there was no usable answer (nothing is sent when the journal has failed, INV-8).
    async fn ask(&self, key: &TxnKey, state: &TxnState) -> Option<EventBody> {
        if matches!(self.journal.health(), ledger::HealthStatus::Failed(_)) {
            return None;
        }
        let (account, upstream) = self.route_of(state)?;
        let mut b = FormBuilder::new(Charset::Utf8);
        b.push("service", Service::Query.name())
            .push("partner", &account.partner)
            .push("partner_trans_id", &state.upstream_trans_id);
        let (query, body) = b.finish_post(&account.signer).ok()?;
        self.note_queried(key);
        let Call::Answered { body, .. } = upstream.call(Service::Query, &query, body).await else {
            return None;
        };
        let mut scratch = String::new();
        let doc = read_response(&body, &mut scratch, DEFAULT_RESPONSE_BYTES_MAX).ok()?;
        decide::query_result(&doc)
    }

    /// One upstream query, its answer journaled when it says something new (a poll that learns
    /// nothing new adds nothing: a long poll must not fill the history). Returns the state and
    /// the trade status Alipay reported, if it answered. Call with the key locked.
    async fn query_upstream(
        &self,
        key: &TxnKey,
        state: TxnState,
        by_resolver: bool,
    ) -> (TxnState, Option<ledger::TradeStatus>) {
        let Some(event) = self.ask(key, &state).await else {
            return (state, None);
        };
        let EventBody::QueryResult { status, .. } = &event else {
            return (state, None);
        };
        let status = *status;
        if state.last_query == Some(status) {
            return (state, Some(status));
        }
        let events = if by_resolver {
            self.with_notice(key, &state, vec![event])
        } else {
            vec![event]
        };
        match self.finish_or_unknown(key, events, state.clone()).await {
            Answer::State(s) => (*s, Some(status)),
            _ => (state, Some(status)),
        }
    }

    /// A cancel: replayed when already cancelled; otherwise journaled, sent, journaled.
    pub async fn cancel(&self, caller: &Caller, ptid: &str, trade_no: Option<&str>) -> Answer {
        let (_held, key, state) = match self.lock_txn(caller, ptid, trade_no).await {
            Ok(t) => t,
            Err(answer) => return answer,
        };
        use ledger::TxnStatus as S;
        match state.status {
            // Already closed, or never paid (a failed pay is closed at Alipay): the answer is
            // the journal's, nothing to send.
            S::Closed | S::Reversed | S::Failed => return Answer::State(Box::new(state)),
            S::Refunded => return Answer::Refused("TRADE_STATUS_ERROR", Some(Box::new(state))),
            // Alipay refuses to cancel a trade with refunds; asking would only muddle the books.
            S::Paid if state.refunded_minor != 0 || state.reserved_minor != 0 => {
                return Answer::Refused("TRADE_STATUS_ERROR", Some(Box::new(state)))
            }
            S::Received | S::Sent | S::Unknown | S::Paid => {}
        }
        self.send_cancel(&key, state, false).await
    }

    /// Journals a cancel attempt, sends it (the same parameters every time: one cancel per
    /// trade at Alipay) and journals its result. Call with the key locked.
    async fn send_cancel(&self, key: &TxnKey, state: TxnState, by_resolver: bool) -> Answer {
        let Some((account, upstream)) = self.route_of(&state) else {
            return Answer::Busy(Busy::Upstream);
        };
        let mut b = FormBuilder::new(Charset::Utf8);
        b.push("service", Service::Cancel.name())
            .push("partner", &account.partner)
            .push("out_trade_no", &state.upstream_trans_id)
            .push("timestamp", &state.received_at_ms.to_string());
        let Ok((query, body)) = b.finish_post(&account.signer) else {
            return Answer::Busy(Busy::Build);
        };
        let attempt = state.cancel.attempts.saturating_add(1);
        let draft = Draft::new(self.now(), EventBody::CancelAttempt { attempt });
        let state = match self.intent(key, vec![draft]).await {
            Ok(a) => a.state,
            Err(AppendError::Rejected(_)) => {
                return Answer::Refused("TRADE_STATUS_ERROR", Some(Box::new(state)))
            }
            Err(e) => return self.refused_intent(e),
        };
        let event = match upstream.call(Service::Cancel, &query, body).await {
            Call::Answered { body, .. } => {
                let mut scratch = String::new();
                match read_response(&body, &mut scratch, DEFAULT_RESPONSE_BYTES_MAX) {
                    Ok(doc) => decide::cancel_result(Some(&doc)),
                    Err(_) => decide::cancel_result(None),
                }
            }
            // Never sent: retryable, nothing happened at Alipay.
            Call::NotSent { .. } => EventBody::CancelResult {
                result: Outcome::Fail,
                action: None,
                retry: true,
                error_code: Some(NOT_SENT_CODE.to_owned()),
            },
            Call::Unknown { .. } => decide::cancel_result(None),
        };
        let events = if by_resolver {
            self.with_notice(key, &state, vec![event])
        } else {
            vec![event]
        };
        self.finish_or_unknown(key, events, state).await
    }

    /// Journals results; when the fold refuses them (an answer that contradicts the journal, e.g.
    /// Alipay "closing" a trade the journal knows is paid, or paying another amount), journals
    /// them as unknown instead, so the resolver settles the transaction, and logs the
    /// contradiction.
    async fn finish_or_unknown(
        &self,
        key: &TxnKey,
        events: Vec<EventBody>,
        before: TxnState,
    ) -> Answer {
        let now = self.now();
        let drafts: Vec<Draft> = events.iter().map(|b| Draft::new(now, b.clone())).collect();
        match self.outcome(key, drafts).await {
            Ok(a) => {
                self.track(key, &a.state);
                Answer::State(Box::new(a.state))
            }
            Err(AppendError::Rejected(r)) => {
                tracing::error!(rejected = %r, "upstream answer contradicts the journal; recorded as unknown");
                let unknown = events
                    .into_iter()
                    .filter_map(|event| match event {
                        EventBody::PayOutcome { .. } => {
                            Some(decide::pay_outcome(None, before.amount))
                        }
                        EventBody::CancelResult { .. } => Some(decide::cancel_result(None)),
                        EventBody::RefundResult { refund, .. } => {
                            Some(decide::refund_result(None, refund))
                        }
                        EventBody::PaySent { .. } | EventBody::NotifyDue { .. } => None,
                        other => Some(other),
                    })
                    .collect();
                self.finish(key, unknown, before).await
            }
            Err(e) => {
                tracing::error!(error = %e, "outcome not journaled; answering unknown");
                self.track(key, &before);
                Answer::Busy(Busy::Journal)
            }
        }
    }

    /// A refund: replayed or refused as a conflict by its id; otherwise its intent reserves the
    /// amount (refused when it would exceed what is left), it is sent, and its result journaled.
    pub async fn refund(
        &self,
        caller: &Caller,
        req: &alipay::RefundRequest<'_>,
        fingerprint: Hash,
    ) -> Answer {
        if crate::resolver::plan::is_reversal(req.partner_refund_id) {
            return Answer::Refused("INVALID_PARAMETER", None);
        }
        let (_held, key, state) = match self
            .lock_txn(caller, req.partner_trans_id, req.alipay_trans_id)
            .await
        {
            Ok(t) => t,
            Err(answer) => return answer,
        };
        let refund = RefundKey::new(caller.id.as_str(), req.partner_refund_id);
        // A refund whose outcome is unknown is sent again with the same parameters and the same
        // upstream id (spec §6.5: one id is one refund at Alipay, so it cannot apply twice).
        match decide::refund_step(&state, req.partner_refund_id, &fingerprint) {
            RefundStep::Replay => match RefundSend::resend(&state, &refund) {
                Some(send) => self.send_refund(&key, state, send, false).await,
                None => Answer::State(Box::new(state)),
            },
            RefundStep::Conflict => Answer::Conflict,
            // A cancel without a definite answer may yet reverse the whole trade: a refund now
            // could only collide with it (Alipay refuses to cancel a trade with refunds).
            RefundStep::Start if state.cancel.in_flight() => {
                Answer::Refused("TRADE_STATUS_ERROR", Some(Box::new(state)))
            }
            RefundStep::Start => {
                let send = RefundSend {
                    upstream_refund_id: upstream_id(
                        &self.node,
                        'R',
                        &caller.id,
                        req.partner_refund_id,
                    ),
                    refund,
                    amount: req.refund_amount,
                    reason: req.refund_reason.map(str::to_owned),
                    intent: Some(fingerprint),
                };
                self.send_refund(&key, state, send, false).await
            }
        }
    }

    /// Sends a refund: a new one after journaling its intent (which reserves the amount), or
    /// a resend of one in flight, with the same upstream id; then journals its result. Call
    /// with the key locked.
    async fn send_refund(
        &self,
        key: &TxnKey,
        state: TxnState,
        send: RefundSend,
        by_resolver: bool,
    ) -> Answer {
        let Some((account, upstream)) = self.route_of(&state) else {
            return Answer::Busy(Busy::Upstream);
        };
        let resend = send.intent.is_none();
        // A failed journal sends nothing (INV-8), not even a resend.
        if matches!(self.journal.health(), ledger::HealthStatus::Failed(_)) {
            return Answer::Busy(Busy::Journal);
        }
        if !upstream.usable() {
            return if resend {
                Answer::State(Box::new(state))
            } else {
                Answer::Busy(Busy::Upstream)
            };
        }
        let mut b = FormBuilder::new(Charset::Utf8);
        b.push("service", Service::Refund.name())
            .push("partner", &account.partner)
            .push("partner_trans_id", &state.upstream_trans_id)
            .push("partner_refund_id", &send.upstream_refund_id)
            .push("refund_amount", &send.amount.to_string())
            .push("currency", send.amount.currency().code())
            .push_opt("refund_reason", send.reason.as_deref())
            .push("is_sync", "Y");
        let Ok((query, body)) = b.finish_post(&account.signer) else {
            return Answer::Busy(Busy::Build);
        };
        let refund = send.refund.clone();
        let state = match send.intent {
            None => state,
            Some(fingerprint) => {
                let draft = Draft::new(
                    self.now(),
                    EventBody::RefundIntent {
                        refund: refund.clone(),
                        upstream_refund_id: send.upstream_refund_id,
                        amount: decide::money(send.amount),
                        fingerprint,
                        reason: send.reason,
                    },
                );
                match self.intent(key, vec![draft]).await {
                    Ok(a) => a.state,
                    Err(AppendError::Rejected(r)) => {
                        return match refund_refusal(&r) {
                            Some(code) => Answer::Refused(code, Some(Box::new(state))),
                            None => Answer::Conflict,
                        }
                    }
                    Err(e) => return self.refused_intent(e),
                }
            }
        };
        let event = match upstream.call(Service::Refund, &query, body).await {
            Call::Answered { body, .. } => {
                let mut scratch = String::new();
                match read_response(&body, &mut scratch, DEFAULT_RESPONSE_BYTES_MAX) {
                    Ok(doc) => decide::refund_result(Some(&doc), refund),
                    Err(_) => decide::refund_result(None, refund),
                }
            }
            // A resend that never left changes nothing: an earlier attempt may have applied.
            Call::NotSent { .. } if resend => return Answer::State(Box::new(state)),
            // Never sent at all: definitely not refunded; the reservation is released.
            Call::NotSent { .. } => EventBody::RefundResult {
                refund,
                result: Outcome::Fail,
                fee: None,
                error_code: Some(NOT_SENT_CODE.to_owned()),
            },
            Call::Unknown { .. } => decide::refund_result(None, refund),
        };
        let events = if by_resolver {
            self.with_notice(key, &state, vec![event])
        } else {
            vec![event]
        };
        self.finish_or_unknown(key, events, state).await
    }
}

/// How many recently queried transactions the engine remembers before it forgets the stale.
const QUERIED_PRUNE_AT: usize = 4096;

/// The error code journaled (and answered) when a request was never sent upstream (every
/// endpoint unreachable): definitely not done. The transaction is final as failed, so a retry
/// needs a new order number (a cancel's is retryable).
pub const NOT_SENT_CODE: &str = "UPSTREAM_UNREACHABLE";

/// The error code answered when a request was not processed at all ([`Busy`]): nothing was
/// journaled or sent, so the same request may be sent again as it is.
pub const BUSY_CODE: &str = "SYSTEM_BUSY";

/// The Alipay error code for a refund the journal's rules refuse (`None`: an id conflict).
fn refund_refusal(r: &Rejected) -> Option<&'static str> {
    Some(match r {
        Rejected::RefundExceedsPaid { paid_minor: 0, .. } => "TRADE_STATUS_ERROR",
        Rejected::RefundExceedsPaid { .. } => "RETURN_AMOUNT_EXCEED",
        Rejected::CurrencyMismatch { .. } => "CURRENCY_NOT_SAME",
        Rejected::InvalidTransition { .. } => "TRADE_STATUS_ERROR",
        Rejected::TooManyRefunds { .. } => "REFUND_AMT_RESTRICTION",
        Rejected::ZeroAmount | Rejected::FieldTooLong { .. } | Rejected::TimeOutOfRange { .. } => {
            "INVALID_PARAMETER"
        }
        Rejected::RefundIdConflict
        | Rejected::RefundExists
        | Rejected::RefundOfOtherTxn
        | Rejected::AlreadyReceived { .. }
        | Rejected::UpstreamIdTaken => return None,
        _ => "SYSTEM_ERROR",
    })
}

/// A count as a gauge value.
#[allow(clippy::as_conversions, clippy::cast_precision_loss)]
pub(crate) fn usize_f64(n: usize) -> f64 {
    n as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_ids_are_stable_distinct_and_short() {
        let a = upstream_id("sw1", 'P', "2088000000000001", "T1");
        assert_eq!(a, upstream_id("sw1", 'P', "2088000000000001", "T1"));
        assert_ne!(a, upstream_id("sw1", 'P', "2088000000000002", "T1"));
        assert_ne!(a, upstream_id("sw1", 'R', "2088000000000001", "T1"));
        // No ambiguity from concatenation.
        assert_ne!(
            upstream_id("sw1", 'P', "ab", "c"),
            upstream_id("sw1", 'P', "a", "bc")
        );
        assert!(a.len() <= 40 && a.starts_with("sw1P"));
        assert!(a.bytes().all(|b| b.is_ascii_alphanumeric()));
    }

    #[test]
    fn fingerprint_ignores_signature_charset_and_notify_url_only() {
        let limits = alipay::FormLimits::default();
        let base = b"service=s&partner=p&a=1&sign=x&sign_type=MD5&notify_url=http://a";
        let f1 = alipay::Form::parse(b"", base, &limits).unwrap();
        let other_sig = b"service=s&partner=p&a=1&sign=y&sign_type=RSA2&notify_url=http://b";
        let f2 = alipay::Form::parse(b"_input_charset=GBK", other_sig, &limits).unwrap();
        assert_eq!(fingerprint(&f1), fingerprint(&f2));
        let changed = b"service=s&partner=p&a=2&sign=x&sign_type=MD5";
        let f3 = alipay::Form::parse(b"", changed, &limits).unwrap();
        assert_ne!(fingerprint(&f1), fingerprint(&f3));
    }
}
