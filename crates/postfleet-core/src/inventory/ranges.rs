//! Host ranges, as in Ansible inventories: `mx[01:12].example.org`, `db-[a:f]`,
//! `web[0:20:5]` (with a step). Several ranges in one name multiply.

/// The names `pattern` stands for; a name without brackets stands for itself.
pub(crate) fn expand(pattern: &str) -> Result<Vec<String>, String> {
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
    let tails = expand(tail)?;
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
    fn bad_ranges() {
        assert!(expand("mx[3:1]").is_err());
        assert!(expand("mx[1:3").unwrap_err().contains("no closing"));
        assert!(expand("mx[1]").is_err());
        assert!(expand("mx[1:3:0]").is_err());
        assert!(expand("mx[a:3]").is_err());
        assert!(expand("mx[a:Z]").is_err());
    }
}
