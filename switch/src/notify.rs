//! The notifier: tells merchants, by a signed `trade_status_sync` POST to their `notify_url`
//! (spec §7), the results they were not told in an answer to their own request — a pay the
//! resolver found paid or closed, a refund that got its result.
//!
//! * **The journal is the queue.** A transaction owes a notification while its state has
//!   `notify.due` (it then stays in the journal's `pending` table). The resolver offers such
//!   transactions ([`Notifier::intake`]) when it finishes them and on every sweep of the pending
//!   table, so the notifier keeps only a bounded working set in memory (`queue_max` distinct
//!   transactions; an offer beyond it is dropped and comes back with the next sweep) and a
//!   restart loses nothing.
//! * **The ladder is read from the journal.** Try *n + 1* of a notification is due
//!   `retry[n - 1]` after try *n* was journaled; the first is due at once ([`next`], pure). A
//!   transaction whose next try is further away than one sweep leaves memory until a sweep
//!   offers it again, so notifications waiting for hours do not hold places that others need.
//! * **Limits.** At most `concurrency` POSTs at once, and at most `per_merchant` to one caller.
//!   A notification takes its caller's slot before a global one, so the notifications queued
//!   behind a merchant endpoint that is down or slow hold no global slot and never delay other
//!   merchants'.
//! * **One try.** Read the state (still owed?), build and sign the form with the caller's signer
//!   (`notify_id` derived from the transaction and the `NotifyDue` event, so it is the same on
//!   every resend and differs for a later notification), POST it without holding the
//!   transaction's lock, then lock the transaction only to journal the try — and only when the
//!   same notification is still owed. Delivered means HTTP 200 with the body `success`.
//! * **Giving up.** After `retry.len() + 1` failed tries the notifier journals an `Exception`,
//!   logs an ERROR and raises the `switch_resolver_gave_up_total` alarm; the transaction stays
//!   pending. An operator's action clears the exception, the resolver offers the transaction
//!   again and a new round of tries starts.
//!
//! The signed form and the merchant's answer body are never logged or journaled; a failure is
//! recorded as a few words (`HTTP 500`, `timeout`, `connect: …`, `body not success`).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use alipay::notify::RefundNotice;
use alipay::{Charset, TradeStatusSync, NOTIFY_ACK};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Request, Uri};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use ledger::{NotifyResult, RefundStatus, TxnKey, TxnState};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::{watch, Notify, Semaphore};
use tokio_rustls::client::TlsStream;

use crate::config::NotifySection;
use crate::engine::{decide, upstream_id, Acted, Engine};
use crate::resolver::{owes_notice, Offer};
use crate::telemetry;
use crate::upstream::POOL_IDLE_TIMEOUT;

/// Largest answer body read from a merchant: the acknowledgement is 7 bytes.
pub const ANSWER_BYTES_MAX: usize = 1024;
/// Longest failure text journaled.
pub const FAILURE_CHARS_MAX: usize = 160;
/// How long a try whose state could not be read or journaled (journal busy or failing) waits,
/// at least, before the next one.
const BUSY_RETRY: Duration = Duration::from_secs(1);
/// How long [`Notifier::stop`] waits for tries being journaled.
const STOP_WAIT_MAX: Duration = Duration::from_secs(10);

const _: () = assert!(ANSWER_BYTES_MAX >= NOTIFY_ACK.len());

/// What to do next about a transaction's notification: a pure function of its journaled state
/// and the wall clock ([`next`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Nothing is owed (or the switch gave up and waits for an operator).
    Done,
    /// The next try is due after this long.
    Wait(Duration),
    /// Send a try of the notification named by the `NotifyDue` event `seq` now.
    Send {
        /// The `NotifyDue` event.
        seq: u64,
    },
}

/// Tries of one round: the first and one per `retry` step.
pub fn tries(retry: &[Duration]) -> u32 {
    u32::try_from(retry.len())
        .unwrap_or(u32::MAX)
        .saturating_add(1)
}

/// True when the failed try numbered `attempt` (from 1) ends a round: the notifier gives up.
pub fn ends_round(attempt: u32, retry: &[Duration]) -> bool {
    attempt != 0 && attempt % tries(retry) == 0
}

/// When the next try of `state`'s notification is due, at wall time `now_ms`. Tries after a
/// finished round start a new round, first try at once: an operator cleared the exception (or
/// the process stopped between the last try and journaling the exception, which costs one more
/// round of resends with the same `notify_id`, harmless to a receiver that handles it
/// idempotently).
pub fn next(state: &TxnState, now_ms: i64, retry: &[Duration]) -> Next {
    if !owes_notice(state) {
        return Next::Done;
    }
    let Some(due) = &state.notify.due else {
        return Next::Done;
    };
    let made = due.attempts % tries(retry);
    let step = usize::try_from(made)
        .ok()
        .and_then(|m| m.checked_sub(1))
        .and_then(|i| retry.get(i));
    let Some(step) = step else {
        return Next::Send { seq: due.seq };
    };
    let last_ms = state
        .notify
        .last_at_ms
        .unwrap_or(due.since_ms)
        .max(due.since_ms);
    // A wall clock that went back never stretches a wait beyond its step.
    let waited = u64::try_from(now_ms.saturating_sub(last_ms)).unwrap_or(0);
    match step.checked_sub(Duration::from_millis(waited)) {
        Some(left) if !left.is_zero() => Next::Wait(left),
        _ => Next::Send { seq: due.seq },
    }
}

