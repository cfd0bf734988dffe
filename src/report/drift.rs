//! `postfleet drift`: a check run that shows what drifted and the hosts' ends, not the steps
//! that would put it right (failed ones excepted: a refusal is worth seeing).

use std::sync::Arc;
use std::time::Duration;

use super::{ApplyOutcome, Event, Reporter, StepStatus};

pub struct DriftOnly {
    inner: Arc<dyn Reporter>,
}

impl DriftOnly {
    pub fn new(inner: Arc<dyn Reporter>) -> DriftOnly {
        DriftOnly { inner }
    }
}

impl Reporter for DriftOnly {
    fn event(&self, event: &Event) {
        match event {
            Event::Step { status, .. } if *status != StepStatus::Failed => {}
            other => self.inner.event(other),
        }
    }

    fn finish(&self, summaries: &[ApplyOutcome], elapsed: Duration) {
        self.inner.finish(summaries, elapsed)
    }

    fn suspend(&self, f: &mut dyn FnMut()) {
        self.inner.suspend(f)
    }
}
