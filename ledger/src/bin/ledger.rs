//! `ledger`: the finance and operations tool for the switch's journal.
//!
//! Every subcommand opens the journal read-only (a RocksDB secondary, safe beside a running
//! switch), reads what it needs and never writes to it. What the subcommands compute is in
//! `ledger::finance`; this file parses flags, reads and writes files, and maps every failure to
//! its own exit code (listed in `--help`).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ledger::finance::alipay_file::read_transactions;
use ledger::finance::amount::format_money;
use ledger::finance::carry::{load_carry, save_carry, Carry};
use ledger::finance::export::{export, ExportFormat};
use ledger::finance::pricing::Pricing;
use ledger::finance::reconcile::{reconcile, JournalFacts, ReconcileInput};
use ledger::finance::report::{summary_text, ReportJson};
use ledger::finance::rows::{rows_of_events, FinanceRow};
use ledger::finance::scan::{scan, Scanned, PROGRESS_EVERY_EVENTS};
use ledger::finance::settle::{settle, settlement_text};
use ledger::finance::time::{format_beijing, parse_day, previous_day};
use ledger::finance::FinanceError;
use ledger::{BeijingDay, EventBody, Journal, Money, ReadOnlyJournal, TxnKey};

/// The journal folder when `--journal` is not given.
const DEFAULT_JOURNAL: &str = "data/journal";

const EXIT_CODES: &str = "\
Exit codes:
  0  success (verify: the chain verifies; reconcile: no difference)
  1  reconcile: differences remain (see the report)
  2  usage error (bad flag or value)
  3  no journal at the path (missing folder, or not a journal)
  4  incompatible journal (written by another journal format version)
  5  malformed Alipay file (the message gives the line and the reason), or a file for another day
  6  damaged journal (broken hash chain, undecodable or inconsistent records, events that do not fold)
  7  cannot read or write an output, report or carry-over state file
  8  show: no such transaction
  9  any other storage error";

#[derive(Debug, Parser)]
#[command(
    name = "ledger",
    version,
    about = "Verify, inspect, export, reconcile and settle the switch's journal (read-only).",
    after_help = EXIT_CODES
)]
struct Cli {
    /// The journal folder (opened read-only; safe beside a running switch).
    #[arg(long, global = true, default_value = DEFAULT_JOURNAL, value_name = "DIR")]
    journal: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Walk the whole hash chain and report the first break, if any.
    #[command(after_help = EXIT_CODES)]
    Verify,
    /// Show one transaction: its state, its events and its finance rows.
    #[command(after_help = EXIT_CODES)]
    Show {
        /// The merchant's id.
        merchant: String,
        /// The merchant's order number.
        partner_trans_id: String,
    },
    /// Write a Beijing day's rows as files: Alipay's two formats per upstream partner, or plain
    /// CSV / JSON per merchant.
    #[command(after_help = EXIT_CODES)]
    Export {
        #[command(flatten)]
        day: DayArg,
        /// The format.
        #[arg(long, value_enum)]
        format: Format,
        /// The folder to write into (created if missing).
        #[arg(long, default_value = ".", value_name = "DIR")]
        out: PathBuf,
        #[command(flatten)]
        pricing: PricingArgs,
    },
    /// Reconcile a Beijing day against Alipay's transaction file of one partner.
    #[command(after_help = EXIT_CODES)]
    Reconcile {
        #[command(flatten)]
        day: DayArg,
        /// Alipay's transaction file (`{partner}_fptrade_{yyyyMMdd}.csv`).
        #[arg(long, value_name = "FILE")]
        alipay_file: PathBuf,
        /// Where carry-over state lives (`carry-{yyyyMMdd}.json`). Without it nothing is
        /// carried across midnight and every unmatched item is reported at once.
        #[arg(long, value_name = "DIR")]
        state_dir: Option<PathBuf>,
        /// Also write the JSON report here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Items this close to midnight may straddle it and are carried into the next day.
        #[arg(long, default_value_t = 15, value_name = "MINUTES")]
        carry_window_min: u32,
        #[command(flatten)]
        pricing: PricingArgs,
    },
    /// Settle a Beijing day: per merchant and currency, counts, gross, refunds, reversals,
    /// fees and net.
    #[command(after_help = EXIT_CODES)]
    Settle {
        #[command(flatten)]
        day: DayArg,
        /// Also write the settlement as JSON here.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        #[command(flatten)]
        pricing: PricingArgs,
    },
}

#[derive(Debug, Args)]
struct DayArg {
    /// The Beijing (GMT+8) day, YYYY-MM-DD.
    #[arg(long = "day", value_parser = day_value, value_name = "YYYY-MM-DD")]
    value: BeijingDay,
}

