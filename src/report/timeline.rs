//! When each step waited, ran and rolled through its batches, at full clock precision
//! (the JSON timings keep whole seconds): what the HTML report's Gantt chart draws.

use chrono::{DateTime, Utc};

/// One rolling batch of a step, as the status reads saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchSpan {
    /// Batch number, 1-based.
    pub k: u32,
    /// Batches in all.
    pub n: u32,
    /// First read that saw it.
    pub from: DateTime<Utc>,
    /// The read that saw the next batch, or the step's end.
    pub to: Option<DateTime<Utc>>,
}

/// A step's moments, from its events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepTimes {
    /// Its needs were met.
    pub started: Option<DateTime<Utc>>,
    /// The first submission was accepted.
    pub submitted: Option<DateTime<Utc>>,
    /// It ended.
    pub finished: Option<DateTime<Utc>>,
    /// Rolling batches, in order.
    pub batches: Vec<BatchSpan>,
}

impl StepTimes {
    /// A status read at `at` saw batch `(k, n)`.
    pub fn saw_batch(&mut self, (k, n): (u32, u32), at: DateTime<Utc>) {
        match self.batches.last_mut() {
            Some(last) if last.k == k && last.n == n => last.to = Some(at),
            Some(last) => {
                last.to = Some(at);
                self.batches.push(BatchSpan {
                    k,
                    n,
                    from: at,
                    to: Some(at),
                });
            }
            None => self.batches.push(BatchSpan {
                k,
                n,
                from: at,
                to: Some(at),
            }),
        }
    }

    /// The step ended at `at`: the last batch lasted until then.
    pub fn ended(&mut self, at: DateTime<Utc>) {
        self.finished = Some(at);
        if let Some(last) = self.batches.last_mut() {
            last.to = Some(at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_follow_the_reads_and_the_last_ends_with_the_step() {
        let t = |s: i64| DateTime::<Utc>::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let mut times = StepTimes::default();
        times.saw_batch((1, 2), t(1));
        times.saw_batch((1, 2), t(2));
        times.saw_batch((2, 2), t(3));
        times.ended(t(5));
        assert_eq!(times.batches.len(), 2);
        assert_eq!(
            (times.batches[0].from, times.batches[0].to),
            (t(1), Some(t(3)))
        );
        assert_eq!(
            (times.batches[1].from, times.batches[1].to),
            (t(3), Some(t(5)))
        );
    }
}
