//! Human units in config files: durations (`100ms`, `30s`, `5d`) and sizes (`64MiB`, `25MB`).

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, de};

/// A duration written as a number and a unit: `ms`, `s`, `m`, `h` or `d`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Span(pub Duration);

/// A size in bytes written as a number and an optional unit: `B`, `KB`, `MB`, `GB` (powers
/// of 1000) or `KiB`, `MiB`, `GiB` (powers of 1024).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Size(pub u64);

fn split_unit(s: &str) -> (&str, &str) {
    let s = s.trim();
    let at = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    (&s[..at], s[at..].trim())
}

impl FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid duration `{s}`: expected a whole number and a unit ms, s, m, h or d (e.g. \"100ms\", \"30s\")"
            )
        };
        let (num, unit) = split_unit(s);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let ms = match unit {
            "ms" => Some(n),
            "s" => n.checked_mul(1_000),
            "m" => n.checked_mul(60_000),
            "h" => n.checked_mul(3_600_000),
            "d" => n.checked_mul(86_400_000),
            _ => None,
        }
        .ok_or_else(bad)?;
        Ok(Span(Duration::from_millis(ms)))
    }
}

impl FromStr for Size {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "invalid size `{s}`: expected a whole number and an optional unit B, KB, MB, GB, KiB, MiB or GiB (e.g. \"64MiB\")"
            )
        };
        let (num, unit) = split_unit(s);
        let n: u64 = num.parse().map_err(|_| bad())?;
        let factor: u64 = match unit {
            "" | "B" => 1,
            "KB" | "kB" => 1_000,
            "MB" => 1_000_000,
            "GB" => 1_000_000_000,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => return Err(bad()),
        };
        n.checked_mul(factor).map(Size).ok_or_else(bad)
    }
}

/// Accepts a string with a unit, or a bare integer (milliseconds for spans, bytes for sizes).
macro_rules! deserialize_with_unit {
    ($ty:ident, $bare:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                        f.write_str("a string with a unit")
                    }
                    fn visit_str<E: de::Error>(self, s: &str) -> Result<$ty, E> {
                        s.parse().map_err(E::custom)
                    }
                    fn visit_i64<E: de::Error>(self, n: i64) -> Result<$ty, E> {
                        u64::try_from(n)
                            .map($bare)
                            .map_err(|_| E::custom("must not be negative"))
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

deserialize_with_unit!(Span, |n| Span(Duration::from_millis(n)));
deserialize_with_unit!(Size, Size);

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1 << 20 && self.0.is_multiple_of(1 << 20) {
            write!(f, "{}MiB", self.0 >> 20)
        } else {
            write!(f, "{}B", self.0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans() {
        assert_eq!(
            "100ms".parse::<Span>().unwrap().0,
            Duration::from_millis(100)
        );
        assert_eq!("30s".parse::<Span>().unwrap().0, Duration::from_secs(30));
        assert_eq!(
            "5d".parse::<Span>().unwrap().0,
            Duration::from_secs(5 * 86_400)
        );
        assert!("5x".parse::<Span>().is_err());
        assert!("s".parse::<Span>().is_err());
        assert!("99999999999999999999d".parse::<Span>().is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!("64MiB".parse::<Size>().unwrap().0, 64 << 20);
        assert_eq!("25MB".parse::<Size>().unwrap().0, 25_000_000);
        assert_eq!("512".parse::<Size>().unwrap().0, 512);
        assert!("12 parsecs".parse::<Size>().is_err());
        assert!("-1MB".parse::<Size>().is_err());
    }
}
