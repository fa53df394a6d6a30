//! The polling schedule: the safety net beside callbacks. Starts at 1 s, grows ×1.5 up
//! to 15 s, with ±10 % jitter so many steps started together do not poll in lockstep.

use std::time::Duration;

use rand::Rng;

/// Successive pauses between status reads.
#[derive(Debug, Clone)]
pub struct PollSchedule {
    next: Duration,
    factor: f64,
    cap: Duration,
    jitter: f64,
}

impl Default for PollSchedule {
    fn default() -> Self {
        PollSchedule::new(Duration::from_secs(1), 1.5, Duration::from_secs(15))
    }
}

impl PollSchedule {
    /// A schedule starting at `first`, multiplied by `factor` each time, capped at `cap`.
    pub fn new(first: Duration, factor: f64, cap: Duration) -> Self {
        PollSchedule {
            next: first,
            factor: factor.max(1.0),
            cap,
            jitter: 0.1,
        }
    }

    /// The next pause (jittered), advancing the schedule.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.next.min(self.cap);
        self.next = base.mul_f64(self.factor).min(self.cap);
        let spread = rand::rng().random_range(-self.jitter..=self.jitter);
        base.mul_f64(1.0 + spread)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_to_the_cap_with_bounded_jitter() {
        let mut schedule = PollSchedule::default();
        let delays: Vec<Duration> = (0..12).map(|_| schedule.next_delay()).collect();
        assert!(
            delays[0] >= Duration::from_millis(900) && delays[0] <= Duration::from_millis(1100)
        );
        assert!(
            delays[1] >= Duration::from_millis(1350) && delays[1] <= Duration::from_millis(1650)
        );
        for d in &delays {
            assert!(*d <= Duration::from_millis(16_500));
        }
        assert!(delays[11] >= Duration::from_millis(13_500));
    }
}
