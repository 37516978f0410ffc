//! The client commands of `cli.md` (topics, produce, consume, groups, queues, bench) over the SDK: global
//! flags, output modes and the exit codes every command shares.
//!
//! Exit codes: 0 done; 1 the server or the store said no (its `detail` and `code`); 2 usage
//! (clap's own, and values clap cannot check); 3 the server or the store could not be reached.

pub mod bench;
pub mod consume;
pub mod delayed;
pub mod groups;
pub mod produce;
pub mod queues;
pub mod topics;
pub mod transactions;

use clap::{Args, ValueEnum};
use sluice_sdk::{Client, Error};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

/// Flags every client command takes (also from the environment).
#[derive(Args, Clone, Debug)]
pub struct Global {
    /// The gateway to talk to.
    #[arg(
        long,
        env = "SLUICE_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// Bearer token sent with every request.
    #[arg(long, env = "SLUICE_TOKEN", global = true, hide_env_values = true)]
    pub token: Option<String>,
    /// `text` (tables and progress on a terminal, plain lines when piped) or `json` (one JSON
    /// document; one object a line for streams).
    #[arg(long, env = "SLUICE_OUTPUT", value_enum, default_value_t = Output::Text, global = true)]
    pub output: Output,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

/// Why a command failed, and its exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            exit: 2,
            message: message.into(),
        }
    }

    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.exit)
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        let exit = match &e {
            e if e.is_unreachable() => 3,
            Error::Invalid(_) => 2,
            _ => 1,
        };
        // One line, whatever the server or the store said, with the problem code.
        let mut message = e.to_string().replace(['\n', '\r'], " ");
        if let (None, Some(code)) = (e.api(), e.code()) {
            message = format!("{message} ({code})");
        }
        Self { exit, message }
    }
}

/// An output failure: a closed pipe (`| head`) ends the command quietly.
#[derive(Debug)]
pub enum Stop {
    PipeClosed,
    Failed(Failure),
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Failed(f)
    }
}

impl From<Error> for Stop {
    fn from(e: Error) -> Self {
        Stop::Failed(e.into())
    }
}

impl From<std::io::Error> for Stop {
    fn from(e: std::io::Error) -> Self {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            Stop::PipeClosed
        } else {
            Stop::Failed(Failure {
                exit: 1,
                message: format!("cannot write the output: {e}"),
            })
        }
    }
}

pub type Outcome = Result<(), Stop>;

/// What a client command runs with.
pub struct Ctx {
    pub global: Global,
    pub client: Client,
    /// stdout is a terminal: tables and colour-free alignment.
    pub stdout_tty: bool,
    /// stderr is a terminal: progress bars.
    pub stderr_tty: bool,
}

impl Ctx {
    pub fn new(global: Global) -> Result<Self, Failure> {
        let mut b = Client::builder(&global.url);
        if let Some(t) = &global.token {
            b = b.token(t);
        }
        let client = b.build().map_err(|e| match e {
            Error::Invalid(m) => Failure::usage(format!("--url: {m}")),
            e => e.into(),
        })?;
        Ok(Self {
            global,
            client,
            stdout_tty: std::io::stdout().is_terminal(),
            stderr_tty: std::io::stderr().is_terminal(),
        })
    }

    pub fn json(&self) -> bool {
        self.global.output == Output::Json
    }

    /// Print one JSON document (or object of a stream) on its own line.
    pub fn print_json(&self, v: &impl serde::Serialize) -> Outcome {
        let mut out = std::io::stdout().lock();
        serde_json::to_writer(&mut out, v).map_err(|e| Failure {
            exit: 1,
            message: format!("cannot encode the output: {e}"),
        })?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(())
    }

    pub fn print_line(&self, line: &str) -> Outcome {
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
        out.flush()?;
        Ok(())
    }
}

/// Rows as an aligned table with a header on a terminal, tab-separated lines without one when
/// piped.
pub fn table(tty: bool, header: &[&str], rows: &[Vec<String>]) -> String {
    if !tty {
        return rows
            .iter()
            .map(|r| r.join("\t"))
            .collect::<Vec<_>>()
            .join("\n");
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![line(header.to_vec())];
    out.extend(
        rows.iter()
            .map(|r| line(r.iter().map(String::as_str).collect())),
    );
    out.join("\n")
}

/// `7d`, `12h`, `30m`, `500ms`: clap's value parser for durations.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (write durations like 7d, 12h, 30m, 500ms)"))
}

/// A retention or wait in the text output: `7days`, `500ms`.
pub fn format_ms(ms: i64) -> String {
    humantime::format_duration(Duration::from_millis(ms.max(0) as u64)).to_string()
}

/// An append time in the text output (RFC 3339, UTC, milliseconds).
pub fn format_time(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_humantime() {
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86400)
        );
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(
            parse_duration("12h").unwrap(),
            Duration::from_secs(12 * 3600)
        );
        assert!(parse_duration("7x").is_err());
        assert!(parse_duration("").is_err());
        assert_eq!(format_ms(604_800_000), "7days");
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn tables_align_on_a_terminal_and_tab_separate_in_pipes() {
        let rows = vec![
            vec!["orders".to_string(), "3".into()],
            vec!["a".into(), "10".into()],
        ];
        assert_eq!(table(false, &["NAME", "N"], &rows), "orders\t3\na\t10");
        assert_eq!(
            table(true, &["NAME", "N"], &rows),
            "NAME    N\norders  3\na       10"
        );
    }

    #[test]
    fn errors_map_to_exit_codes() {
        let refused = Error::Connect {
            url: "u".into(),
            message: "refused".into(),
        };
        assert_eq!(Failure::from(refused).exit, 3);
        assert_eq!(Failure::from(Error::Invalid("x".into())).exit, 2);
        assert_eq!(
            Failure::from(Error::Decode("x\ny".into())).message,
            "unexpected answer: x y"
        );
    }
}
