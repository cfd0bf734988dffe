//! Colour for terminals: green ok, yellow changed, red failed. Never when the stream is not a
//! terminal or NO_COLOR is set (https://no-color.org: present and not empty).

use super::{StepStatus, Verdict};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Colour {
    Green,
    Yellow,
    Red,
    Dim,
}

impl Colour {
    fn sgr(self) -> &'static str {
        match self {
            Colour::Green => "32",
            Colour::Yellow => "33",
            Colour::Red => "31",
            Colour::Dim => "2",
        }
    }

    pub(crate) fn of_step(status: StepStatus) -> Colour {
        match status {
            StepStatus::Ok => Colour::Green,
            StepStatus::Changed => Colour::Yellow,
            StepStatus::Failed => Colour::Red,
            StepStatus::Skipped => Colour::Dim,
        }
    }

    pub(crate) fn of_host(outcome: Verdict) -> Colour {
        match outcome {
            Verdict::Ok => Colour::Green,
            Verdict::Changed => Colour::Yellow,
            Verdict::Failed | Verdict::Unreachable => Colour::Red,
            Verdict::NotAttempted => Colour::Dim,
        }
    }
}

/// Whether to colour a stream that is (or is not) a terminal.
pub(crate) fn colour_wanted(stream_is_tty: bool) -> bool {
    stream_is_tty && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// `text` wrapped in the colour's escape codes when `enabled`, unchanged otherwise.
pub(crate) fn paint(text: &str, colour: Colour, enabled: bool) -> String {
    if enabled {
        format!("\x1b[{}m{text}\x1b[0m", colour.sgr())
    } else {
        text.to_string()
    }
}

pub(crate) use postfleet_core::table::visible_width;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paint_only_when_enabled() {
        assert_eq!(paint("ok", Colour::Green, false), "ok");
        assert_eq!(paint("ok", Colour::Green, true), "\x1b[32mok\x1b[0m");
    }

    #[test]
    fn escape_codes_take_no_width() {
        assert_eq!(visible_width(&paint("changed", Colour::Yellow, true)), 7);
        assert_eq!(visible_width("héllo"), 5);
    }

    #[test]
    fn no_colour_off_a_terminal() {
        assert!(!colour_wanted(false));
    }
}
