//! A line-preserving editor for the INI dialect of the AWS shared config file (`~/.aws/config`),
//! as botocore reads it (Python's `configparser`, strict): `[section]` headers, `key = value` or
//! `key: value` options (keys compared lowercased), full-line `#` and `;` comments, and indented
//! continuation lines that belong to the option above (the nested `s3 =` blocks).
//!
//! Why our own: the INI crates on crates.io parse into maps and write them back, dropping
//! comments, blank lines and the order a person chose; none edits in place. This editor changes
//! only the lines of the one option it sets, and refuses a file botocore itself would refuse
//! (an option before any section, a line that is neither, a section or option given twice),
//! naming the file and line.

use std::fmt;

/// One parsed line. `text` is the line as written (without its line ending).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Kind {
    /// Empty, or only a comment.
    Other,
    /// `[name]`.
    Section(String),
    /// `key = value` (key lowercased, value trimmed, without continuation lines).
    Option { key: String, value: String },
    /// An indented line continuing the option above.
    Continuation,
}

/// A parsed file that can be written back byte for byte.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ini {
    lines: Vec<(String, Kind)>,
    /// `\r\n` if the file uses it, else `\n`.
    newline: &'static str,
    /// Whether the last line ended with a newline (an empty file counts as yes).
    final_newline: bool,
}

/// A line botocore would refuse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong there.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl Ini {
    /// Parses `text`, refusing what botocore's strict parser refuses.
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let newline = if text.contains("\r\n") { "\r\n" } else { "\n" };
        let final_newline = text.is_empty() || text.ends_with('\n');
        let body = text.strip_suffix('\n').unwrap_or(text);
        let mut lines = Vec::new();
        let mut section: Option<String> = None;
        let mut seen_sections: Vec<String> = Vec::new();
        let mut seen_keys: Vec<String> = Vec::new();
        let mut in_option = false;
        if !text.is_empty() {
            for (index, raw) in body.split('\n').enumerate() {
                let line = raw.strip_suffix('\r').unwrap_or(raw);
                let number = index + 1;
                let error = |message: String| ParseError {
                    line: number,
                    message,
                };
                let trimmed = line.trim();
                let indented = line.starts_with([' ', '\t']);
                let kind = if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
                    Kind::Other
                } else if indented && in_option {
                    Kind::Continuation
                } else if let Some(inner) = trimmed.strip_prefix('[') {
                    let name = inner
                        .rfind(']')
                        .map(|end| &inner[..end])
                        .filter(|name| !name.is_empty())
                        .ok_or_else(|| error(format!("{trimmed:?} is not a [section] header")))?;
                    if seen_sections.iter().any(|seen| seen == name) {
                        return Err(error(format!("section [{name}] appears twice")));
                    }
                    seen_sections.push(name.to_owned());
                    seen_keys.clear();
                    section = Some(name.to_owned());
                    in_option = false;
                    Kind::Section(name.to_owned())
                } else {
                    let Some(at) = trimmed.find(['=', ':']) else {
                        return Err(error(format!(
                            "{trimmed:?} is neither a [section], a `key = value` option nor a comment"
                        )));
                    };
                    if section.is_none() {
                        return Err(error(
                            "an option before the first [section] header".to_owned(),
                        ));
                    }
                    let key = trimmed[..at].trim().to_lowercase();
                    if key.is_empty() {
                        return Err(error("an option with no name".to_owned()));
                    }
                    if seen_keys.contains(&key) {
                        return Err(error(format!(
                            "option {key:?} appears twice in [{}]",
                            section.as_deref().unwrap_or_default()
                        )));
                    }
                    seen_keys.push(key.clone());
                    in_option = true;
                    Kind::Option {
                        key,
                        value: trimmed[at + 1..].trim().to_owned(),
                    }
                };
                if kind == Kind::Other && !trimmed.is_empty() {
                    // A comment ends nothing: configparser lets continuation lines follow it.
                } else if kind == Kind::Other {
                    in_option = false;
                }
                lines.push((line.to_owned(), kind));
            }
        }
        Ok(Self {
            lines,
            newline,
            final_newline,
        })
    }

    /// The value of `key` in `[section]` (the first line only, trimmed), if set.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        let (start, end) = self.section_range(section)?;
        let key = key.to_lowercase();
        self.lines[start..end]
            .iter()
            .find_map(|(_, kind)| match kind {
                Kind::Option { key: found, value } if *found == key => Some(value.as_str()),
                _ => None,
            })
    }

    /// Sets `key = value` in `[section]`: replaces the option's lines (with any continuation
    /// lines) where it is, else adds it after the section's last option, else appends the
    /// section at the end. Every other line stays as it was.
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        let key_lower = key.to_lowercase();
        let new_line = (
            format!("{key} = {value}"),
            Kind::Option {
                key: key_lower.clone(),
                value: value.to_owned(),
            },
        );
        let Some((start, end)) = self.section_range(section) else {
            if let Some((last, _)) = self.lines.last() {
                if !last.trim().is_empty() {
                    self.lines.push((String::new(), Kind::Other));
                }
            }
            self.lines
                .push((format!("[{section}]"), Kind::Section(section.to_owned())));
            self.lines.push(new_line);
            self.final_newline = true;
            return;
        };
        let found = (start..end)
            .find(|&i| matches!(&self.lines[i].1, Kind::Option { key, .. } if *key == key_lower));
        if let Some(at) = found {
            if self.get(section, key) == Some(value) && !self.has_continuation(at) {
                return;
            }
            let mut stop = at + 1;
            while stop < end && self.lines[stop].1 == Kind::Continuation {
                stop += 1;
            }
            self.lines.splice(at..stop, [new_line]);
            return;
        }
        // After the last option (or its continuation lines), else right after the header.
        let insert_at = (start..end)
            .rev()
            .find(|&i| matches!(self.lines[i].1, Kind::Option { .. } | Kind::Continuation))
            .map_or(start, |i| i + 1);
        self.lines.insert(insert_at, new_line);
    }

    fn has_continuation(&self, at: usize) -> bool {
        self.lines
            .get(at + 1)
            .is_some_and(|(_, kind)| *kind == Kind::Continuation)
    }

    /// The lines after `[section]`'s header up to the next header: `(first, end)`.
    fn section_range(&self, section: &str) -> Option<(usize, usize)> {
        let header = self
            .lines
            .iter()
            .position(|(_, kind)| matches!(kind, Kind::Section(name) if name == section))?;
        let end = self.lines[header + 1..]
            .iter()
            .position(|(_, kind)| matches!(kind, Kind::Section(_)))
            .map_or(self.lines.len(), |offset| header + 1 + offset);
        Some((header + 1, end))
    }
}

