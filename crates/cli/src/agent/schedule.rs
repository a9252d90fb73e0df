//! When a job fires: every fixed interval, or at the times of a cron expression (UTC; five
//! fields, or six with seconds first), each delayed by a random jitter so that many agents do not
//! hit one repository at the same instant. A capture runs continuously instead.

use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use rand::Rng;

#[derive(Debug, Clone)]
pub struct Schedule {
    rule: Rule,
    jitter: Duration,
}

#[derive(Debug, Clone)]
enum Rule {
    Every(Duration),
    Cron(Box<Cron>),
    /// Never fires: the job runs for as long as its agent leads (a capture).
    Continuous,
}

impl Schedule {
    pub fn every(period: Duration, jitter: Duration) -> Self {
        Self {
            rule: Rule::Every(period),
            jitter,
        }
    }

    pub fn continuous() -> Self {
        Self {
            rule: Rule::Continuous,
            jitter: Duration::ZERO,
        }
    }

    pub fn cron(expression: &str, jitter: Duration) -> Result<Self, String> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(expression)
            .map_err(|e| {
                format!("cron {expression:?} is not a cron expression ({e}); write e.g. \"0 * * * *\"")
            })?;
        Ok(Self {
            rule: Rule::Cron(Box::new(cron)),
            jitter,
        })
    }

    /// The nominal time after `now` (without jitter): now + the period, or the next cron match.
    fn next_nominal(&self, now: SystemTime) -> SystemTime {
        match &self.rule {
            Rule::Every(period) => now + *period,
            Rule::Continuous => now,
            Rule::Cron(cron) => {
                let from: DateTime<Utc> = now.into();
                cron.find_next_occurrence(&from, false)
                    .map(SystemTime::from)
                    // An expression that never matches again (a date in the past) waits a year.
                    .unwrap_or(now + Duration::from_secs(365 * 86_400))
            }
        }
    }

    /// When to fire next, jitter included.
    pub fn next(&self, now: SystemTime) -> SystemTime {
        self.next_nominal(now) + self.jitter_delay()
    }

    /// The first firing after a start at `now`, when the job's last output is from `last`: an
    /// interval job catches up at once if its interval has passed since (or it never ran), so an
    /// agent restarted more often than the interval still runs the job; a cron job keeps to its
    /// times.
    pub fn first(&self, now: SystemTime, last: Option<SystemTime>) -> SystemTime {
        match (&self.rule, last) {
            (Rule::Every(period), Some(last)) if last + *period > now => self.next(last),
            (Rule::Every(_), _) => now + self.jitter_delay(),
            (Rule::Cron(_) | Rule::Continuous, _) => self.next(now),
        }
    }

    fn jitter_delay(&self) -> Duration {
        match self.jitter.is_zero() {
            true => Duration::ZERO,
            false => rand::thread_rng().gen_range(Duration::ZERO..=self.jitter),
        }
    }

    /// How many times it would have fired in (from, to]: the ticks a run that lasted that long
    /// made the job skip. Counted up to 1000.
    pub fn ticks_between(&self, from: SystemTime, to: SystemTime) -> u64 {
        if matches!(self.rule, Rule::Continuous) {
            return 0;
        }
        let mut count = 0;
        let mut at = from;
        while count < 1000 {
            at = self.next_nominal(at);
            if at > to {
                break;
            }
            count += 1;
        }
        count
    }

    /// The nominal interval between two firings after `now`: what "older than 1.5 intervals"
    /// alerts and the status page measure against.
    pub fn interval(&self, now: SystemTime) -> Duration {
        let first = self.next_nominal(now);
        self.next_nominal(first).duration_since(first).unwrap_or_default()
    }

    pub fn describe(&self) -> String {
        let base = match &self.rule {
            Rule::Every(period) => format!("every {}", humantime::format_duration(*period)),
            Rule::Cron(cron) => format!("cron {}", cron.as_str()),
            Rule::Continuous => "continuously while leading".into(),
        };
        match self.jitter.is_zero() {
            true => base,
            false => format!("{base} (jitter {})", humantime::format_duration(self.jitter)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(seconds)
    }

    #[test]
    fn intervals_fire_a_period_later_and_jitter_stays_within_bounds() {
        let plain = Schedule::every(Duration::from_secs(60), Duration::ZERO);
        assert_eq!(plain.next(at(1000)), at(1060));
        let jittered = Schedule::every(Duration::from_secs(60), Duration::from_secs(10));
        for _ in 0..50 {
            let next = jittered.next(at(1000));
            assert!(next >= at(1060) && next <= at(1070), "{next:?}");
        }
        assert_eq!(plain.ticks_between(at(1000), at(1179)), 2);
        assert_eq!(plain.interval(at(0)), Duration::from_secs(60));
    }

    #[test]
    fn a_restarted_interval_job_catches_up_or_waits_for_its_interval() {
        let hourly = Schedule::every(Duration::from_secs(3600), Duration::ZERO);
        assert_eq!(hourly.first(at(10_000), None), at(10_000), "never ran: now");
        assert_eq!(
            hourly.first(at(10_000), Some(at(9_000))),
            at(12_600),
            "ran 1000 s ago"
        );
        assert_eq!(
            hourly.first(at(10_000), Some(at(5_000))),
            at(10_000),
            "overdue: now"
        );
        let cron = Schedule::cron("0 * * * *", Duration::ZERO).unwrap();
        assert_eq!(cron.first(at(1_795_678_200), None), at(1_795_680_000));
    }

    #[test]
    fn cron_fires_at_its_matches_in_utc() {
        // 2026-11-26T07:30:00Z.
        let now = at(1_795_678_200);
        let hourly = Schedule::cron("0 * * * *", Duration::ZERO).unwrap();
        assert_eq!(hourly.next(now), at(1_795_680_000));
        assert_eq!(hourly.interval(now), Duration::from_secs(3600));
        assert_eq!(hourly.ticks_between(now, now + Duration::from_secs(3 * 3600)), 3);
        let seconds = Schedule::cron("*/5 * * * * *", Duration::ZERO).unwrap();
        assert_eq!(seconds.next(now), now + Duration::from_secs(5));
        assert!(Schedule::cron("61 * * * *", Duration::ZERO).is_err());
    }
}
