//! Host ranges, as in Ansible inventories: `mx[01:12].example.org`, `db-[a:f]`,
//! `web[0:20:5]` (with a step). Several ranges in one name multiply.

/// The most names one pattern may stand for: more is a typo (`h[0:99999999999]`), not a
/// fleet, and would exhaust memory before anything could be said.
pub(crate) const MAX_NAMES: u64 = 100_000;

/// What a host range may be, for errors about one.
pub(crate) const RANGE_HINT: &str = "a host range is [START:END] or [START:END:STEP], of numbers (mx[01:12]) or single letters (db-[a:f])";

/// The most bytes the names of one pattern may add up to: each is at most as long as the
/// pattern, so a long name with a few ranges is refused like a large range.
const MAX_BYTES: u64 = 64 << 20;

/// One `[START:END(:STEP)]` of a pattern, and the text before it.
struct Range<'a> {
    head: &'a str,
    first: u64,
    step: u64,
    count: u64,
    /// Single letters (`a:f`) rather than numbers.
    letters: bool,
    /// Zero padding of the numbers (`01:12`: 2).
    width: usize,
}

impl Range<'_> {
    /// The text of the range's item `i`.
    fn item(&self, i: u64) -> String {
        let n = self.first + i * self.step;
        if self.letters {
            // between the two letters of the bounds
            u32::try_from(n)
                .ok()
                .and_then(char::from_u32)
                .map_or_else(String::new, String::from)
        } else {
            format!("{n:0width$}", width = self.width)
        }
    }
}

/// The names `pattern` stands for; a name without brackets stands for itself. Ranges
/// multiply, the first one varying slowest.
pub(crate) fn expand(pattern: &str) -> Result<Vec<String>, String> {
    let (ranges, tail) = parse(pattern)?;
    if ranges.is_empty() {
        return Ok(vec![pattern.to_string()]);
    }
    let count = ranges
        .iter()
        .fold(1u64, |n, range| n.saturating_mul(range.count));
    if count > MAX_NAMES {
        return Err(format!(
            "host range in '{pattern}' stands for {count} hosts, more than the {MAX_NAMES} \
             one pattern may name: check its bounds"
        ));
    }
    if count.saturating_mul(pattern.len() as u64) > MAX_BYTES {
        return Err(format!(
            "host range in '{pattern}' stands for {count} names of up to {} characters: \
             more than postfleet holds for one pattern",
            pattern.len()
        ));
    }
    // An odometer over the ranges (the last one turns fastest): each name is made once,
    // however many ranges the pattern has.
    let mut names = Vec::with_capacity(count as usize);
    let mut at = vec![0u64; ranges.len()];
    loop {
        let mut name = String::with_capacity(pattern.len());
        for (range, &i) in ranges.iter().zip(&at) {
            name.push_str(range.head);
            name.push_str(&range.item(i));
        }
        name.push_str(tail);
        names.push(name);
        let mut k = ranges.len();
        loop {
            if k == 0 {
                return Ok(names);
            }
            k -= 1;
            at[k] += 1;
            if at[k] < ranges[k].count {
                break;
            }
            at[k] = 0;
        }
    }
}

/// The ranges of `pattern`, in order, and the text after the last one.
fn parse(pattern: &str) -> Result<(Vec<Range<'_>>, &str), String> {
    let mut ranges = Vec::new();
    let mut rest = pattern;
    while let Some(open) = rest.find('[') {
        let close = rest[open..]
            .find(']')
            .map(|i| open + i)
            .ok_or_else(|| format!("host range in '{pattern}' has no closing ']'"))?;
        let spec = &rest[open + 1..close];
        ranges.push(range(&rest[..open], spec, pattern)?);
        rest = &rest[close + 1..];
    }
    Ok((ranges, rest))
}

/// The range written `[spec]` after `head` in `pattern`: `01:03` -> 01, 02, 03 (zero-padded
/// to the start's width); `a:c` -> a, b, c.
fn range<'a>(head: &'a str, spec: &str, pattern: &str) -> Result<Range<'a>, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (start, end, step) = match parts.as_slice() {
        [start, end] => (*start, *end, 1),
        [start, end, step] => {
            let step = step.parse::<u64>().ok().filter(|s| *s > 0).ok_or_else(|| {
                format!("host range '[{spec}]' in '{pattern}': the step must be a positive number")
            })?;
            (*start, *end, step)
        }
        _ => {
            return Err(format!(
                "host range '[{spec}]' in '{pattern}' must be [START:END] or [START:END:STEP]"
            ))
        }
    };
    let bad = || {
        format!("host range '[{spec}]' in '{pattern}': use numbers (01:12) or letters (a:f), start <= end")
    };
    let is_number = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_digit());
    let (first, last, letters, width) = if is_number(start) && is_number(end) {
        let (first, last): (u64, u64) = (
            start.parse().map_err(|_| bad())?,
            end.parse().map_err(|_| bad())?,
        );
        let width = if start.len() > 1 && start.starts_with('0') {
            start.len()
        } else {
            0
        };
        (first, last, false, width)
    } else {
        let letter = |s: &str| {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c.is_ascii_alphabetic() => Some(c),
                _ => None,
            }
        };
        let (first, last) = (letter(start).ok_or_else(bad)?, letter(end).ok_or_else(bad)?);
        if first.is_ascii_lowercase() != last.is_ascii_lowercase() {
            return Err(bad());
        }
        (u64::from(first), u64::from(last), true, 0)
    };
    if first > last {
        return Err(bad());
    }
    Ok(Range {
        head,
        first,
        step,
        count: (last - first) / step + 1,
        letters,
        width,
    })
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

    #[test]
    fn many_ranges_in_one_name_expand_without_deep_recursion() {
        let pattern = format!("h{}", "[1:1]".repeat(50_000));
        assert_eq!(
            expand(&pattern).unwrap(),
            [format!("h{}", "1".repeat(50_000))]
        );
        // names too long for their number are refused before they are made
        let pattern = format!("{}[1:10000]", "x".repeat(10_000));
        let err = expand(&pattern).unwrap_err();
        assert!(
            err.contains("10000 names of up to 10009 characters"),
            "{err}"
        );
    }
}