/// The `notify_id` of the notification named by the `NotifyDue` event `seq` of `key`: the node,
/// `N` and 30 hex digits of SHA-256, at most 39 characters, the same on every resend.
pub fn notify_id(node: &str, key: &TxnKey, seq: u64) -> String {
    // The seq has no '/', so splitting at the last one recovers both parts: no two
    // (order number, seq) pairs hash the same text.
    let id = format!("{}/{seq}", key.partner_trans_id);
    upstream_id(node, 'N', &key.merchant, &id)
}

/// The notification `state` owes (its `notify.due`), sent at wall time `now_ms`. `Err` says why
/// it cannot be built (journal text, no secret).
pub fn message(
    state: &TxnState,
    notify_id: String,
    now_ms: i64,
) -> Result<TradeStatusSync, &'static str> {
    let due = state.notify.due.as_ref().ok_or("nothing owed")?;
    let notify_time = decide::beijing(Some(now_ms)).ok_or("the clock is out of range")?;
    let total_fee =
        decide::amount(state.paid.unwrap_or(state.amount)).ok_or("an unknown currency")?;
    let refund = match &due.refund {
        None => None,
        Some(id) => {
            let r = state
                .refunds
                .get(id)
                .ok_or("the refund is not in the journal")?;
            let refund_status = match r.status {
                RefundStatus::Succeeded => "REFUND_SUCCESS",
                RefundStatus::Failed => "REFUND_FAIL",
                RefundStatus::Reserved | RefundStatus::Unknown => {
                    return Err("the refund has no result yet")
                }
            };
            Some(RefundNotice {
                partner_refund_id: id.clone(),
                refund_amount: decide::amount(r.amount).ok_or("an unknown currency")?,
                refund_status: refund_status.to_owned(),
            })
        }
    };
    Ok(TradeStatusSync {
        notify_time,
        notify_id,
        out_trade_no: state.txn.partner_trans_id.clone(),
        // A trade Alipay never numbered (a pay that failed before it existed) is sent with
        // an empty trade_no, which is not signed, as Alipay does with empty values.
        trade_no: state.alipay_trans_id.clone().unwrap_or_default(),
        trade_status: decide::merchant_trade_status(state),
        total_fee,
        gmt_payment: state.paid.and(decide::beijing(state.paid_at_ms)),
        refund,
    })
}

/// True when a merchant's answer body acknowledges the notification: exactly `success`, with
/// surrounding ASCII whitespace (a trailing newline) tolerated.
pub fn is_ack(body: &[u8]) -> bool {
    body.trim_ascii() == NOTIFY_ACK
}

/// What the drive loop does after a step.
#[derive(Debug)]
enum Then {
    /// Read the state again at once (a try was journaled, or the state changed).
    Replan,
    /// Wait this long (or until the transaction is offered again).
    Sleep(Duration),
    /// Nothing is owed: leave memory.
    Idle,
    /// The notifier is stopping.
    Stop,
}

#[derive(Debug)]
struct Entry {
    /// Woken when the transaction is offered again.
    wake: Arc<Notify>,
    /// Offers since the task started: a task leaves memory only if none came while it decided to.
    offers: u64,
}

#[derive(Debug, Default)]
struct Inner {
    /// The transactions in memory, each driven by one task; at most `queue_max`.
    keys: HashMap<TxnKey, Entry>,
    /// Each caller's POST slots (one entry per caller met: callers are configured, few).
    merchants: HashMap<String, Arc<Semaphore>>,
    stopped: bool,
}

/// The notifier. See the module documentation.
pub struct Notifier {
    engine: Arc<Engine>,
    poster: Poster,
    charset: Charset,
    content_type: HeaderValue,
    retry: Vec<Duration>,
    per_merchant: usize,
    queue_max: usize,
    park_after: Duration,
    global: Arc<Semaphore>,
    inner: Mutex<Inner>,
    runtime: tokio::runtime::Handle,
    stop: watch::Sender<bool>,
    idle: Notify,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("retry", &self.retry)
            .field("per_merchant", &self.per_merchant)
            .field("queue_max", &self.queue_max)
            .finish_non_exhaustive()
    }
}

