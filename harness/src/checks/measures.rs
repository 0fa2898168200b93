//! The typed numbers of an observation whose probe did not type them itself: read from the
//! probe's own text here, in the guest where that text is written, so the host never has to
//! parse `observed` (it reads [`Measure`]s). Probes with richer numbers (the cost family's
//! timings and units) declare their measures and this is not used for them.

use zcmatrix_protocol::Measure;

/// `major=129 minor:255`, `sequential=major:1 minor:255 willneed=…`, `61`, `4096 kB` →
/// labelled numbers. A token `a=b:7` is labelled `a b`; a later bare `c:8` inherits the `a`
/// context. A label met twice keeps its first value: a measure's name is unique in a result.
pub fn measures_of(value: &str) -> Vec<Measure> {
    let mut out: Vec<Measure> = Vec::new();
    let mut context = String::new();
    for token in value.split_whitespace() {
        let token = token.trim_end_matches(',');
        let parts: Vec<&str> = token.split(['=', ':']).collect();
        let Some(Ok(n)) = parts.last().map(|p| p.parse::<f64>()) else {
            continue;
        };
        if !n.is_finite() {
            continue;
        }
        let name = match parts.len() {
            1 => context.clone(),
            2 if !context.is_empty() => format!("{context} {}", parts[0]),
            2 => parts[0].to_string(),
            _ => {
                context = parts[0].to_string();
                parts[..parts.len() - 1].join(" ")
            }
        };
        if !out.iter().any(|m| m.name == name) {
            out.push(Measure::new(name, n, ""));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(value: &str) -> Vec<(String, f64)> {
        measures_of(value)
            .into_iter()
            .map(|m| (m.name, m.value))
            .collect()
    }

    #[test]
    fn labelled_numbers_are_read_from_the_probes_text() {
        assert_eq!(
            pairs("major=129 minor=256"),
            [("major".into(), 129.0), ("minor".into(), 256.0)]
        );
        assert_eq!(
            pairs("sequential=major:1 minor:255 willneed=major:2 minor:3"),
            [
                ("sequential major".into(), 1.0),
                ("sequential minor".into(), 255.0),
                ("willneed major".into(), 2.0),
                ("willneed minor".into(), 3.0)
            ]
        );
        assert_eq!(pairs("61"), [(String::new(), 61.0)]);
        assert!(pairs("EINVAL").is_empty());
        assert!(pairs("NaN inf").is_empty(), "JSON has no NaN");
        assert_eq!(pairs("1 2"), [(String::new(), 1.0)], "names stay unique");
    }
}
