//! Kubernetes resource quantities ("500m", "128Mi", "1.5", "2e3").

/// The API server's own explanation of the syntax.
pub const SYNTAX: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";

/// A parsed quantity: `digits * 10^-frac_len * base^exp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    negative: bool,
    digits: u128,
    frac_len: u32,
    base: u32,
    exp: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    #[error("invalid quantity \"{0}\": {SYNTAX}")]
    Syntax(String),
    #[error("quantity \"{0}\" is too large")]
    TooLarge(String),
}

impl Quantity {
    pub fn parse(text: &str) -> Result<Quantity, QuantityError> {
        let bad = || QuantityError::Syntax(text.to_string());
        let (negative, rest) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let num_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, suffix) = rest.split_at(num_end);
        let (int_part, frac_part) = match number.split_once('.') {
            Some((i, f)) => (i, f),
            None => (number, ""),
        };
        if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
            return Err(bad());
        }
        let all: String = format!("{int_part}{frac_part}");
        let all = all.trim_start_matches('0');
        if all.len() > 36 {
            return Err(QuantityError::TooLarge(text.to_string()));
        }
        let digits: u128 = if all.is_empty() {
            0
        } else {
            all.parse().map_err(|_| bad())?
        };
        let frac_len = u32::try_from(frac_part.len()).map_err(|_| bad())?;
        let (base, exp) = match suffix {
            "" => (10, 0),
            "n" => (10, -9),
            "u" => (10, -6),
            "m" => (10, -3),
            "k" => (10, 3),
            "M" => (10, 6),
            "G" => (10, 9),
            "T" => (10, 12),
            "P" => (10, 15),
            "E" => (10, 18),
            "Ki" => (2, 10),
            "Mi" => (2, 20),
            "Gi" => (2, 30),
            "Ti" => (2, 40),
            "Pi" => (2, 50),
            "Ei" => (2, 60),
            s if s.starts_with(['e', 'E']) => {
                let e = &s[1..];
                let body = e.strip_prefix(['+', '-']).unwrap_or(e);
                if body.is_empty() || !body.chars().all(|c| c.is_ascii_digit()) {
                    return Err(bad());
                }
                let exp: i32 = e
                    .parse()
                    .map_err(|_| QuantityError::TooLarge(text.to_string()))?;
                if !(-60..=60).contains(&exp) {
                    return Err(QuantityError::TooLarge(text.to_string()));
                }
                (10, exp)
            }
            _ => return Err(bad()),
        };
        let q = Quantity {
            negative,
            digits,
            frac_len,
            base,
            exp,
        };
        // Make sure the milli value fits, so the accessors cannot fail later.
        q.scaled(3)
            .ok_or_else(|| QuantityError::TooLarge(text.to_string()))?;
        Ok(q)
    }

    pub fn is_negative(&self) -> bool {
        self.negative && self.digits != 0
    }

    /// ceil(value * 10^scale) for non-negative values, as the API does.
    fn scaled(&self, scale: i32) -> Option<i128> {
        let mut num: i128 = i128::try_from(self.digits).ok()?;
        let mut den: i128 = 1;
        let mul = |n: i128, b: i128, times: i32| -> Option<i128> {
            (0..times).try_fold(n, |acc, _| acc.checked_mul(b))
        };
        let mut ten_exp = scale - i32::try_from(self.frac_len).ok()?;
        if self.base == 2 {
            num = mul(num, 2, self.exp)?;
        } else {
            ten_exp += self.exp;
        }
        if ten_exp >= 0 {
            num = mul(num, 10, ten_exp)?;
        } else {
            den = mul(den, 10, -ten_exp)?;
        }
        let value = (num + den - 1) / den;
        Some(if self.negative { -value } else { value })
    }

    /// The value in thousandths, rounded up (CPU: millicores).
    pub fn milli_value(&self) -> i64 {
        self.scaled(3)
            .map(|v| v.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
            .unwrap_or(i64::MAX)
    }

    /// The value rounded up to a whole number (memory: bytes).
    pub fn value(&self) -> i64 {
        self.scaled(0)
            .map(|v| v.clamp(i64::MIN as i128, i64::MAX as i128) as i64)
            .unwrap_or(i64::MAX)
    }

    /// The value in units of `divisor`, rounded up, as `resourceFieldRef` reports it.
    pub fn divided_by(&self, divisor: &Quantity) -> i64 {
        let (Some(n), Some(d)) = (self.scaled(9), divisor.scaled(9)) else {
            return i64::MAX;
        };
        if d <= 0 {
            return 0;
        }
        let v = (n + d - 1) / d;
        v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Quantity {
        Quantity::parse(s).unwrap()
    }

    #[test]
    fn cpu_and_memory_forms() {
        assert_eq!(q("500m").milli_value(), 500);
        assert_eq!(q("1").milli_value(), 1000);
        assert_eq!(q("1.5").milli_value(), 1500);
        assert_eq!(q(".1").milli_value(), 100);
        assert_eq!(q("0.0001").milli_value(), 1, "rounds up like the API");
        assert_eq!(q("128Mi").value(), 128 << 20);
        assert_eq!(q("1G").value(), 1_000_000_000);
        assert_eq!(q("1.5Gi").value(), 3 << 29);
        assert_eq!(q("2e3").value(), 2000);
        assert_eq!(q("100n").milli_value(), 1);
        assert!(q("-1").is_negative());
    }

    #[test]
    fn bad_syntax() {
        for s in ["", "abc", "1x", "1.2.3", "Mi", "1e", "1ee3", "1 Gi", "1Ki2"] {
            assert!(
                matches!(Quantity::parse(s), Err(QuantityError::Syntax(_))),
                "{s:?} accepted"
            );
        }
        assert!(matches!(
            Quantity::parse("1e60Ei"),
            Err(QuantityError::Syntax(_))
        ));
        assert!(matches!(
            Quantity::parse("9e50"),
            Err(QuantityError::TooLarge(_))
        ));
    }

    #[test]
    fn divisor() {
        assert_eq!(q("250m").divided_by(&q("1")), 1);
        assert_eq!(q("1500m").divided_by(&q("1m")), 1500);
        assert_eq!(q("128Mi").divided_by(&q("1Mi")), 128);
    }
}
