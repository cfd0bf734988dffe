//! Rollouts in batches (Ansible's `serial:`) and when to stop them (`max_fail_percentage`),
//! judged over the whole fleet of the run, not per batch.

use std::fmt;

/// One entry of a `serial` list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchSize {
    Hosts(usize),
    /// Of all the hosts of the run, rounded down, at least 1.
    Percent(u32),
}

/// `serial`: batch sizes in order; the last one repeats until every host had its turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial(Vec<BatchSize>);

impl Serial {
    /// `5`, `25%`, or a list of them separated by commas (`1,10%,100%`).
    pub fn parse(text: &str) -> Result<Serial, String> {
        let sizes = text
            .split(',')
            .map(|word| BatchSize::parse(word.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Serial(sizes))
    }

    pub fn sizes(&self) -> &[BatchSize] {
        &self.0
    }
}

impl BatchSize {
    fn parse(word: &str) -> Result<BatchSize, String> {
        let bad = || {
            format!("`{word}` is not a batch size: use a number of hosts (1 or more) or a percentage (1% to 100%)")
        };
        match word.strip_suffix('%') {
            Some(number) => match number.trim().parse::<u32>() {
                Ok(p) if (1..=100).contains(&p) => Ok(BatchSize::Percent(p)),
                _ => Err(bad()),
            },
            None => match word.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(BatchSize::Hosts(n)),
                _ => Err(bad()),
            },
        }
    }

    fn of(self, total: usize) -> usize {
        match self {
            BatchSize::Hosts(n) => n,
            BatchSize::Percent(p) => (total * p as usize / 100).max(1),
        }
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let words: Vec<String> = self
            .0
            .iter()
            .map(|s| match s {
                BatchSize::Hosts(n) => n.to_string(),
                BatchSize::Percent(p) => format!("{p}%"),
            })
            .collect();
        f.write_str(&words.join(","))
    }
}

/// The sizes of the batches `total` hosts go in (one batch of all without `serial`); they add
/// up to `total`, and the last one may be smaller than asked.
pub fn batches(total: usize, serial: Option<&Serial>) -> Vec<usize> {
    let Some(serial) = serial.filter(|s| !s.0.is_empty()) else {
        return if total == 0 { Vec::new() } else { vec![total] };
    };
    let mut sizes = Vec::new();
    let mut left = total;
    let mut index = 0;
    while left > 0 {
        let size = serial.0[index.min(serial.0.len() - 1)].of(total).min(left);
        sizes.push(size);
        left -= size;
        index += 1;
    }
    sizes
}

/// When a rollout stops starting hosts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StopRule {
    /// After the first batch in which a host failed or was unreachable (the default).
    FirstFailedBatch,
    /// As soon as more than this percentage of all the run's hosts failed or were unreachable.
    MaxFailPercentage(f64),
}

impl StopRule {
    /// Should hosts not started yet be held back, with `failed` of `total` hosts failed so
    /// far? `batch_done`: the batch that failed has ended (the default rule waits for it:
    /// hosts in progress are never interrupted, and their batch mates still start).
    pub fn stops(self, failed: usize, total: usize, batch_done: bool) -> bool {
        match self {
            StopRule::FirstFailedBatch => batch_done && failed > 0,
            StopRule::MaxFailPercentage(p) => total > 0 && failed as f64 * 100.0 / total as f64 > p,
        }
    }

    /// Why the rollout stopped after batch `batch` of `batches`, in which `in_batch` hosts
    /// failed, `failed` of `total` over the run: for the recap.
    pub fn reason(
        self,
        failed: usize,
        total: usize,
        in_batch: usize,
        batch: usize,
        batches: usize,
    ) -> String {
        match self {
            StopRule::FirstFailedBatch => format!(
                "{in_batch} host(s) failed in batch {batch} of {batches}: later batches were not started (--max-fail-percentage allows failures)"
            ),
            StopRule::MaxFailPercentage(p) => format!(
                "{failed} of {total} hosts failed ({:.0}%), more than --max-fail-percentage {p}",
                failed as f64 * 100.0 / total as f64
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(total: usize, serial: &str) -> Vec<usize> {
        batches(total, Some(&Serial::parse(serial).unwrap()))
    }

    #[test]
    fn batch_sizes_from_numbers_percentages_and_lists() {
        assert_eq!(batches(5, None), [5]);
        assert_eq!(batches(0, None), Vec::<usize>::new());
        assert_eq!(sizes(5, "2"), [2, 2, 1]);
        assert_eq!(sizes(10, "30%"), [3, 3, 3, 1], "rounded down");
        assert_eq!(sizes(3, "10%"), [1, 1, 1], "at least one host");
        assert_eq!(
            sizes(5, "1,2,100%"),
            [1, 2, 2],
            "the last batch takes what is left"
        );
        assert_eq!(
            sizes(20, "1,10%,50%"),
            [1, 2, 10, 7],
            "the last size repeats"
        );
        assert_eq!(sizes(2, "5"), [2], "fewer hosts than a batch");
        assert_eq!(Serial::parse(" 1, 25% ").unwrap().to_string(), "1,25%");
    }

    #[test]
    fn bad_batch_sizes_say_what_a_size_is() {
        for bad in ["0", "0%", "101%", "-1", "x", "1,,2", "%"] {
            let e = Serial::parse(bad).unwrap_err();
            assert!(e.contains("not a batch size"), "{bad}: {e}");
        }
    }

    #[test]
    fn stopping_is_judged_over_the_fleet() {
        let default = StopRule::FirstFailedBatch;
        assert!(!default.stops(1, 5, false), "its batch mates go on");
        assert!(default.stops(1, 5, true));
        assert!(!default.stops(0, 5, true));
        let p25 = StopRule::MaxFailPercentage(25.0);
        assert!(!p25.stops(1, 5, true), "20% of the fleet");
        assert!(
            p25.stops(2, 5, false),
            "40%: at once, not at the batch's end"
        );
        assert!(
            !StopRule::MaxFailPercentage(40.0).stops(2, 5, true),
            "not more than 40%"
        );
        assert!(p25
            .reason(2, 5, 2, 2, 3)
            .contains("2 of 5 hosts failed (40%)"));
        assert!(default
            .reason(1, 5, 1, 1, 3)
            .contains("failed in batch 1 of 3"));
    }
}
