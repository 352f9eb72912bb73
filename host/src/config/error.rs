use std::path::PathBuf;

/// A problem in a config file, located precisely enough to fix it without guessing.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read: {source}", file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}{}{}: {message}", file.display(), location(*line, *column), key_part(key))]
    Invalid {
        file: PathBuf,
        line: Option<usize>,
        column: Option<usize>,
        key: Option<String>,
        message: String,
    },
}

impl ConfigError {
    pub fn invalid(file: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            file: file.into(),
            line: None,
            column: None,
            key: None,
            message: message.into(),
        }
    }

    /// The same error pinned to a line and key (used when the check happens after parsing).
    pub fn at(
        file: impl Into<PathBuf>,
        line: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        ConfigError::Invalid {
            file: file.into(),
            line: Some(line),
            column: None,
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

fn location(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}

fn key_part(key: &Option<String>) -> String {
    match key {
        Some(k) if !k.is_empty() && k != "." => format!(": key `{k}`"),
        _ => String::new(),
    }
}

/// 1-based line and column of a byte offset in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}
