//! The `--config` file: TOML whose keys are the long flag names (`http-listen = "0.0.0.0:8080"`),
//! read into the text a flag would have been given, each with its line, so that clap parses a
//! file's value exactly as the flag's and a problem names the line it is on.

use std::path::{Path, PathBuf};

use toml::de::{DeTable, DeValue};

/// One key of the file, as the flag's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileValue {
    pub key: String,
    pub value: String,
    pub line: usize,
}

/// The file's keys in the order they were written, or every problem with it, one line each.
pub fn read(path: &Path) -> Result<Vec<FileValue>, Vec<String>> {
    let text = std::fs::read_to_string(path)
        .map_err(|error| vec![format!("--config: cannot read {}: {error}", path.display())])?;
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<Vec<FileValue>, Vec<String>> {
    let place = |offset: usize| Place {
        path: path.to_path_buf(),
        line: line_of(text, offset),
    };
    let table = DeTable::parse(text).map_err(|error| {
        let at = error.span().map(|span| place(span.start));
        let message = error.message().trim().to_owned();
        vec![match at {
            Some(at) => format!("{at}: malformed TOML: {message}"),
            None => format!("{}: malformed TOML: {message}", path.display()),
        }]
    })?;
    let mut values = Vec::new();
    let mut problems = Vec::new();
    for (key, value) in table.get_ref() {
        let at = place(key.span().start);
        match flag_text(value.get_ref()) {
            Ok(text) => values.push(FileValue {
                key: key.get_ref().to_string(),
                value: text,
                line: at.line,
            }),
            Err(kind) => problems.push(format!(
                "{at}: {:?} is {kind}; a key takes a string, a number, a boolean or an array \
                 (joined with commas)",
                key.get_ref()
            )),
        }
    }
    values.sort_by_key(|value| value.line);
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems)
    }
}

/// The text a flag would be given for a value; arrays are the comma-separated lists some
/// flags take.
fn flag_text(value: &DeValue<'_>) -> Result<String, &'static str> {
    Ok(match value {
        DeValue::String(text) => text.to_string(),
        DeValue::Integer(integer) => integer.to_string(),
        DeValue::Float(float) => float.to_string(),
        DeValue::Boolean(boolean) => boolean.to_string(),
        DeValue::Datetime(_) => return Err("a date"),
        DeValue::Table(_) => return Err("a table"),
        DeValue::Array(items) => items
            .iter()
            .map(|item| match item.get_ref() {
                DeValue::Array(_) | DeValue::Table(_) => Err("a nested array or table"),
                other => flag_text(other),
            })
            .collect::<Result<Vec<_>, _>>()?
            .join(","),
    })
}

/// Where in the file, as problems name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub path: PathBuf,
    pub line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} line {}", self.path.display(), self.line)
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    1 + text
        .as_bytes()
        .iter()
        .take(offset)
        .filter(|byte| **byte == b'\n')
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> Result<Vec<FileValue>, Vec<String>> {
        parse(Path::new("c.toml"), text)
    }

    #[test]
    fn each_kind_of_value_becomes_the_flags_text_with_its_line() {
        let values = parsed(
            "# comment\nhttp-listen = \"0.0.0.0:8080\"\nmax-contacts = 50\n\nno-migrate = true\n\
             country-codes = [86, 852]\n",
        )
        .unwrap();
        let seen: Vec<(&str, &str, usize)> = values
            .iter()
            .map(|v| (v.key.as_str(), v.value.as_str(), v.line))
            .collect();
        assert_eq!(
            seen,
            [
                ("http-listen", "0.0.0.0:8080", 2),
                ("max-contacts", "50", 3),
                ("no-migrate", "true", 5),
                ("country-codes", "86,852", 6),
            ]
        );
    }

    #[test]
    fn malformed_toml_and_tables_name_their_line() {
        let malformed = parsed("listen = \"a\"\nmax-contacts = = 3\n").unwrap_err();
        assert_eq!(malformed.len(), 1);
        assert!(
            malformed[0].starts_with("c.toml line 2: malformed TOML"),
            "{malformed:?}"
        );
        let table = parsed("listen = \"a\"\n[security]\nmax-streams = 3\n").unwrap_err();
        assert_eq!(table.len(), 1);
        assert!(
            table[0].starts_with("c.toml line 2: \"security\" is a table"),
            "{table:?}"
        );
    }
}
