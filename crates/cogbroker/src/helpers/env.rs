//! `cogbroker env`: one assignment of the token to an environment variable, quoted for sh,
//! fish or PowerShell so any value survives `eval` unchanged.

use zeroize::Zeroizing;

use super::{ProtocolError, short};

/// The shells `env` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// POSIX sh, bash, zsh, dash: `export NAME='value'`.
    Sh,
    /// fish: `set -gx NAME 'value'`.
    Fish,
    /// PowerShell: `$Env:NAME = 'value'`.
    PowerShell,
}

/// Checks a variable name: a letter or `_`, then letters, digits and `_`.
pub fn check_name(name: &str) -> Result<(), ProtocolError> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        Ok(())
    } else {
        Err(ProtocolError::new(format!(
            "{:?} is not a variable name; use letters, digits and _, not starting with a digit",
            short(name)
        )))
    }
}

/// `NAME=value` as `shell` writes it, with a newline.
pub fn assignment(shell: Shell, name: &str, value: &str) -> Zeroizing<String> {
    Zeroizing::new(match shell {
        Shell::Sh => format!("export {name}={}\n", quote_sh(value)),
        Shell::Fish => format!("set -gx {name} {}\n", quote_fish(value)),
        Shell::PowerShell => format!("$Env:{name} = {}\n", quote_powershell(value)),
    })
}

/// Single quotes; a `'` closes, is escaped and reopens (`'\''`). Nothing else is special.
fn quote_sh(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// fish single quotes: only `\` and `'` are special inside, both escaped with `\`.
fn quote_fish(value: &str) -> String {
    format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
}

/// PowerShell single quotes: a quote is doubled; PowerShell also treats the typographic single
/// quotes U+2018–U+201B as quotes, so they are doubled too.
fn quote_powershell(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}') {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    const AWKWARD: &str = "it's \"quoted\" \\ $HOME `date` $(id)\nsecond line\t‘x’ !";

    #[test]
    fn names() {
        check_name("COGBROKER_TOKEN").unwrap();
        check_name("_x1").unwrap();
        for bad in ["", "1X", "A-B", "A B", "A=B", "Ä"] {
            assert!(
                check_name(bad)
                    .unwrap_err()
                    .0
                    .contains("is not a variable name"),
                "{bad}"
            );
        }
    }

    #[test]
    fn golden_quoting() {
        assert_eq!(&*assignment(Shell::Sh, "T", "a'b"), "export T='a'\\''b'\n");
        assert_eq!(
            &*assignment(Shell::Fish, "T", "a'b\\c"),
            "set -gx T 'a\\'b\\\\c'\n"
        );
        assert_eq!(
            &*assignment(Shell::PowerShell, "T", "a'b‘c"),
            "$Env:T = 'a''b‘‘c'\n"
        );
        assert_eq!(
            &*assignment(Shell::Sh, "T", "eyJ.a-b_c"),
            "export T='eyJ.a-b_c'\n"
        );
    }

    /// The value comes back byte for byte through a real `sh` (dash on Debian).
    #[test]
    fn sh_reads_back_every_value() {
        for value in [AWKWARD, "", "'", "''\n'", "trailing newline\n"] {
            let script = format!(
                "{}printf '%s' \"$COGBROKER_TOKEN\"",
                &*assignment(Shell::Sh, "COGBROKER_TOKEN", value)
            );
            let output = Command::new("sh")
                .arg("-c")
                .arg("eval \"$1\"")
                .arg("sh")
                .arg(&script)
                .output()
                .unwrap();
            assert!(output.status.success(), "{output:?}");
            assert_eq!(String::from_utf8(output.stdout).unwrap(), value);
        }
    }
}
