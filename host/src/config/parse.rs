//! TOML to typed config, with errors that name the file, line and key.

use std::path::Path;

use serde::de::DeserializeOwned;

use super::error::{ConfigError, line_col};

/// Parse `text` (read from `file`) into `T`; errors carry the line and the dotted key path.
pub fn parse_toml<T: DeserializeOwned>(file: &Path, text: &str) -> Result<T, ConfigError> {
    let located = |span: Option<std::ops::Range<usize>>, key: Option<String>, message: &str| {
        let (line, column) = match span {
            Some(span) => {
                let (l, c) = line_col(text, span.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        ConfigError::Invalid {
            file: file.to_path_buf(),
            line,
            column,
            key,
            message: message.trim().to_string(),
        }
    };
    let de = toml::Deserializer::parse(text).map_err(|e| located(e.span(), None, e.message()))?;
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut key = e.path().to_string();
        let inner = e.into_inner();
        // For an unknown key, name the key itself, not only the table that holds it.
        if let Some(field) = inner
            .message()
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            if key.is_empty() || key == "." {
                key = field.to_string();
            } else if !key.ends_with(field) {
                key = format!("{key}.{field}");
            }
        }
        located(inner.span(), Some(key), inner.message())
    })
}

/// Read and parse a config file.
pub fn read_toml<T: DeserializeOwned>(file: &Path) -> Result<(T, String), ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.to_path_buf(),
        source,
    })?;
    let value = parse_toml(file, &text)?;
    Ok((value, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Doc {
        name: String,
        limits: Option<Limits>,
    }

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Limits {
        count: u32,
    }

    fn err(text: &str) -> String {
        parse_toml::<Doc>(Path::new("lists/x.toml"), text)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = err("name = \"a\"\n\n[limits]\ncount = 1\nbogus = 2\n");
        assert!(e.starts_with("lists/x.toml:5:1: key `limits.bogus`"), "{e}");
        assert!(e.contains("unknown field `bogus`"), "{e}");
    }

    #[test]
    fn wrong_type_names_the_key() {
        let e = err("name = \"a\"\n[limits]\ncount = \"many\"\n");
        assert!(e.starts_with("lists/x.toml:3:9: key `limits.count`"), "{e}");
    }

    #[test]
    fn syntax_error_has_a_line() {
        let e = err("name = \"a\"\nthis is not toml\n");
        assert!(e.starts_with("lists/x.toml:2:"), "{e}");
    }

    #[test]
    fn missing_key_is_named() {
        let e = err("[limits]\ncount = 1\n");
        assert!(e.contains("missing field `name`"), "{e}");
    }
}