impl fmt::Display for Ini {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, (line, _)) in self.lines.iter().enumerate() {
            f.write_str(line)?;
            if index + 1 < self.lines.len() || self.final_newline {
                f.write_str(self.newline)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "\
# my AWS settings
[default]
region = eu-west-1
output=json

; work account
[profile work]
region = us-east-1
s3 =
    max_concurrent_requests = 20
    multipart_threshold = 64MB
credential_process = old-tool --x

[sso-session corp]
sso_region = us-east-1
";

    #[test]
    fn an_unchanged_file_is_written_back_byte_for_byte() {
        for text in [FILE, "", "[a]\nk = v", "[a]\r\nk = v\r\n", "\n\n# only\n"] {
            assert_eq!(Ini::parse(text).unwrap().to_string(), text, "{text:?}");
        }
    }

    #[test]
    fn replacing_an_option_drops_its_continuation_lines_only() {
        let mut ini = Ini::parse(FILE).unwrap();
        ini.set("profile work", "s3", "x");
        let text = ini.to_string();
        assert!(text.contains("region = us-east-1\ns3 = x\ncredential_process = old-tool --x\n"));
        assert!(!text.contains("max_concurrent_requests"));
        assert!(text.starts_with(
            "# my AWS settings\n[default]\nregion = eu-west-1\noutput=json\n\n; work account\n"
        ));
    }

    #[test]
    fn setting_an_existing_option_changes_that_line_only() {
        let mut ini = Ini::parse(FILE).unwrap();
        ini.set(
            "profile work",
            "credential_process",
            "cogbroker aws-credential-process work",
        );
        let expected = FILE.replace(
            "credential_process = old-tool --x",
            "credential_process = cogbroker aws-credential-process work",
        );
        assert_eq!(ini.to_string(), expected);
        assert_eq!(
            ini.get("profile work", "CREDENTIAL_PROCESS"),
            Some("cogbroker aws-credential-process work")
        );
    }

    #[test]
    fn an_option_already_set_changes_nothing() {
        let mut ini = Ini::parse(FILE).unwrap();
        ini.set("default", "region", "eu-west-1");
        assert_eq!(ini.to_string(), FILE, "not even `output=json`'s spelling");
    }

    #[test]
    fn a_new_option_goes_after_the_sections_last_option() {
        let mut ini = Ini::parse(FILE).unwrap();
        ini.set(
            "default",
            "credential_process",
            "cogbroker aws-credential-process default",
        );
        let expected = FILE.replace(
            "output=json\n",
            "output=json\ncredential_process = cogbroker aws-credential-process default\n",
        );
        assert_eq!(ini.to_string(), expected);
        let mut ini = Ini::parse("[a]\n# nothing yet\n\n[b]\nk = v\n").unwrap();
        ini.set("a", "x", "1");
        assert_eq!(ini.to_string(), "[a]\nx = 1\n# nothing yet\n\n[b]\nk = v\n");
    }

    #[test]
    fn a_new_section_is_appended_after_a_blank_line() {
        let mut ini = Ini::parse(FILE).unwrap();
        ini.set(
            "profile dev",
            "credential_process",
            "cogbroker aws-credential-process dev",
        );
        assert_eq!(
            ini.to_string(),
            format!(
                "{FILE}\n[profile dev]\ncredential_process = cogbroker aws-credential-process dev\n"
            )
        );
        let mut ini = Ini::parse("").unwrap();
        ini.set("profile dev", "k", "v");
        assert_eq!(ini.to_string(), "[profile dev]\nk = v\n");
        let mut ini = Ini::parse("[a]\nk = v").unwrap();
        ini.set("b", "k", "v");
        assert_eq!(ini.to_string(), "[a]\nk = v\n\n[b]\nk = v\n");
        let mut ini = Ini::parse("[a]\r\nk = v\r\n").unwrap();
        ini.set("b", "k", "v");
        assert_eq!(ini.to_string(), "[a]\r\nk = v\r\n\r\n[b]\r\nk = v\r\n");
    }

    #[test]
    fn what_botocore_refuses_is_refused_with_the_line() {
        for (text, line, part) in [
            ("region = x\n", 1, "before the first [section]"),
            ("[a]\njust words\n", 2, "neither a [section]"),
            ("[a]\nk = 1\n[a]\n", 3, "section [a] appears twice"),
            ("[a]\nk = 1\n# c\nK = 2\n", 4, "option \"k\" appears twice"),
            ("[a\n", 1, "not a [section] header"),
            ("[]\n", 1, "not a [section] header"),
            ("[a]\n = 1\n", 2, "no name"),
        ] {
            let error = Ini::parse(text).unwrap_err();
            assert_eq!(error.line, line, "{text:?}: {error}");
            assert!(error.message.contains(part), "{text:?}: {error}");
        }
    }
}