impl Notifier {
    /// A notifier over `engine` with the `[notify]` settings, sending forms in `charset` (the
    /// gateway's response encoding), trusting `tls` for `https://` URLs. A notification whose
    /// next try is more than `park_after` away (the resolver's sweep interval) leaves memory
    /// until the next sweep offers it. Call from within the runtime it will spawn on.
    pub fn new(
        engine: Arc<Engine>,
        config: &NotifySection,
        charset: Charset,
        tls: Arc<rustls::ClientConfig>,
        park_after: Duration,
    ) -> Arc<Notifier> {
        let per_merchant = config.per_merchant.max(1);
        let text = format!(
            "application/x-www-form-urlencoded; charset={}",
            charset.label()
        );
        let content_type = HeaderValue::from_str(&text)
            .unwrap_or_else(|_| HeaderValue::from_static("application/x-www-form-urlencoded"));
        Arc::new(Notifier {
            engine,
            poster: Poster::new(tls, config.timeout, per_merchant),
            charset,
            content_type,
            retry: config.retry.clone(),
            per_merchant,
            queue_max: config.queue_max.max(1),
            park_after,
            global: Arc::new(Semaphore::new(config.concurrency.max(1))),
            inner: Mutex::new(Inner::default()),
            runtime: tokio::runtime::Handle::current(),
            stop: watch::channel(false).0,
            idle: Notify::new(),
        })
    }

    /// The intake to install in the resolver: offers without blocking, and without keeping
    /// the notifier alive.
    pub fn intake(self: &Arc<Self>) -> Offer {
        let weak: Weak<Notifier> = Arc::downgrade(self);
        Arc::new(move |key: &TxnKey| {
            if let Some(n) = weak.upgrade() {
                n.offer(key);
            }
        })
    }

