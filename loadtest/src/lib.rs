//! `loadtest`: the SRE load generator of the Alipay switch.
//!
//! - [`profile`]: the target rate over time and each request's intended send time;
//! - [`fleet`]: the callers that sign requests, their keys and merchants;
//! - [`workload`]: which request comes next (new pays, and queries, refunds and cancels of
//!   earlier ones) and its signed form;
//! - [`runner`]: the open-loop dispatcher and the recorder;
//! - [`report`]: the JSON report, `.hgrm` spectra and the baseline comparison; [`html`] its
//!   self-contained HTML page;
//! - [`told`] and [`check`]: what the client was told, and the three-way check against the
//!   switch's journal and the simulator's trades;
//! - [`procs`] and [`compare`]: running the simulator, nginx and the switch as separate processes,
//!   and the side-by-side comparison.

pub mod check;
pub mod compare;
pub mod fleet;
pub mod html;
pub mod max;
pub mod output;
pub mod procs;
pub mod profile;
pub mod report;
pub mod runner;
pub mod smoke;
pub mod told;
pub mod workload;
