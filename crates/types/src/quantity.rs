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

#[cfg(test)]
mod tests {
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