#[derive(Debug, Args)]
struct PricingArgs {
    /// Alipay's fee rate of an upstream partner, in basis points, for fees no event reported
    /// (repeat per partner). Without it such fees are unknown and counted as 0.
    #[arg(long = "fee-rate", value_name = "PARTNER=BPS")]
    fee_rates: Vec<String>,
    /// The rate of a currency to CNY, 8 decimals, for the settlement file's Rate and Rmb
    /// columns (repeat per currency). Without it those columns are empty.
    #[arg(long = "rate", value_name = "CCY=RATE")]
    rates: Vec<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// `{partner}_fptrade_{yyyyMMdd}.csv`, Alipay's transaction file.
    AlipayTransactions,
    /// `{partner}_settle_{yyyyMMdd}.csv`, Alipay's settlement file.
    AlipaySettlement,
    /// `{merchant}_{yyyyMMdd}.csv`.
    Csv,
    /// `{merchant}_{yyyyMMdd}.json`.
    Json,
}

impl Format {
    fn export_format(self) -> ExportFormat {
        match self {
            Format::AlipayTransactions => ExportFormat::AlipayTransactions,
            Format::AlipaySettlement => ExportFormat::AlipaySettlement,
            Format::Csv => ExportFormat::Csv,
            Format::Json => ExportFormat::Json,
        }
    }
}

fn day_value(text: &str) -> Result<BeijingDay, String> {
    parse_day(text).ok_or_else(|| format!("`{text}` is not a real date as YYYY-MM-DD"))
}

/// A failure: the message for stderr and the exit code.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Failure {
        Failure {
            code,
            message: message.into(),
        }
    }

    fn io(path: &Path, error: &std::io::Error) -> Failure {
        Failure::new(7, format!("{}: {error}", path.display()))
    }
}

fn journal_failure(error: &ledger::Error) -> Failure {
    use ledger::Error as E;
    let code = match error {
        E::NotAJournal(_) => 3,
        E::Incompatible { .. } => 4,
        E::Chain(_) | E::Codec { .. } | E::Inconsistent(_) => 6,
        _ => 9,
    };
    Failure::new(code, format!("journal: {error}"))
}

impl From<FinanceError> for Failure {
    fn from(error: FinanceError) -> Failure {
        let code = match &error {
            FinanceError::Journal(e) => return journal_failure(e),
            FinanceError::Fold { .. } | FinanceError::OutOfOrder { .. } => 6,
            FinanceError::AlipayFile { .. } | FinanceError::WrongDay { .. } => 5,
            _ => 7,
        };
        Failure::new(code, error.to_string())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(failure) => {
            eprintln!("ledger: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

fn run(cli: &Cli) -> Result<u8, Failure> {
    let journal = open(&cli.journal)?;
    match &cli.command {
        Command::Verify => verify(&journal),
        Command::Show {
            merchant,
            partner_trans_id,
        } => show(&journal, &TxnKey::new(merchant, partner_trans_id)),
        Command::Export {
            day,
            format,
            out,
            pricing,
        } => {
            let pricing = pricing_of(pricing)?;
            let scanned = read_books(&journal, &pricing, day.value)?;
            write_exports(
                format.export_format(),
                day.value,
                &scanned.rows,
                &pricing,
                out,
            )
        }
        Command::Reconcile {
            day,
            alipay_file,
            state_dir,
            json,
            carry_window_min,
            pricing,
        } => {
            let pricing = pricing_of(pricing)?;
            let options = ReconcileOptions {
                day: day.value,
                alipay_file,
                state_dir: state_dir.as_deref(),
                json: json.as_deref(),
                carry_window_ms: i64::from(*carry_window_min) * 60_000,
            };
            run_reconcile(&journal, &pricing, &options)
        }
        Command::Settle { day, json, pricing } => {
            let pricing = pricing_of(pricing)?;
            let scanned = read_books(&journal, &pricing, day.value)?;
            let settlements = settle(&scanned.rows, day.value);
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&settlements)
                    .map_err(|e| Failure::new(7, e.to_string()))?;
                write_file(path, &text)?;
            }
            out(&settlement_text(day.value, &settlements))?;
            Ok(0)
        }
    }
}

fn open(path: &Path) -> Result<ReadOnlyJournal, Failure> {
    if !path.is_dir() {
        return Err(Failure::new(
            3,
            format!("{}: no journal folder here", path.display()),
        ));
    }
    let mut journal = Journal::open_read_only(path).map_err(|e| journal_failure(&e))?;
    journal.catch_up().map_err(|e| journal_failure(&e))?;
    Ok(journal)
}

fn pricing_of(args: &PricingArgs) -> Result<Pricing, Failure> {
    let mut pricing = Pricing::new();
    for flag in &args.fee_rates {
        pricing = pricing
            .add_fee_flag(flag)
            .map_err(|e| Failure::new(2, format!("--fee-rate: {e}")))?;
    }
    for flag in &args.rates {
        pricing = pricing
            .add_rate_flag(flag)
            .map_err(|e| Failure::new(2, format!("--rate: {e}")))?;
    }
    Ok(pricing)
}

/// Writes to stdout; a closed pipe or full disk is exit 7.
fn out(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::io(Path::new("<stdout>"), &e))
}

/// Writes `text` to `path` through a temporary file and a rename, so a reader never sees half.
fn write_file(path: &Path, text: &str) -> Result<(), Failure> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, text).map_err(|e| Failure::io(&tmp, &e))?;
    std::fs::rename(&tmp, path).map_err(|e| Failure::io(path, &e))
}