    fn inner(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Notifications in memory.
    pub fn queued(&self) -> usize {
        self.inner().keys.len()
    }

    /// Takes up `key` if it is not in memory yet and there is room; wakes its task if it is.
    /// Never blocks: an offer that finds memory full is dropped (the next sweep offers it
    /// again).
    pub fn offer(self: &Arc<Self>, key: &TxnKey) {
        let wake = {
            let mut inner = self.inner();
            if inner.stopped {
                return;
            }
            if let Some(e) = inner.keys.get_mut(key) {
                e.offers = e.offers.wrapping_add(1);
                e.wake.notify_one();
                return;
            }
            if inner.keys.len() >= self.queue_max {
                drop(inner);
                metrics::counter!(telemetry::NOTIFY_OFFERS_DROPPED).increment(1);
                tracing::debug!("notification queue full; the next sweep offers it again");
                return;
            }
            let wake = Arc::new(Notify::new());
            inner.keys.insert(
                key.clone(),
                Entry {
                    wake: Arc::clone(&wake),
                    offers: 0,
                },
            );
            metrics::gauge!(telemetry::NOTIFY_QUEUE)
                .set(crate::engine::usize_f64(inner.keys.len()));
            wake
        };
        let me = Arc::clone(self);
        let key = key.clone();
        self.runtime.spawn(async move { me.drive(key, wake).await });
    }

    /// Stops: no new offers, waits and tries end at once, a POST in flight is abandoned (not
    /// journaled: it is sent again, with the same `notify_id`, after a restart). Returns when
    /// every task has ended (tries being journaled finish first), or after a bounded wait.
    pub async fn stop(&self) {
        self.inner().stopped = true;
        self.stop.send_replace(true);
        let all_ended = async {
            loop {
                let ended = self.idle.notified();
                if self.inner().keys.is_empty() {
                    return;
                }
                ended.await;
            }
        };
        if tokio::time::timeout(STOP_WAIT_MAX, all_ended)
            .await
            .is_err()
        {
            tracing::warn!("notifier stopped with notifications still being journaled");
        }
    }

    fn offers(&self, key: &TxnKey) -> u64 {
        self.inner().keys.get(key).map_or(0, |e| e.offers)
    }

    /// Leaves memory unless the transaction was offered again since `seen`.
    fn leave(&self, key: &TxnKey, seen: Option<u64>) -> bool {
        let mut inner = self.inner();
        if let (Some(seen), Some(e)) = (seen, inner.keys.get(key)) {
            if e.offers != seen {
                return false;
            }
        }
        inner.keys.remove(key);
        metrics::gauge!(telemetry::NOTIFY_QUEUE).set(crate::engine::usize_f64(inner.keys.len()));
        if inner.stopped && inner.keys.is_empty() {
            self.idle.notify_waiters();
        }
        true
    }

    fn merchant_slots(&self, merchant: &str) -> Arc<Semaphore> {
        let mut inner = self.inner();
        let slots = inner
            .merchants
            .entry(merchant.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_merchant)));
        Arc::clone(slots)
    }

    /// One transaction's task: steps and waits until nothing is owed, the next try is far
    /// away, or the notifier stops.
    async fn drive(self: Arc<Self>, key: TxnKey, wake: Arc<Notify>) {
        let mut stop = self.stop.subscribe();
        loop {
            let seen = self.offers(&key);
            let pause = match self.step(&key, &mut stop).await {
                Then::Stop => break,
                Then::Replan => continue,
                Then::Idle => {
                    if self.leave(&key, Some(seen)) {
                        return;
                    }
                    continue;
                }
                Then::Sleep(d) if d > self.park_after => {
                    if self.leave(&key, Some(seen)) {
                        return;
                    }
                    continue;
                }
                Then::Sleep(d) => d,
            };
            let stopped = tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => true,
                () = wake.notified() => false,
                () = tokio::time::sleep(pause) => false,
            };
            if stopped {
                break;
            }
        }
        self.leave(&key, None);
    }

    /// Plans from the journal and, when a try is due, makes it.
    async fn step(&self, key: &TxnKey, stop: &mut watch::Receiver<bool>) -> Then {
        let state = match self.engine.peek(key) {
            Ok(Some(s)) => s,
            Ok(None) => return Then::Idle,
            Err(_) => return Then::Sleep(BUSY_RETRY),
        };
        match next(&state, self.engine.now_ms(), &self.retry) {
            Next::Done => Then::Idle,
            Next::Wait(d) => Then::Sleep(d),
            Next::Send { .. } => self.attempt(key, stop).await,
        }
    }

    /// One try: slots (the caller's first), the state read again, the POST, the journal.
    async fn attempt(&self, key: &TxnKey, stop: &mut watch::Receiver<bool>) -> Then {
        let merchant = self.merchant_slots(&key.merchant);
        let Some(Ok(_merchant_slot)) = until_stopped(merchant.acquire_owned(), stop).await else {
            return Then::Stop;
        };
        let global = Arc::clone(&self.global);
        let Some(Ok(_global_slot)) = until_stopped(global.acquire_owned(), stop).await else {
            return Then::Stop;
        };
        // Waiting for a slot may have taken long: the state read before may be stale.
        let state = match self.engine.peek(key) {
            Ok(Some(s)) => s,
            Ok(None) => return Then::Idle,
            Err(_) => return Then::Sleep(BUSY_RETRY),
        };
        let now_ms = self.engine.now_ms();
        let (Next::Send { seq }, Some(url)) =
            (next(&state, now_ms, &self.retry), state.notify_url.clone())
        else {
            return Then::Replan;
        };
        let attempt = state
            .notify
            .due
            .as_ref()
            .map_or(1, |d| d.attempts.saturating_add(1));
        let result = match self.form(key, &state, seq, now_ms) {
            Ok(body) => {
                let post = self.poster.post(&url, &self.content_type, body);
                match until_stopped(post, stop).await {
                    Some(r) => r,
                    None => return Then::Stop,
                }
            }
            Err(text) => Err(text.to_owned()),
        };
        self.record(key, seq, attempt, url, result).await
    }

    /// The signed form of the notification, or why there is none.
    fn form(
        &self,
        key: &TxnKey,
        state: &TxnState,
        seq: u64,
        now_ms: i64,
    ) -> Result<Vec<u8>, &'static str> {
        let caller = self
            .engine
            .tenants()
            .caller(&key.merchant)
            .ok_or("the caller is not configured")?;
        let id = notify_id(self.engine.node(), key, seq);
        let message = message(state, id, now_ms)?;
        message
            .to_form(self.charset, &caller.signer)
            .map_err(|_| "the form could not be signed")
    }

    /// Journals a try under the transaction's lock, if the same notification is still owed;
    /// gives up when it ended the round.
    async fn record(
        &self,
        key: &TxnKey,
        seq: u64,
        attempt: u32,
        url: String,
        result: Result<(), String>,
    ) -> Then {
        let label = if result.is_ok() {
            "delivered"
        } else {
            "failed"
        };
        metrics::counter!(telemetry::NOTIFICATIONS, "result" => label).increment(1);
        // Not journaled: wait at least the ladder's step before POSTing again, so a journal
        // that cannot write does not turn into a stream of POSTs.
        let backoff = usize::try_from(attempt.saturating_sub(1))
            .ok()
            .and_then(|i| self.retry.get(i).or(self.retry.last()))
            .copied()
            .unwrap_or(BUSY_RETRY)
            .max(BUSY_RETRY);
        let (held, state) = match self.engine.hold(key).await {
            Ok(h) => h,
            Err(Acted::Gone) => return Then::Idle,
            Err(_) => {
                tracing::warn!(
                    merchant = %key.merchant,
                    partner_trans_id = %key.partner_trans_id,
                    "notification try not journaled (transaction busy); it will be sent again"
                );
                return Then::Sleep(backoff);
            }
        };
        let Some(due) = state.notify.due.as_ref().filter(|d| d.seq == seq) else {
            // A newer notification replaced this one meanwhile: this try is not its try.
            return Then::Replan;
        };
        let attempt = due.attempts.saturating_add(1);
        let journaled = match &result {
            Ok(()) => NotifyResult::Delivered,
            Err(text) => NotifyResult::Failed(text.clone()),
        };
        match self
            .engine
            .notify_attempt(key, attempt, url, journaled)
            .await
        {
            Acted::Done(_) => {}
            _ => return Then::Sleep(backoff),
        }
        let Err(error) = result else {
            tracing::debug!(
                merchant = %key.merchant,
                partner_trans_id = %key.partner_trans_id,
                attempt,
                "merchant notified"
            );
            return Then::Replan;
        };
        if !ends_round(attempt, &self.retry) {
            tracing::warn!(
                merchant = %key.merchant,
                partner_trans_id = %key.partner_trans_id,
                attempt,
                %error,
                "merchant notification failed; it will be sent again"
            );
            return Then::Replan;
        }
        let reason =
            format!("merchant notification not delivered after {attempt} tries (last: {error})");
        tracing::error!(
            merchant = %key.merchant,
            partner_trans_id = %key.partner_trans_id,
            %reason,
            "notifier gives up: left to an operator (exceptions list)"
        );
        metrics::counter!(telemetry::RESOLVER_GAVE_UP).increment(1);
        let gave_up = matches!(self.engine.give_up(key, reason).await, Acted::Done(_));
        drop(held);
        if gave_up {
            Then::Replan
        } else {
            // Not journaled: the next round would start at once; wait a step first.
            Then::Sleep(backoff)
        }
    }
}

