//! The background machinery in simulated time: one ticker that fires due events (timeouts,
//! buyer confirmations, asynchronous refunds, notification attempts), and the sender that POSTs
//! `trade_status_sync` notifications to merchants.
//!
//! The ticker never waits on the network: it hands due notifications to a bounded queue
//! (`notify_queue_max`; when full, the attempt is rescheduled a simulated second later), and a
//! dispatcher sends them concurrently (at most [`NOTIFY_CONCURRENCY_MAX`] at once) with a real
//! timeout, so a slow receiver never blocks the gateway or the other receivers. Each attempt is
//! recorded on its trade; unacknowledged ones are retried on Alipay's ladder. A `notify_url`
//! whose path is one of the simulator's own routes (`/gateway.do`, `/admin/...`) is never
//! POSTed, whatever the host: the attempt is recorded as failed ([`REFUSED_OWN_ROUTE`]).

use std::sync::Arc;
use std::time::Duration;

use hyper::Method;
use tokio::sync::{mpsc, watch, Semaphore};

use crate::client::{HttpClient, Url};
use crate::ledger::NotifyJob;
use crate::server::{route, Route};
use crate::state::Shared;

/// Real time between ticks.
pub const TICK: Duration = Duration::from_millis(20);
/// Notifications in flight at once.
pub const NOTIFY_CONCURRENCY_MAX: usize = 32;
/// Real time a receiver gets to answer one attempt.
pub const NOTIFY_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest reply read from a receiver, bytes: the reply should be `success`; a larger one is a
/// failed attempt.
pub const NOTIFY_RESPONSE_BYTES_MAX: usize = 1024;
/// Simulated delay before a notification that found the queue full is tried again.
pub const REQUEUE_DELAY_MS: i64 = 1_000;
/// The result of an attempt at a `notify_url` whose path is one of the simulator's own routes
/// (`/gateway.do`, `/admin/...`): never POSTed, on any host, so a notification can never drive
/// the simulator itself.
pub const REFUSED_OWN_ROUTE: &str =
    "refused: the notify_url path is one of the simulator's own routes (/gateway.do, /admin/)";
/// Largest answer body recorded in an attempt's result.
const RESULT_BODY_CHARS_MAX: usize = 64;

/// A job and the ledger generation it belongs to.
#[derive(Debug)]
struct Task {
    job: NotifyJob,
    generation: u64,
}

/// Starts the ticker and the dispatcher; both stop when `shutdown` turns true.
pub fn spawn(
    shared: Arc<Shared>,
    tls: Option<Arc<rustls::ClientConfig>>,
    shutdown: watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let (tx, rx) = mpsc::channel(shared.config.notify_queue_max);
    let ticker = tokio::spawn(tick(Arc::clone(&shared), tx, shutdown.clone()));
    let dispatcher = tokio::spawn(dispatch(shared, tls, rx, shutdown));
    vec![ticker, dispatcher]
}

async fn tick(shared: Arc<Shared>, tx: mpsc::Sender<Task>, mut shutdown: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        let now = shared.clock.now_ms();
        let (jobs, generation) = {
            let mut core = shared.lock();
            (core.ledger.fire_due(now), core.generation)
        };
        for job in jobs {
            match tx.try_send(Task { job, generation }) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(task)) => {
                    let mut core = shared.lock();
                    if core.generation == task.generation {
                        core.ledger
                            .requeue(&task.job, now.saturating_add(REQUEUE_DELAY_MS));
                    }
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

async fn dispatch(
    shared: Arc<Shared>,
    tls: Option<Arc<rustls::ClientConfig>>,
    mut rx: mpsc::Receiver<Task>,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(NOTIFY_CONCURRENCY_MAX));
    loop {
        let task = tokio::select! {
            t = rx.recv() => match t { Some(t) => t, None => return },
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let shared = Arc::clone(&shared);
        let tls = tls.clone();
        tokio::spawn(async move {
            deliver(&shared, tls, task).await;
            drop(permit);
        });
    }
}

/// Sends one attempt and records its result.
async fn deliver(shared: &Shared, tls: Option<Arc<rustls::ClientConfig>>, task: Task) {
    let (acked, result) = attempt(shared, tls, &task.job).await;
    let now = shared.clock.now_ms();
    let mut core = shared.lock();
    if core.generation != task.generation {
        return;
    }
    core.counters.notifications.sent += 1;
    if acked {
        core.counters.notifications.acked += 1;
    } else {
        core.counters.notifications.failed += 1;
    }
    core.ledger
        .record_attempt(&task.job.key, task.job.index, acked, result, now);
}

/// One POST: `(acked, what happened)`.
async fn attempt(
    shared: &Shared,
    tls: Option<Arc<rustls::ClientConfig>>,
    job: &NotifyJob,
) -> (bool, String) {
    let Some(url) = Url::parse(&job.url) else {
        return (false, "not an http(s) URL".to_owned());
    };
    let path = url.path_and_query.split('?').next().unwrap_or("");
    if route(path) != Route::None {
        return (false, REFUSED_OWN_ROUTE.to_owned());
    }
    if url.tls && tls.is_none() {
        return (false, "https notify_url needs --notify-ca".to_owned());
    }
    let Some(account) = shared.config.accounts.get(&job.key.0) else {
        return (false, "unknown partner".to_owned());
    };
    let encoding = shared.config.response_encoding;
    let body = match job.message.to_form(encoding, &account.signer) {
        Ok(b) => b,
        Err(e) => return (false, format!("cannot sign: {e}")),
    };
    let path = url.path_and_query.clone();
    let client = HttpClient::with_tls(url, tls)
        .with_timeout(NOTIFY_TIMEOUT)
        .with_response_bytes_max(NOTIFY_RESPONSE_BYTES_MAX);
    let ct = format!(
        "{}; charset={}",
        crate::client::FORM_CONTENT_TYPE,
        encoding.label()
    );
    match client.request(Method::POST, &path, Some(&ct), body).await {
        Ok(r) if r.status == 200 && r.body.as_ref() == alipay::NOTIFY_ACK => {
            (true, "acked".to_owned())
        }
        Ok(r) if r.status == 200 => {
            let text: String = String::from_utf8_lossy(&r.body)
                .chars()
                .take(RESULT_BODY_CHARS_MAX)
                .collect();
            (false, format!("body {text:?}"))
        }
        Ok(r) => (false, format!("status {}", r.status)),
        Err(crate::SimError::ResponseTooLarge { limit_bytes, .. }) => {
            (false, format!("reply over {limit_bytes} bytes"))
        }
        Err(e) => (false, e.to_string()),
    }
}