fn read_books<'p>(
    journal: &ReadOnlyJournal,
    pricing: &'p Pricing,
    from_day: BeijingDay,
) -> Result<Scanned<'p>, Failure> {
    let scanned = scan(journal, pricing, from_day, PROGRESS_EVERY_EVENTS, |n| {
        eprintln!("ledger: read {n} events");
    })?;
    eprintln!(
        "ledger: read {} events, {} transactions",
        scanned.events,
        scanned.builder.states().count()
    );
    Ok(scanned)
}

fn verify(journal: &ReadOnlyJournal) -> Result<u8, Failure> {
    eprintln!("ledger: verifying the whole chain");
    let report = journal
        .verify_with_progress(PROGRESS_EVERY_EVENTS, |n| {
            eprintln!("ledger: verified {n} events");
        })
        .map_err(|e| journal_failure(&e))?;
    let head = format!(
        "{} events, last good seq {}",
        report.checked, report.last.seq
    );
    match report.broken {
        None => {
            // The head's hash, for anchoring elsewhere: a later run that prints another hash
            // for the same seq means the chain was rewritten.
            let hash = ledger::error::hex(&report.last.hash);
            out(&format!("chain verifies: {head}, head hash {hash}\n"))?;
            Ok(0)
        }
        Some(brk) => Err(Failure::new(6, format!("chain broken: {brk} ({head})"))),
    }
}

fn show(journal: &ReadOnlyJournal, key: &TxnKey) -> Result<u8, Failure> {
    let state = journal.txn(key).map_err(|e| journal_failure(&e))?;
    let Some(state) = state else {
        return Err(Failure::new(
            8,
            format!("no transaction {} / {}", key.merchant, key.partner_trans_id),
        ));
    };
    let events = journal.events_of(key).map_err(|e| journal_failure(&e))?;
    let mut text = format!(
        "{} / {}: {:?}, {} via partner {} as {}, Alipay trade {}\n",
        key.merchant,
        key.partner_trans_id,
        state.status,
        money(state.amount),
        state.upstream_partner,
        state.upstream_trans_id,
        state.alipay_trans_id.as_deref().unwrap_or("unknown")
    );
    text.push_str("events:\n");
    for e in &events {
        let line = format!(
            "  {:>8} {} {}\n",
            e.seq,
            format_beijing(e.at_ms),
            describe(&e.body)
        );
        text.push_str(&line);
    }
    let rows: Vec<FinanceRow> = rows_of_events(&events, &Pricing::new())?;
    text.push_str("finance rows (fees as reported):\n");
    for r in &rows {
        let line = format!(
            "  {} {} {} fee {} ({}) at {}\n",
            r.row_type.name(),
            r.alipay_id(),
            money(r.amount),
            money(r.fee),
            r.fee_source.name(),
            format_beijing(r.at_ms)
        );
        text.push_str(&line);
    }
    out(&text)?;
    Ok(0)
}

fn money(m: Money) -> String {
    format!("{} {}", format_money(m), m.currency_code())
}

fn opt(text: &Option<String>) -> &str {
    text.as_deref().unwrap_or("-")
}