/// `fut`'s output, or `None` when the notifier stops first.
async fn until_stopped<T>(
    fut: impl Future<Output = T>,
    stop: &mut watch::Receiver<bool>,
) -> Option<T> {
    tokio::select! {
        // Stopping wins over anything ready at the same time: nothing new starts once stopped.
        biased;
        _ = stop.wait_for(|s| *s) => None,
        out = fut => Some(out),
    }
}

/// The HTTP side: one POST of a signed form to a merchant's URL, within a deadline, over
/// hyper-util's pooled client (plain HTTP or TLS with the given roots).
struct Poster {
    client: Client<MerchantConnector, Full<Bytes>>,
    timeout: Duration,
}

impl Poster {
    fn new(tls: Arc<rustls::ClientConfig>, timeout: Duration, idle_per_host: usize) -> Poster {
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(idle_per_host)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .set_host(true)
            .build(MerchantConnector {
                tls: tokio_rustls::TlsConnector::from(tls),
            });
        Poster { client, timeout }
    }

    /// POSTs `body`: `Ok` when the merchant acknowledged it, else a short reason.
    async fn post(
        &self,
        url: &str,
        content_type: &HeaderValue,
        body: Vec<u8>,
    ) -> Result<(), String> {
        match tokio::time::timeout(self.timeout, self.exchange(url, content_type, body)).await {
            Ok(r) => r,
            Err(_) => Err("timeout".to_owned()),
        }
    }

    async fn exchange(
        &self,
        url: &str,
        content_type: &HeaderValue,
        body: Vec<u8>,
    ) -> Result<(), String> {
        let uri: Uri = url
            .parse()
            .map_err(|_| "notify_url is not a valid URL".to_owned())?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) {
            return Err("notify_url is not http or https".to_owned());
        }
        let request = Request::post(uri)
            .header(CONTENT_TYPE, content_type.clone())
            .body(Full::new(Bytes::from(body)))
            .map_err(|_| "the request could not be built".to_owned())?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| send_failure(&e))?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(format!("HTTP {status}"));
        }
        let answer = Limited::new(response.into_body(), ANSWER_BYTES_MAX)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    "body not success".to_owned()
                } else {
                    clip(&format!("answer: {}", innermost(e.as_ref())))
                }
            })?
            .to_bytes();
        if is_ack(&answer) {
            Ok(())
        } else {
            Err("body not success".to_owned())
        }
    }
}

/// `connect: …` or `send: …` with the innermost cause (an OS or TLS error, never content).
fn send_failure(e: &hyper_util::client::legacy::Error) -> String {
    let what = if e.is_connect() { "connect" } else { "send" };
    clip(&format!("{what}: {}", innermost(e)))
}

fn innermost<'e>(
    e: &'e (dyn std::error::Error + 'static),
) -> &'e (dyn std::error::Error + 'static) {
    let mut inner = e;
    while let Some(source) = inner.source() {
        inner = source;
    }
    inner
}

fn clip(text: &str) -> String {
    text.chars().take(FAILURE_CHARS_MAX).collect()
}

/// Opens connections to merchants' endpoints: TCP, then TLS for `https://`. (The upstream
/// connector is TLS only: Alipay is never reached over plain HTTP, merchants may be.)
#[derive(Clone)]
struct MerchantConnector {
    tls: tokio_rustls::TlsConnector,
}

