//! Reading the journal for finance: one pass over every event, in seq order, through a
//! [`RowBuilder`].
//!
//! Finance needs each transaction's whole history to know what an event changed (the fold's
//! state before it), and reconciliation needs every transaction's current status to classify
//! Alipay rows, so the pass walks the whole `events` table in pages of
//! [`EVENTS_PAGE_MAX`] through a read-only handle. Memory is
//! one [`crate::TxnState`] per transaction plus the rows kept (those on or after a given day).
//! Every event is hash-checked by the reader as it is read.

use crate::day::BeijingDay;
use crate::finance::pricing::Pricing;
use crate::finance::rows::{FinanceRow, RowBuilder};
use crate::finance::FinanceError;
use crate::reader::{Reader, EVENTS_PAGE_MAX};

/// How often the pass reports progress, in events.
pub const PROGRESS_EVERY_EVENTS: u64 = 100_000;

/// What one pass found.
#[derive(Debug)]
pub struct Scanned<'p> {
    /// Every transaction's state at the end of the journal.
    pub builder: RowBuilder<'p>,
    /// The rows on or after the day asked for, in event order.
    pub rows: Vec<FinanceRow>,
    /// Events read.
    pub events: u64,
}

/// Reads every event of the journal, keeping the rows dated `from_day` or later. `progress` is
/// called with the count of events read every `progress_every` events (the CLI passes
/// [`PROGRESS_EVERY_EVENTS`]; 0 never calls it).
pub fn scan<'p>(
    reader: &Reader,
    pricing: &'p Pricing,
    from_day: BeijingDay,
    progress_every: u64,
    mut progress: impl FnMut(u64),
) -> Result<Scanned<'p>, FinanceError> {
    let mut builder = RowBuilder::new(pricing);
    let mut rows = Vec::new();
    let mut page_rows = Vec::new();
    let mut after = 0_u64;
    let mut events = 0_u64;
    loop {
        let page = reader
            .events_since(after, EVENTS_PAGE_MAX)
            .map_err(FinanceError::Journal)?;
        let Some(last) = page.last() else {
            break;
        };
        after = last.seq;
        for event in &page {
            builder.push(event, &mut page_rows)?;
            rows.extend(page_rows.drain(..).filter(|r| r.day() >= from_day));
            events = events.saturating_add(1);
            if progress_every != 0 && events % progress_every == 0 {
                progress(events);
            }
        }
    }
    Ok(Scanned {
        builder,
        rows,
        events,
    })
}
