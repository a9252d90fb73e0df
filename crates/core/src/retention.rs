//! Which backups a retention policy keeps, with restic's semantics (`restic forget`): a pure
//! function of the backups' times and the policy, so it is tested on worked examples.
//!
//! Backups are considered newest first. `--keep-last N` keeps the N newest. Each calendar rule
//! (`hourly`, `daily`, `weekly` (ISO weeks), `monthly`, `yearly`, all in UTC) keeps the newest
//! backup of each of the last N periods that have a backup. `--keep-within D` keeps every backup
//! less than D older than the *newest* backup (not than now: backups that stopped arriving are
//! not aged out). A backup is kept if any rule keeps it; every rule that keeps it is named.

use std::time::Duration;

use serde::Serialize;
use time::OffsetDateTime;

/// How many backups each rule keeps (`None`: the rule is off).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    pub last: Option<u32>,
    pub hourly: Option<u32>,
    pub daily: Option<u32>,
    pub weekly: Option<u32>,
    pub monthly: Option<u32>,
    pub yearly: Option<u32>,
    pub within: Option<Duration>,
}

impl Policy {
    /// Whether no rule is set (forgetting with it would remove everything; callers refuse).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A rule that keeps a backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    Last,
    Hourly,
    Daily,
    Weekly,
    Monthly,
    Yearly,
    Within,
}

impl std::fmt::Display for Rule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Rule::Last => "last",
            Rule::Hourly => "hourly",
            Rule::Daily => "daily",
            Rule::Weekly => "weekly",
            Rule::Monthly => "monthly",
            Rule::Yearly => "yearly",
            Rule::Within => "within",
        })
    }
}

/// The period a calendar rule buckets a time into (two times share a bucket iff equal).
fn bucket(rule: Rule, time: OffsetDateTime) -> i64 {
    let (year, month, day, hour) = (
        i64::from(time.year()),
        i64::from(u8::from(time.month())),
        i64::from(time.day()),
        i64::from(time.hour()),
    );
    match rule {
        Rule::Hourly => ((year * 100 + month) * 100 + day) * 100 + hour,
        Rule::Daily => (year * 100 + month) * 100 + day,
        Rule::Weekly => {
            let (iso_year, week, _) = time.to_iso_week_date();
            i64::from(iso_year) * 100 + i64::from(week)
        }
        Rule::Monthly => year * 100 + month,
        Rule::Yearly => year,
        // Every backup is its own bucket.
        Rule::Last | Rule::Within => time.unix_timestamp_nanos() as i64,
    }
}