/// A connection to a merchant's endpoint.
#[derive(Debug)]
enum MerchantConn {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection for MerchantConn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl AsyncRead for MerchantConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MerchantConn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MerchantConn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MerchantConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MerchantConn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MerchantConn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MerchantConn::Plain(s) => Pin::new(s).poll_flush(cx),
            MerchantConn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MerchantConn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MerchantConn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

type ConnectFuture = Pin<Box<dyn Future<Output = io::Result<TokioIo<MerchantConn>>> + Send>>;

impl tower_service::Service<Uri> for MerchantConnector {
    type Response = TokioIo<MerchantConn>;
    type Error = io::Error;
    type Future = ConnectFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> ConnectFuture {
        let tls = self.tls.clone();
        Box::pin(async move { connect(tls, uri).await })
    }
}

async fn connect(tls: tokio_rustls::TlsConnector, uri: Uri) -> io::Result<TokioIo<MerchantConn>> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(invalid("only http and https are supported")),
    };
    let host = uri.host().ok_or_else(|| invalid("no host in the URL"))?;
    // An IPv6 literal comes bracketed in the URI; neither connect nor SNI wants brackets.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let tcp = TcpStream::connect((host, port)).await?;
    tcp.set_nodelay(true)?;
    if !https {
        return Ok(TokioIo::new(MerchantConn::Plain(tcp)));
    }
    let name = ServerName::try_from(host.to_owned())
        .map_err(|_| invalid("the host is not a valid TLS name"))?;
    let stream = tls
        .connect(name, tcp)
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("TLS handshake: {e}")))?;
    Ok(TokioIo::new(MerchantConn::Tls(Box::new(stream))))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use alipay::{Form, FormLimits, SignType, Signer, Verifier};
    use http_body_util::Full;
    use hyper::service::service_fn;
    use ledger::{Event, EventBody, Money, Outcome, RefundKey};
    use tokio::net::TcpListener;

    use super::*;

    const KEY: &str = "0123456789abcdef0123456789abcdef";
    const MERCHANT: &str = "2088000000000001";
    const MS: fn(u64) -> Duration = Duration::from_millis;

    /// Events, each with its wall time.
    type Events = Vec<(i64, EventBody)>;

    /// The state after `events`.
    fn fold(events: &[(i64, EventBody)]) -> TxnState {
        let key = TxnKey::new(MERCHANT, "ORDER-1");
        let mut state: Option<TxnState> = None;
        for (i, (at_ms, body)) in events.iter().enumerate() {
            let event = Event {
                seq: u64::try_from(i).unwrap() + 1,
                prev_hash: [0; 32],
                at_ms: *at_ms,
                txn: key.clone(),
                body: body.clone(),
            };
            state = Some(ledger::fold(state.as_ref(), &event).unwrap());
        }
        state.unwrap()
    }

    fn usd(minor: u64) -> Money {
        Money::new(minor, *b"USD")
    }

    fn received(url: Option<&str>) -> EventBody {
        EventBody::PayReceived {
            upstream_partner: "2088101122136241".into(),
            upstream_trans_id: "t1P0".into(),
            fingerprint: [1; 32],
            amount: usd(900),
            trans_create_time: "20261127120000".into(),
            secondary_merchant_id: None,
            store_id: None,
            notify_url: url.map(str::to_owned),
        }
    }

    fn paid() -> EventBody {
        EventBody::PayOutcome {
            result: Outcome::Success,
            alipay_trans_id: Some("2026112711001004".into()),
            amount: Some(usd(900)),
            paid_at_ms: Some(1_795_000_000_000),
            fee: None,
            error_code: None,
        }
    }

    fn failed_try(attempt: u32) -> EventBody {
        EventBody::NotifyAttempt {
            attempt,
            url: "http://m/n".into(),
            result: NotifyResult::Failed("HTTP 500".into()),
        }
    }

    /// A paid trade owing a notification (its NotifyDue is seq 3, at 1000) after `tries`
    /// failed tries, the last at 10_000.
    fn owed(tries: u32) -> Vec<(i64, EventBody)> {
        let mut events = vec![
            (0, received(Some("http://m/n"))),
            (500, paid()),
            (1_000, EventBody::NotifyDue { refund: None }),
        ];
        for i in 1..=tries {
            let at = if i == tries { 10_000 } else { 5_000 };
            events.push((at, failed_try(i)));
        }
        events
    }

    #[test]
    fn the_ladder_is_read_from_the_journal() {
        let retry = [MS(100), MS(200), MS(400)];
        let exception = (10_001, EventBody::Exception { reason: "r".into() });
        let operator = (
            10_002,
            EventBody::OperatorAction {
                who: "op".into(),
                why: "t".into(),
                action: "resolve now".into(),
            },
        );
        let with = |mut e: Vec<(i64, EventBody)>, more: &[(i64, EventBody)]| {
            e.extend_from_slice(more);
            e
        };
        let delivered = (
            10_000,
            EventBody::NotifyAttempt {
                attempt: 2,
                url: "http://m/n".into(),
                result: NotifyResult::Delivered,
            },
        );
        let cases: Vec<(&str, Events, i64, Next)> = vec![
            ("first try at once", owed(0), 1_000, Next::Send { seq: 3 }),
            ("first try, clock behind", owed(0), 0, Next::Send { seq: 3 }),
            (
                "second try waits its step",
                owed(1),
                10_050,
                Next::Wait(MS(50)),
            ),
            ("second try due", owed(1), 10_100, Next::Send { seq: 3 }),
            (
                "a clock that went back",
                owed(1),
                9_000,
                Next::Wait(MS(100)),
            ),
            (
                "third try, second step",
                owed(2),
                10_050,
                Next::Wait(MS(150)),
            ),
            (
                "fourth try, last step",
                owed(3),
                10_000,
                Next::Wait(MS(400)),
            ),
            (
                "round over: given up",
                with(owed(4), std::slice::from_ref(&exception)),
                99_999,
                Next::Done,
            ),
            (
                "operator cleared it: new round",
                with(owed(4), &[exception.clone(), operator.clone()]),
                10_003,
                Next::Send { seq: 3 },
            ),
            (
                "second round, first step",
                owed(5),
                10_050,
                Next::Wait(MS(50)),
            ),
            ("delivered", with(owed(1), &[delivered]), 99_999, Next::Done),
            (
                "never due",
                vec![(0, received(Some("http://m/n"))), (500, paid())],
                1,
                Next::Done,
            ),
            (
                "no notify_url",
                vec![
                    (0, received(None)),
                    (500, paid()),
                    (1_000, EventBody::NotifyDue { refund: None }),
                ],
                1_000,
                Next::Done,
            ),
        ];
        for (name, events, now, want) in cases {
            assert_eq!(next(&fold(&events), now, &retry), want, "{name}");
        }
        // No resend steps: one try, then the round is over.
        assert_eq!(next(&fold(&owed(1)), 10_000, &[]), Next::Send { seq: 3 });
    }

    #[test]
    fn a_round_ends_after_every_step_was_tried() {
        let retry = [MS(1), MS(2), MS(3)];
        let ends: Vec<u32> = (0..=12).filter(|a| ends_round(*a, &retry)).collect();
        assert_eq!(ends, [4, 8, 12]);
        assert!(ends_round(1, &[]));
        assert_eq!(tries(&retry), 4);
    }

    #[test]
    fn notify_ids_are_stable_and_distinct() {
        let a = TxnKey::new(MERCHANT, "ORDER-1");
        let b = TxnKey::new(MERCHANT, "ORDER-2");
        let id = notify_id("node0001", &a, 3);
        assert_eq!(id, notify_id("node0001", &a, 3));
        assert!(id.starts_with("node0001N"), "{id}");
        assert!(id.len() <= 64, "{id}");
        let others = [
            notify_id("node0001", &a, 4),
            notify_id("node0001", &b, 3),
            notify_id("node0002", &a, 3),
            notify_id("node0001", &TxnKey::new(MERCHANT, "ORDER-1/3"), 3),
        ];
        for o in others {
            assert_ne!(o, id);
        }
    }

    #[test]
    fn only_success_acknowledges() {
        let cases: [(&[u8], bool); 9] = [
            (b"success", true),
            (b"success\n", true),
            (b"\r\n success \t", true),
            (b"SUCCESS", false),
            (b"successful", false),
            (b"fail", false),
            (b"", false),
            (b"success success", false),
            (b"\"success\"", false),
        ];
        for (body, ack) in cases {
            assert_eq!(is_ack(body), ack, "{}", String::from_utf8_lossy(body));
        }
    }

    /// The form of `state`'s notification, read back as the merchant does.
    fn round_trip(state: &TxnState) -> TradeStatusSync {
        let signer = Signer::md5(KEY).unwrap();
        let msg = message(state, "t1Nabc".into(), 1_795_000_100_000).unwrap();
        let body = msg.to_form(Charset::Gbk, &signer).unwrap();
        let form = Form::parse(b"", &body, &FormLimits::default()).unwrap();
        let verifier = Verifier::from_key_text(SignType::Md5, KEY).unwrap();
        form.verify(&verifier, &mut Vec::new()).unwrap();
        let back = TradeStatusSync::from_form(&form).unwrap();
        assert_eq!(back, msg);
        back
    }

    #[test]
    fn a_trade_notice_carries_the_merchants_order_and_status() {
        let n = round_trip(&fold(&owed(0)));
        assert_eq!(n.out_trade_no, "ORDER-1");
        assert_eq!(n.trade_no, "2026112711001004");
        assert_eq!(n.trade_status, alipay::TradeStatus::TradeSuccess);
        assert_eq!(n.total_fee.to_string(), "9.00");
        assert!(n.gmt_payment.is_some());
        assert!(n.refund.is_none());
    }

    #[test]
    fn a_refund_notice_carries_the_refunds_result() {
        let refund = RefundKey::new(MERCHANT, "RF-1");
        let intent = EventBody::RefundIntent {
            refund: refund.clone(),
            upstream_refund_id: "t1R0".into(),
            amount: usd(300),
            fingerprint: [2; 32],
            reason: None,
        };
        let result = |result| EventBody::RefundResult {
            refund: refund.clone(),
            result,
            fee: None,
            error_code: None,
        };
        let due = EventBody::NotifyDue {
            refund: Some(refund.clone()),
        };
        let base = vec![
            (0, received(Some("http://m/n"))),
            (500, paid()),
            (600, intent),
        ];
        for (outcome, status) in [
            (Outcome::Success, "REFUND_SUCCESS"),
            (Outcome::Fail, "REFUND_FAIL"),
        ] {
            let mut events = base.clone();
            events.push((700, result(outcome)));
            events.push((700, due.clone()));
            let n = round_trip(&fold(&events));
            let r = n.refund.unwrap();
            assert_eq!(r.partner_refund_id, "RF-1");
            assert_eq!(r.refund_amount.to_string(), "3.00");
            assert_eq!(r.refund_status, status);
        }
        // A refund still in flight has no result to tell.
        let mut events = base;
        events.push((700, result(Outcome::Unknown)));
        events.push((700, due));
        assert!(message(&fold(&events), "x".into(), 1).is_err());
    }

    /// A merchant endpoint on loopback, over TLS when `tls` is given: `/ok` acknowledges,
    /// `/500` fails, `/fail` answers another body, `/big` a body over the limit, `/hang`
    /// never answers, `/form` acknowledges only a non-empty form body.
    async fn merchant(tls: Option<Arc<rustls::ServerConfig>>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                        let path = req.uri().path().to_owned();
                        let form = req.headers().get(CONTENT_TYPE).is_some_and(|v| {
                            v.as_bytes()
                                .starts_with(b"application/x-www-form-urlencoded")
                        });
                        let body = req.into_body().collect().await.unwrap().to_bytes();
                        let (status, text) = match path.as_str() {
                            "/ok" => (200, "success\n".to_owned()),
                            "/500" => (500, "success".to_owned()),
                            "/fail" => (200, "fail".to_owned()),
                            "/big" => (200, "success".repeat(200)),
                            "/form" if form && !body.is_empty() => (200, "success".to_owned()),
                            "/hang" => std::future::pending().await,
                            _ => (404, String::new()),
                        };
                        let mut r = hyper::Response::new(Full::new(Bytes::from(text)));
                        *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                        Ok::<_, std::convert::Infallible>(r)
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    let _ = match tls {
                        None => http.serve_connection(TokioIo::new(tcp), service).await,
                        Some(cfg) => {
                            let Ok(s) = tokio_rustls::TlsAcceptor::from(cfg).accept(tcp).await
                            else {
                                return;
                            };
                            http.serve_connection(TokioIo::new(s), service).await
                        }
                    };
                });
            }
        });
        addr
    }

    fn form_type() -> HeaderValue {
        HeaderValue::from_static("application/x-www-form-urlencoded; charset=GBK")
    }

    async fn post(poster: &Poster, url: &str) -> Result<(), String> {
        poster.post(url, &form_type(), b"a=1".to_vec()).await
    }

    #[tokio::test]
    async fn posts_over_http_say_what_went_wrong_in_a_few_words() {
        let tls = crate::upstream::connector::client_config(None).unwrap();
        let poster = Poster::new(tls, MS(500), 2);
        let base = format!("http://{}", merchant(None).await);
        assert_eq!(post(&poster, &format!("{base}/ok")).await, Ok(()));
        assert_eq!(post(&poster, &format!("{base}/form")).await, Ok(()));
        let failures = [
            ("/500", "HTTP 500"),
            ("/fail", "body not success"),
            ("/big", "body not success"),
            ("/nothing", "HTTP 404"),
            ("/hang", "timeout"),
        ];
        for (path, why) in failures {
            assert_eq!(
                post(&poster, &format!("{base}{path}")).await,
                Err(why.to_owned()),
                "{path}"
            );
        }
        // A closed port: nothing listens there once the listener is dropped.
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let refused = post(&poster, &format!("http://{closed}/ok"))
            .await
            .unwrap_err();
        assert!(refused.starts_with("connect: "), "{refused}");
        assert!(refused.chars().count() <= FAILURE_CHARS_MAX, "{refused}");
        let bad = post(&poster, "ftp://example.invalid/n").await.unwrap_err();
        assert_eq!(bad, "notify_url is not http or https");
    }

    #[tokio::test]
    async fn posts_over_https_check_the_merchants_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("cert.pem");
        let server = crate::server::self_signed(Some(&pem)).unwrap();
        let addr = merchant(Some(server)).await;
        let url = format!("https://127.0.0.1:{}/ok", addr.port());
        let trusting =
            crate::upstream::connector::client_config(Some(&std::fs::read(&pem).unwrap())).unwrap();
        assert_eq!(
            post(&Poster::new(trusting, MS(2_000), 2), &url).await,
            Ok(())
        );
        // Public roots only: a self-signed certificate is refused before anything is sent.
        let public = crate::upstream::connector::client_config(None).unwrap();
        let refused = post(&Poster::new(public, MS(2_000), 2), &url)
            .await
            .unwrap_err();
        assert!(refused.starts_with("connect: "), "{refused}");
        assert!(
            refused.contains("certificate") || refused.contains("TLS"),
            "{refused}"
        );
    }
}