/// One line per event: its kind and the fields an operator reads (no fingerprints).
fn describe(body: &EventBody) -> String {
    match body {
        EventBody::PayReceived {
            amount,
            upstream_trans_id,
            secondary_merchant_id,
            ..
        } => format!(
            "PayReceived {} upstream {upstream_trans_id} secondary {}",
            money(*amount),
            opt(secondary_merchant_id)
        ),
        EventBody::PaySent { attempt, endpoint } => {
            format!("PaySent attempt {attempt} to {endpoint}")
        }
        EventBody::PayOutcome {
            result,
            alipay_trans_id,
            amount,
            fee,
            error_code,
            ..
        } => format!(
            "PayOutcome {result:?} trade {} amount {} fee {} error {}",
            opt(alipay_trans_id),
            amount.map_or("-".to_owned(), money),
            fee.map_or("-".to_owned(), money),
            opt(error_code)
        ),
        EventBody::QueryResult {
            status,
            alipay_trans_id,
            ..
        } => format!("QueryResult {status:?} trade {}", opt(alipay_trans_id)),
        EventBody::CancelAttempt { attempt } => format!("CancelAttempt {attempt}"),
        EventBody::CancelResult {
            result,
            action,
            retry,
            error_code,
        } => format!(
            "CancelResult {result:?} action {action:?} retry {retry} error {}",
            opt(error_code)
        ),
        EventBody::RefundIntent {
            refund,
            upstream_refund_id,
            amount,
            ..
        } => format!(
            "RefundIntent {} {} upstream {upstream_refund_id}",
            refund.partner_refund_id,
            money(*amount)
        ),
        EventBody::RefundResult {
            refund,
            result,
            fee,
            error_code,
        } => format!(
            "RefundResult {} {result:?} fee {} error {}",
            refund.partner_refund_id,
            fee.map_or("-".to_owned(), money),
            opt(error_code)
        ),
        EventBody::NotifyAttempt {
            attempt, result, ..
        } => format!("NotifyAttempt {attempt} {result:?}"),
        EventBody::OperatorAction { who, why, action } => {
            format!("OperatorAction by {who}: {action} ({why})")
        }
        EventBody::NotifyDue { refund } => match refund {
            Some(r) => format!("NotifyDue refund {}", r.partner_refund_id),
            None => "NotifyDue".to_owned(),
        },
        EventBody::Exception { reason } => format!("Exception: {reason}"),
    }
}

fn write_exports(
    format: ExportFormat,
    day: BeijingDay,
    rows: &[FinanceRow],
    pricing: &Pricing,
    dir: &Path,
) -> Result<u8, Failure> {
    std::fs::create_dir_all(dir).map_err(|e| Failure::io(dir, &e))?;
    let files = export(format, day, rows, pricing);
    let mut listing = String::new();
    for f in &files {
        let path = dir.join(&f.name);
        write_file(&path, &f.contents)?;
        listing.push_str(&format!("{}\n", path.display()));
    }
    eprintln!(
        "ledger: wrote {} {} file(s) for {day}",
        files.len(),
        format.name()
    );
    out(&listing)?;
    Ok(0)
}

struct ReconcileOptions<'a> {
    day: BeijingDay,
    alipay_file: &'a Path,
    state_dir: Option<&'a Path>,
    json: Option<&'a Path>,
    carry_window_ms: i64,
}

fn run_reconcile(
    journal: &ReadOnlyJournal,
    pricing: &Pricing,
    o: &ReconcileOptions<'_>,
) -> Result<u8, Failure> {
    let file = read_transactions(o.alipay_file)?;
    if file.day != o.day {
        return Err(FinanceError::WrongDay {
            expected: o.day.to_string(),
            found: file.day.to_string(),
        }
        .into());
    }
    let carried_in = match (o.state_dir, previous_day(o.day)) {
        (Some(dir), Some(before)) => load_carry(dir, before, &file.partner)?,
        _ => Carry::default(),
    };
    let scanned = read_books(journal, pricing, o.day)?;
    let facts = JournalFacts::build(&file.partner, scanned.builder.states(), &scanned.rows);
    let rec = reconcile(ReconcileInput {
        day: o.day,
        journal_rows: &scanned.rows,
        alipay: &file,
        carried_in,
        facts: &facts,
        carry_window_ms: o.carry_window_ms,
        carry_out: o.state_dir.is_some(),
    });
    if let Some(dir) = o.state_dir {
        let path = save_carry(dir, o.day, &rec.partner, &rec.carried_out)?;
        eprintln!("ledger: carry-over state written to {}", path.display());
    }
    if let Some(path) = o.json {
        let text = serde_json::to_string_pretty(&ReportJson::of(&rec))
            .map_err(|e| Failure::new(7, e.to_string()))?;
        write_file(path, &text)?;
    }
    out(&summary_text(&rec))?;
    Ok(if rec.is_clean() { 0 } else { 1 })
}
