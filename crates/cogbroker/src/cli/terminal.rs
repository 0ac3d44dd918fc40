//! Talking to the person at the terminal: prompts and menus on `/dev/tty` (never stdout), hidden
//! input for secrets, and QR codes drawn with Unicode half blocks.

use std::fs::File;
use std::io::{BufRead as _, Write as _};

use anyhow::Context as _;
use zeroize::Zeroizing;

use super::Interrupted;

/// The controlling terminal, opened on first use so `--password-stdin` scripts without a
/// terminal work as long as no challenge needs a person.
///
/// Every answer is read by `rpassword` in raw mode, visible or hidden: Ctrl-C then restores the
/// terminal (echo back on) and comes back as [`Interrupted`], so the caller can cancel the
/// pending login instead of dying with a silent terminal. The caller must have a SIGINT
/// handler installed (rpassword re-raises the signal).
#[derive(Debug, Default)]
pub(crate) struct Terminal {
    tty: Option<File>,
}

impl Terminal {
    /// A terminal that opens `/dev/tty` when first needed.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    fn tty(&mut self) -> anyhow::Result<&mut File> {
        if self.tty.is_none() {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/tty")
                .context(
                    "this login needs answers from a person but there is no terminal \
                     (a password can come from --password-stdin or a `password` source; MFA \
                     codes and other challenges need a terminal, or the HTTP API: docs/api.md)",
                )?;
            self.tty = Some(file);
        }
        self.tty.as_mut().context("the terminal was just opened")
    }

    /// Prints a line on the terminal (or stderr when there is none).
    pub(crate) fn say(&mut self, text: &str) -> anyhow::Result<()> {
        match self.tty() {
            Ok(file) => writeln!(file, "{text}").context("writing to the terminal failed"),
            Err(_) => {
                let mut stderr = std::io::stderr().lock();
                writeln!(stderr, "{text}").context("writing to stderr failed")
            }
        }
    }

    /// Asks for a visible line; returns it without the line ending.
    pub(crate) fn ask(&mut self, prompt: &str) -> anyhow::Result<String> {
        self.tty()?;
        // Every character shown as typed: a "partial mask" that never starts masking.
        let config = rpassword::ConfigBuilder::new()
            .password_feedback_partial_mask('*', usize::MAX)
            .build();
        let answer = read_answer(rpassword::prompt_password_with_config(prompt, config))?;
        Ok(answer.as_str().to_owned())
    }

    /// Asks for a hidden line (a password or an answer that must not be seen).
    pub(crate) fn ask_secret(&mut self, prompt: &str) -> anyhow::Result<Zeroizing<String>> {
        // Make sure a terminal exists so the error says why when it does not.
        self.tty()?;
        read_answer(rpassword::prompt_password(prompt))
    }

    /// Asks a non-empty visible answer, re-asking on an empty line.
    pub(crate) fn ask_non_empty(&mut self, prompt: &str) -> anyhow::Result<String> {
        loop {
            let answer = self.ask(prompt)?;
            if !answer.trim().is_empty() {
                return Ok(answer.trim().to_owned());
            }
        }
    }

    /// A numbered menu; returns the index of the chosen item.
    pub(crate) fn choose(&mut self, title: &str, items: &[String]) -> anyhow::Result<usize> {
        anyhow::ensure!(!items.is_empty(), "there is nothing to choose from");
        self.say(title)?;
        for (index, item) in items.iter().enumerate() {
            self.say(&format!("  {}) {item}", index + 1))?;
        }
        loop {
            let answer = self.ask(&format!("Choose 1-{}: ", items.len()))?;
            match answer.trim().parse::<usize>() {
                Ok(number) if (1..=items.len()).contains(&number) => return Ok(number - 1),
                _ => self.say(&format!("Please type a number from 1 to {}.", items.len()))?,
            }
        }
    }
}

fn read_answer(read: std::io::Result<String>) -> anyhow::Result<Zeroizing<String>> {
    match read {
        Ok(answer) => Ok(Zeroizing::new(answer)),
        Err(error) if error.kind() == std::io::ErrorKind::Interrupted => Err(Interrupted.into()),
        Err(error) if error.kind() == std::io::ErrorKind::UnexpectedEof => {
            anyhow::bail!("the terminal was closed before an answer was given")
        }
        Err(error) => Err(anyhow::Error::new(error).context("reading from the terminal failed")),
    }
}

/// Reads one line (the password) from standard input.
pub(crate) fn read_stdin_line() -> anyhow::Result<Zeroizing<String>> {
    let mut line = Zeroizing::new(String::new());
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from standard input failed")?;
    let trimmed = Zeroizing::new(line.trim_end_matches(['\r', '\n']).to_owned());
    anyhow::ensure!(!trimmed.is_empty(), "standard input held no password line");
    Ok(trimmed)
}

/// A QR code of `text` drawn with Unicode half blocks (two modules per character cell),
/// light on dark so it scans from a dark terminal.
pub(crate) fn qr_code(text: &str) -> anyhow::Result<String> {
    use qrcode::render::unicode::Dense1x2;
    let code =
        qrcode::QrCode::new(text.as_bytes()).context("the text is too long for a QR code")?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_codes_use_half_blocks() {
        let drawing =
            qr_code("otpauth://totp/demo?secret=JBSWY3DPEHPK3PXP&issuer=cogbroker").unwrap();
        assert!(drawing.lines().count() > 10);
        assert!(drawing.contains('▀') || drawing.contains('▄'));
    }
}