/// For each of `times` (in any order), the rules that keep it; empty means it is forgotten.
pub fn apply(policy: &Policy, times: &[OffsetDateTime]) -> Vec<Vec<Rule>> {
    let mut order: Vec<usize> = (0..times.len()).collect();
    // Newest first; equal times keep their input order.
    order.sort_by(|&a, &b| times[b].cmp(&times[a]));
    let mut kept = vec![Vec::new(); times.len()];
    let counted = [
        (Rule::Last, policy.last),
        (Rule::Hourly, policy.hourly),
        (Rule::Daily, policy.daily),
        (Rule::Weekly, policy.weekly),
        (Rule::Monthly, policy.monthly),
        (Rule::Yearly, policy.yearly),
    ];
    for (rule, count) in counted {
        let Some(mut left) = count else { continue };
        let mut previous = None;
        for &index in &order {
            if left == 0 {
                break;
            }
            let period = bucket(rule, times[index]);
            if previous != Some(period) {
                kept[index].push(rule);
                previous = Some(period);
                left -= 1;
            }
        }
    }
    if let (Some(within), Some(&newest)) = (policy.within, order.first()) {
        let newest = times[newest];
        for (index, time) in times.iter().enumerate() {
            if newest - *time < within {
                kept[index].push(Rule::Within);
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn rules(policy: &Policy, times: &[OffsetDateTime]) -> Vec<String> {
        apply(policy, times)
            .iter()
            .map(|r| r.iter().map(Rule::to_string).collect::<Vec<_>>().join(","))
            .collect()
    }

    /// restic's documentation example: one backup a day at 10:00 for the first days of 2025
    /// plus two on 2025-01-07 (10:00 and 22:00).
    fn days() -> Vec<OffsetDateTime> {
        let mut times: Vec<OffsetDateTime> = (1..=10)
            .map(|day| datetime!(2025-01-01 10:00 UTC) + time::Duration::days(day - 1))
            .collect();
        times.push(datetime!(2025-01-07 22:00 UTC));
        times
    }

    #[test]
    fn keep_last_keeps_the_newest_n() {
        let policy = Policy {
            last: Some(3),
            ..Policy::default()
        };
        let kept = rules(&policy, &days());
        // Newest: Jan 10, Jan 9, Jan 8 (index 9, 8, 7).
        assert_eq!(kept[9], "last");
        assert_eq!(kept[8], "last");
        assert_eq!(kept[7], "last");
        assert_eq!(kept.iter().filter(|r| r.is_empty()).count(), 8);
    }

    #[test]
    fn keep_daily_takes_the_newest_of_each_day() {
        let policy = Policy {
            daily: Some(5),
            ..Policy::default()
        };
        let kept = rules(&policy, &days());
        // Days 10, 9, 8, 7 (its 22:00 backup, not 10:00), 6.
        for index in [9, 8, 7, 10, 5] {
            assert_eq!(kept[index], "daily", "{index}");
        }
        assert_eq!(
            kept[6], "",
            "Jan 7 10:00 is older than Jan 7 22:00 in the same day"
        );
        assert_eq!(kept.iter().filter(|r| r.is_empty()).count(), 6);
    }

    #[test]
    fn rules_combine_and_each_is_named() {
        let policy = Policy {
            last: Some(1),
            daily: Some(2),
            weekly: Some(2),
            monthly: Some(1),
            ..Policy::default()
        };
        let kept = rules(&policy, &days());
        assert_eq!(kept[9], "last,daily,weekly,monthly");
        assert_eq!(kept[8], "daily");
        // ISO weeks: Jan 6-12 2025 is week 2, Dec 30 2024-Jan 5 is week 1 of 2025.
        assert_eq!(kept[4], "weekly", "Jan 5, the newest of ISO week 1");
        assert_eq!(kept.iter().filter(|r| r.is_empty()).count(), 8);
    }

    #[test]
    fn keep_within_is_relative_to_the_newest_backup() {
        let policy = Policy {
            within: Some(Duration::from_secs(3 * 24 * 3600)),
            ..Policy::default()
        };
        let kept = rules(&policy, &days());
        // Newest is Jan 10 10:00: within 3 days means after Jan 7 10:00 (exclusive).
        for index in [9, 8, 7, 10] {
            assert_eq!(kept[index], "within", "{index}");
        }
        assert_eq!(kept[6], "", "exactly 3 days older is not within");
        assert_eq!(kept.iter().filter(|r| r.is_empty()).count(), 7);
    }

    #[test]
    fn counts_skip_periods_without_backups_and_yearly_crosses_years() {
        let times = [
            datetime!(2023-06-01 00:00 UTC),
            datetime!(2024-03-01 00:00 UTC),
            datetime!(2024-12-31 23:59 UTC),
            datetime!(2026-01-01 00:00 UTC),
        ];
        let policy = Policy {
            yearly: Some(3),
            monthly: Some(2),
            ..Policy::default()
        };
        // Newest first: 2026 and 2024-12 take both rules; 2024-03 shares 2024 with a newer
        // backup; 2023 is the third year that has a backup (2025 has none).
        assert_eq!(
            rules(&policy, &times),
            ["yearly", "", "monthly,yearly", "monthly,yearly"]
        );
    }

    #[test]
    fn an_empty_policy_is_recognised_and_keeps_nothing() {
        assert!(Policy::default().is_empty());
        assert!(apply(&Policy::default(), &days()).iter().all(Vec::is_empty));
        assert!(apply(&Policy::default(), &[]).is_empty());
    }
}
