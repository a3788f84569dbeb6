//! Rate limits and budgets counted in PostgreSQL, so that a limit holds
//! across every replica: each `acquire` is one transaction that takes an
//! advisory lock per counter (in key order, so two never deadlock), checks
//! every count and takes all of them or none. A rate counter is one row
//! per counted call; a budget, one row with what was spent.

use postgres::{GenericClient, Transaction};

use crate::carp::limits::{Count, CountKind, SharedCounters, Standing};
use crate::error::Result;
use crate::pg::db::SharedPg;
use crate::time::Micros;

pub struct PgCounters(pub SharedPg);

const LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

fn standing_in(
    tx: &mut impl GenericClient,
    count: &Count,
    now: Micros,
) -> std::result::Result<Standing, postgres::Error> {
    Ok(match count.kind {
        CountKind::Rate {
            max_calls,
            window_micros,
        } => {
            let row = tx.query_one(
                "SELECT count(*), min(at) FROM cra_rate_calls WHERE key = $1 AND at > $2",
                &[&count.key, &(now - window_micros)],
            )?;
            let calls: i64 = row.get(0);
            if calls as u64 >= max_calls {
                let oldest: Option<i64> = row.get(1);
                Standing::RateExceeded {
                    retry_after: (oldest.unwrap_or(now) + window_micros - now).max(0),
                }
            } else {
                Standing::Ok
            }
        }
        CountKind::Budget { limit, cost } => {
            let spent: f64 = tx
                .query_opt(
                    "SELECT spent FROM cra_budgets WHERE key = $1",
                    &[&count.key],
                )?
                .map_or(0.0, |r| r.get(0));
            if spent + cost > limit {
                Standing::BudgetExceeded { spent, limit }
            } else {
                Standing::Ok
            }
        }
    })
}

fn take(
    tx: &mut Transaction<'_>,
    count: &Count,
    now: Micros,
) -> std::result::Result<(), postgres::Error> {
    match count.kind {
        CountKind::Rate { window_micros, .. } => {
            // Calls older than the window are forgotten as they pass.
            tx.execute(
                "DELETE FROM cra_rate_calls WHERE key = $1 AND at <= $2",
                &[&count.key, &(now - window_micros)],
            )?;
            tx.execute(
                "INSERT INTO cra_rate_calls (key, at) VALUES ($1, $2)",
                &[&count.key, &now],
            )?;
        }
        CountKind::Budget { cost, .. } => {
            tx.execute(
                "INSERT INTO cra_budgets (key, spent) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET spent = cra_budgets.spent + EXCLUDED.spent",
                &[&count.key, &cost],
            )?;
        }
    }
    Ok(())
}

impl SharedCounters for PgCounters {
    fn acquire(
        &self,
        counts: &[Count],
        now: Micros,
    ) -> Result<std::result::Result<(), (usize, Standing)>> {
        let mut keys: Vec<&str> = counts.iter().map(|c| c.key.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        self.0.with(|c| {
            let mut tx = c.transaction()?;
            for k in &keys {
                tx.execute(LOCK, &[k])?;
            }
            for (i, count) in counts.iter().enumerate() {
                let standing = standing_in(&mut tx, count, now)?;
                if standing != Standing::Ok {
                    return Ok(Err((i, standing)));
                }
            }
            let mut taken: Vec<&str> = Vec::with_capacity(counts.len());
            for count in counts {
                if !taken.contains(&count.key.as_str()) {
                    take(&mut tx, count, now)?;
                    taken.push(&count.key);
                }
            }
            tx.commit()?;
            Ok(Ok(()))
        })
    }

    fn release(&self, counts: &[Count], at: Micros) -> Result<()> {
        self.0.with(|c| {
            let mut tx = c.transaction()?;
            let mut given: Vec<&str> = Vec::new();
            for count in counts {
                if given.contains(&count.key.as_str()) {
                    continue;
                }
                given.push(&count.key);
                match count.kind {
                    CountKind::Rate { .. } => tx.execute(
                        "DELETE FROM cra_rate_calls WHERE ctid IN (SELECT ctid FROM \
                         cra_rate_calls WHERE key = $1 AND at = $2 LIMIT 1)",
                        &[&count.key, &at],
                    )?,
                    CountKind::Budget { cost, .. } => tx.execute(
                        "UPDATE cra_budgets SET spent = greatest(spent - $2, 0) WHERE key = $1",
                        &[&count.key, &cost],
                    )?,
                };
            }
            tx.commit()
        })
    }

    /// One statement, no transaction: a read of the counter as it stands.
    fn standing(&self, count: &Count, now: Micros) -> Result<Standing> {
        self.0.with(|c| standing_in(c, count, now))
    }
}
