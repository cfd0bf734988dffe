//! Host ranges, as in Ansible inventories: `mx[01:12].example.org`, `db-[a:f]`,
//! `web[0:20:5]` (with a step). Several ranges in one name multiply.

/// The most names one pattern may stand for: more is a typo (`h[0:99999999999]`), not a
/// fleet, and would exhaust memory before anything could be said.
pub(crate) const MAX_NAMES: u64 = 100_000;

/// What a host range may be, for errors about one.
pub(crate) const RANGE_HINT: &str = "a host range is [START:END] or [START:END:STEP], of numbers (mx[01:12]) or single letters (db-[a:f])";

/// The names `pattern` stands for; a name without brackets stands for itself.
pub(crate) fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let count = count_names(pattern)?;
    if count > MAX_NAMES {
        return Err(format!(
            "host range in '{pattern}' stands for {count} hosts, more than the {MAX_NAMES} \
             one pattern may name: check its bounds"
        ));
    }
    expand_checked(pattern)
}

/// How many names `pattern` stands for, without making them (saturating).
fn count_names(pattern: &str) -> Result<u64, String> {
    let Some(open) = pattern.find('[') else {
        return Ok(1);
    };
    let Some(close) = pattern[open..].find(']').map(|i| open + i) else {
        return Ok(1); // expand_checked says what is wrong
    };
    let parts: Vec<&str> = pattern[open + 1..close].split(':').collect();
    let step: u64 = match parts.get(2) {
        Some(step) => step.parse().ok().filter(|s| *s > 0).unwrap_or(1),
        None => 1,
    };
    let here = match (parts.first(), parts.get(1)) {
        (Some(a), Some(b)) => match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(first), Ok(last)) if first <= last => (last - first) / step + 1,
            _ => 1, // letters (at most 26) or an error expand_checked reports
        },
        _ => 1,
    };
    Ok(here.saturating_mul(count_names(&pattern[close + 1..])?))
}

fn expand_checked(pattern: &str) -> Result<Vec<String>, String> {
    let Some(open) = pattern.find('[') else {
        return Ok(vec![pattern.to_string()]);
    };
    let close = pattern[open..]
        .find(']')
        .map(|i| open + i)
        .ok_or_else(|| format!("host range in '{pattern}' has no closing ']'"))?;
    let (head, spec, tail) = (
        &pattern[..open],
        &pattern[open + 1..close],
        &pattern[close + 1..],
    );
    let parts: Vec<&str> = spec.split(':').collect();
    let (start, end, step) = match parts.as_slice() {
        [start, end] => (*start, *end, 1),
        [start, end, step] => {
            let step = step
                .parse::<usize>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| {
                    format!(
                        "host range '[{spec}]' in '{pattern}': the step must be a positive number"
                    )
                })?;
            (*start, *end, step)
        }
        _ => {
            return Err(format!(
                "host range '[{spec}]' in '{pattern}' must be [START:END] or [START:END:STEP]"
            ))
        }
    };
    let items = range_items(start, end, step)
        .ok_or_else(|| format!("host range '[{spec}]' in '{pattern}': use numbers (01:12) or letters (a:f), start <= end"))?;
    let tails = expand_checked(tail)?;
    let mut names = Vec::with_capacity(items.len() * tails.len());
    for item in &items {
        for rest in &tails {
            names.push(format!("{head}{item}{rest}"));
        }
    }
    Ok(names)
}

/// `01:03` -> 01, 02, 03 (zero-padded to the start's width); `a:c` -> a, b, c.
fn range_items(start: &str, end: &str, step: usize) -> Option<Vec<String>> {
    let is_number = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    if is_number(start) && is_number(end) {
        let (first, last): (u64, u64) = (start.parse().ok()?, end.parse().ok()?);
        if first > last {
            return None;
        }
        let width = if start.len() > 1 && start.starts_with('0') {
            start.len()
        } else {
            0
        };
        return Some(
            (first..=last)
                .step_by(step)
                .map(|n| format!("{n:0width$}"))
                .collect(),
        );
    }
    let letter = |s: &str| {
        let mut chars = s.chars();
        match (chars.next(), chars.next()) {
            (Some(c), None) if c.is_ascii_alphabetic() => Some(c),
            _ => None,
        }
    };
    let (first, last) = (letter(start)?, letter(end)?);
    if first > last || first.is_ascii_lowercase() != last.is_ascii_lowercase() {
        return None;
    }
    Some((first..=last).step_by(step).map(String::from).collect())
}

#[cfg(test)]
mod tests {
    use super::expand;

    #[test]
    fn numbers_letters_steps_and_several_ranges() {
        assert_eq!(expand("mx1").unwrap(), ["mx1"]);
        assert_eq!(
            expand("mx[1:3].lab").unwrap(),
            ["mx1.lab", "mx2.lab", "mx3.lab"]
        );
        assert_eq!(expand("mx[08:10]").unwrap(), ["mx08", "mx09", "mx10"]);
        assert_eq!(expand("db-[a:c]").unwrap(), ["db-a", "db-b", "db-c"]);
        assert_eq!(expand("w[0:10:5]").unwrap(), ["w0", "w5", "w10"]);
        assert_eq!(
            expand("r[1:2]-[a:b]").unwrap(),
            ["r1-a", "r1-b", "r2-a", "r2-b"]
        );
    }

    #[test]
    fn a_range_too_large_is_refused_before_anything_is_made() {
        let err = expand("h[0:99999999999]").unwrap_err();
        assert!(err.contains("100000000000 hosts"), "{err}");
        // several ranges multiply
        let err = expand("h[0:999][0:999]").unwrap_err();
        assert!(err.contains("1000000 hosts"), "{err}");
        assert_eq!(expand("h[1:100000]").unwrap().len(), 100_000);
    }

    #[test]
    fn bad_ranges() {
        assert!(expand("mx[3:1]").is_err());
        assert!(expand("mx[1:3").unwrap_err().contains("no closing"));
        assert!(expand("mx[1]").is_err());
        assert!(expand("mx[1:3:0]").is_err());
        assert!(expand("mx[a:3]").is_err());
        assert!(expand("mx[a:Z]").is_err());
    }
}
