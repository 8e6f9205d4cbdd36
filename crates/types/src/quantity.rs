//! Kubernetes resource quantities (`128Mi`, `1G`, `500m`), as far as peapod needs them.

/// Parses a quantity into its value in base units, rounded up (so `500m` is 1).
pub fn parse(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, suffix) = s.split_at(split);
    let value: f64 = num.parse().ok()?;
    let mult: f64 = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => {
            let (m, e) = suffix.split_once(['e', 'E'])?;
            if !m.is_empty() {
                return None;
            }
            10f64.powi(e.parse().ok()?)
        }
    };
    Some((value * mult).ceil() as u64)
}

/// The API server's message for a quantity that does not parse.
pub const FORMAT_MESSAGE: &str =
    "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'";
/// The API server's message for a quantity with an unknown suffix.
pub const SUFFIX_MESSAGE: &str = "unable to parse quantity's suffix";

/// The form a quantity was written in, which its canonical form keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `Ki`, `Mi`, ... (powers of 1024).
    BinarySI,
    /// `n`, `u`, `m`, none, `k`, `M`, ... (powers of 1000).
    DecimalSI,
    /// `e3`, `E-2`, ...
    DecimalExponent,
}

/// A quantity held exactly, in billionths of its unit, as `resource.Quantity` holds it
/// (finer values are rounded up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantity {
    /// The value times 10^9.
    pub nanos: i128,
    /// How it was written.
    pub format: Format,
}

/// Parses a quantity as `resource.ParseQuantity` does; the error is the API server's.
pub fn parse_quantity(s: &str) -> Result<Quantity, &'static str> {
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let split = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(split);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if int.is_empty() && frac.is_empty() || frac.contains('.') {
        return Err(FORMAT_MESSAGE);
    }
    // The suffix must look like [eEinumkKMGTP]*[-+]?[0-9]* before it is interpreted.
    let letters = suffix
        .find(|c: char| !"eEinumkKMGTP".contains(c))
        .unwrap_or(suffix.len());
    let tail = suffix[letters..]
        .strip_prefix(['-', '+'])
        .unwrap_or(&suffix[letters..]);
    if !tail.bytes().all(|b| b.is_ascii_digit()) {
        return Err(FORMAT_MESSAGE);
    }
    let (format, base, exp): (Format, i128, i32) = match suffix {
        "" => (Format::DecimalSI, 10, 0),
        "n" => (Format::DecimalSI, 10, -9),
        "u" => (Format::DecimalSI, 10, -6),
        "m" => (Format::DecimalSI, 10, -3),
        "k" => (Format::DecimalSI, 10, 3),
        "M" => (Format::DecimalSI, 10, 6),
        "G" => (Format::DecimalSI, 10, 9),
        "T" => (Format::DecimalSI, 10, 12),
        "P" => (Format::DecimalSI, 10, 15),
        "E" => (Format::DecimalSI, 10, 18),
        "Ki" => (Format::BinarySI, 1024, 1),
        "Mi" => (Format::BinarySI, 1024, 2),
        "Gi" => (Format::BinarySI, 1024, 3),
        "Ti" => (Format::BinarySI, 1024, 4),
        "Pi" => (Format::BinarySI, 1024, 5),
        "Ei" => (Format::BinarySI, 1024, 6),
        _ => match suffix
            .strip_prefix(['e', 'E'])
            .and_then(|e| e.parse::<i32>().ok())
        {
            Some(e) => (Format::DecimalExponent, 10, e),
            None => return Err(SUFFIX_MESSAGE),
        },
    };
    // digits / 10^frac_len * base^exp * 10^9, rounded up, saturating.
    let digits: String = format!("{int}{frac}");
    let mut num: i128 = 0;
    for d in digits.bytes().take(30) {
        num = num.saturating_mul(10).saturating_add((d - b'0') as i128);
    }
    let mut den: i128 = 10i128.saturating_pow(frac.len().min(30) as u32);
    num = num.saturating_mul(1_000_000_000);
    if exp >= 0 {
        num = num.saturating_mul(base.saturating_pow(exp as u32));
    } else {
        den = den.saturating_mul(base.saturating_pow(exp.unsigned_abs()));
    }
    let nanos = if den == 0 { 0 } else { (num + den - 1) / den };
    Ok(Quantity {
        nanos: if negative { -nanos } else { nanos },
        format,
    })
}

impl Quantity {
    /// The canonical form the API server prints: the largest suffix that keeps the value
    /// whole, in the form it was written (binary values that are not whole bytes in
    /// decimal).
    pub fn canonical(&self) -> String {
        let sign = if self.nanos < 0 { "-" } else { "" };
        let n = self.nanos.abs();
        if n == 0 {
            return "0".into();
        }
        if self.format == Format::BinarySI && n % 1_000_000_000 == 0 {
            let mut v = n / 1_000_000_000;
            let mut k = 0;
            while k < 6 && v % 1024 == 0 {
                v /= 1024;
                k += 1;
            }
            let suffix = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"][k];
            return format!("{sign}{v}{suffix}");
        }
        let mut e: i32 = -9;
        let mut v = n;
        while e < 18 && v % 1000 == 0 {
            v /= 1000;
            e += 3;
        }
        let suffix = match self.format {
            Format::DecimalExponent if e == 0 => String::new(),
            Format::DecimalExponent => format!("e{e}"),
            _ => ["n", "u", "m", "", "k", "M", "G", "T", "P", "E"][((e + 9) / 3) as usize]
                .to_string(),
        };
        format!("{sign}{v}{suffix}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_parsing_and_canonical_forms() {
        let canon = |s: &str| parse_quantity(s).unwrap().canonical();
        assert_eq!(canon("2"), "2");
        assert_eq!(canon("2000m"), "2");
        assert_eq!(canon("1.5"), "1500m");
        assert_eq!(canon("1.5Gi"), "1536Mi");
        assert_eq!(canon("1024Mi"), "1Gi");
        assert_eq!(canon("0.5Ki"), "512");
        assert_eq!(canon("2000"), "2k");
        assert_eq!(canon("1e3"), "1e3");
        assert_eq!(canon("0.1m"), "100u");
        assert_eq!(canon("-1"), "-1");
        assert_eq!(canon(".5"), "500m");
        assert!(parse_quantity("1Gi").unwrap().nanos > parse_quantity("1G").unwrap().nanos);
        assert_eq!(parse_quantity("1GB"), Err(FORMAT_MESSAGE));
        assert_eq!(parse_quantity("lots"), Err(FORMAT_MESSAGE));
        assert_eq!(parse_quantity("1..2"), Err(FORMAT_MESSAGE));
        assert_eq!(parse_quantity(""), Err(FORMAT_MESSAGE));
        assert_eq!(parse_quantity("1kk"), Err(SUFFIX_MESSAGE));
        assert_eq!(parse_quantity("1Ki").unwrap().nanos, 1024 * 1_000_000_000);
    }

    #[test]
    fn suffixes() {
        assert_eq!(super::parse("64Mi"), Some(64 << 20));
        assert_eq!(super::parse("1G"), Some(1_000_000_000));
        assert_eq!(super::parse("500m"), Some(1));
        assert_eq!(super::parse("1.5Ki"), Some(1536));
        assert_eq!(super::parse("12e3"), Some(12000));
        assert_eq!(super::parse("lots"), None);
    }
}
