//! The scheduler loop: once a second, every due schedule is claimed by compare-and-set and
//! queued as an asynchronous invocation. Also `run` (fire now) and the scheduled-event payload.
//!
//! A fire goes in two steps. The claim moves `next_fire_at` to the first tick after now and
//! records the tick as `pending`; only the node whose claim wins goes on. The enqueue uses the
//! tick as idempotency key, then clears `pending` and records the execution. A node that dies
//! between the two leaves `pending` behind, and any node retries it after
//! [`PENDING_GRACE_MS`](super::expression::PENDING_GRACE_MS) with the same key: the tick is
//! queued once whatever happens.

use std::time::Duration;

use bytes::Bytes;
use holactl_store::{Kv, StoreError};
use holactl_types::schedule::{PendingFire, ScheduleRecord, EVENT_DETAIL_TYPE, EVENT_SOURCE};
use holactl_types::version::Qualifier;
use holactl_types::{EpochMillis, ExecutionRecord, Trigger};
use serde_json::json;

use super::expression::{fire_key, plan, rfc3339, Expression, Plan};
use super::SCHEDULE_PREFIX;
use crate::functions::{decode, encode};
use crate::{now_ms, AsyncRequest, Engine, EngineError};

/// How often the scheduler looks for due schedules.
const TICK: Duration = Duration::from_secs(1);

/// What to put in a scheduled event besides the schedule.
#[derive(Clone, Copy, Debug)]
pub struct EventContext<'a> {
    /// Region of the ARNs.
    pub region: &'a str,
    /// Account of the ARNs.
    pub account: &'a str,
    /// The schedule's ARN-like id.
    pub arn: &'a str,
    /// A unique id of this event.
    pub id: &'a str,
    /// Whether `run` fired it rather than the clock.
    pub manual: bool,
}

/// The event a fire sends: the schedule's own payload when it has one, else an EventBridge
/// "Scheduled Event" envelope naming the schedule and the scheduled time.
pub fn scheduled_event(
    schedule: &ScheduleRecord,
    scheduled_at: EpochMillis,
    ctx: EventContext<'_>,
) -> serde_json::Value {
    if let Some(payload) = &schedule.payload {
        return payload.clone();
    }
    let time = rfc3339(scheduled_at);
    json!({
        "version": "0",
        "id": ctx.id,
        "detail-type": EVENT_DETAIL_TYPE,
        "source": EVENT_SOURCE,
        "account": ctx.account,
        "time": time,
        "region": ctx.region,
        "resources": [ctx.arn],
        "detail": {
            "schedule": schedule.name,
            "scheduled_time": time,
            "expression": schedule.expression,
            "timezone": schedule.timezone,
            "manual": ctx.manual,
        },
    })
}

/// How a queued (or refused) fire is written back to its schedule.
enum Settled {
    Queued(String),
    /// Queued before (the idempotency key is taken), execution unknown.
    AlreadyQueued,
    Failed(String),
}

/// A fire this node won.
#[derive(Debug)]
pub(crate) struct Claimed {
    /// The schedule as written by the claim.
    pub record: ScheduleRecord,
    /// The tick to queue.
    pub scheduled_at: EpochMillis,
    /// Whether it retries a claim that was never confirmed.
    pub retry: bool,
}

/// Claims, by compare-and-set on each record, every fire due at `now`, following [`plan`]:
/// a due tick moves `next_fire_at` past `now` and becomes `pending`. Of several nodes (or
/// passes) reading the same record, one claim wins; the others see a conflict and skip it.
pub(crate) async fn claim_due(kv: &dyn Kv, now: EpochMillis) -> Result<Vec<Claimed>, StoreError> {
    let mut won = Vec::new();
    for (key, entry) in kv.list(SCHEDULE_PREFIX).await? {
        let record: ScheduleRecord = match decode(&entry.value) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(key, error = %e, "scheduler: unreadable schedule");
                continue;
            }
        };
        // Most schedules are not due: skip them before parsing anything.
        if record.pending.is_none()
            && (record.paused || record.next_fire_at.is_some_and(|t| t > now))
        {
            continue;
        }
        let expression = match Expression::from_stored(&record.expression, &record.timezone) {
            Ok(e) => e,
            Err(e) => {
                tracing::error!(key, error = %e.message, "scheduler: unreadable expression");
                continue;
            }
        };
        let anchor = record.created_at;
        let mut next = record.clone();
        let fire = match plan(&record, now, |t| expression.next_after(anchor, t)) {
            Plan::Wait => continue,
            Plan::Reschedule { next_fire_at } => {
                next.next_fire_at = next_fire_at;
                None
            }
            Plan::Fire {
                scheduled_at,
                next_fire_at,
            } => {
                next.next_fire_at = next_fire_at;
                next.last_fire_at = Some(scheduled_at);
                Some((scheduled_at, false))
            }
            // Re-claimed, so that one node at a time retries.
            Plan::Retry { scheduled_at } => Some((scheduled_at, true)),
        };
        if let Some((scheduled_at, _)) = fire {
            next.pending = Some(PendingFire {
                scheduled_at,
                claimed_at: now,
            });
        }
        let Ok(bytes) = encode(&next) else { continue };
        match kv.update(&key, bytes, entry.revision).await {
            Ok(_) => {
                if let Some((scheduled_at, retry)) = fire {
                    won.push(Claimed {
                        record: next,
                        scheduled_at,
                        retry,
                    });
                }
            }
            // Another node claimed it, or the schedule changed: the next pass decides.
            Err(StoreError::Conflict { .. } | StoreError::NotFound(_)) => {}
            Err(e) => tracing::warn!(key, error = %e, "scheduler: cannot claim a fire"),
        }
    }
    Ok(won)
}

impl Engine {
    pub(crate) fn start_scheduler(&self) {
        let engine = self.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(TICK);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if engine
                    .inner
                    .shutting_down
                    .load(std::sync::atomic::Ordering::SeqCst)
                {
                    return;
                }
                engine.scheduler_tick(now_ms()).await;
            }
        });
        if let Ok(mut tasks) = self.inner.tasks.lock() {
            tasks.push(task);
        }
    }

    /// One pass over every schedule at `now`: claim what is due, fire what this node won.
    async fn scheduler_tick(&self, now: EpochMillis) {
        let claims = match claim_due(self.inner.stores.kv.as_ref(), now).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "scheduler: cannot list schedules");
                return;
            }
        };
        for claim in claims {
            let name = &claim.record.name;
            let scheduled = rfc3339(claim.scheduled_at);
            if claim.retry {
                tracing::info!(schedule = %name, %scheduled, "retrying an unconfirmed fire");
            } else if now - claim.scheduled_at > 60_000 {
                tracing::info!(schedule = %name, %scheduled, "firing a missed tick once");
            }
            self.fire(&claim.record, claim.scheduled_at).await;
        }
    }

    /// Queues the claimed tick `scheduled_at` of `schedule` and records the outcome.
    async fn fire(&self, schedule: &ScheduleRecord, scheduled_at: EpochMillis) {
        let key = fire_key(&schedule.name, scheduled_at);
        let settled = match self
            .enqueue_fire(schedule, scheduled_at, false, Some(key))
            .await
        {
            Ok(record) => Settled::Queued(record.id),
            // Still shutting down or the store is down: leave it pending for a retry.
            Err(EngineError::ShuttingDown)
            | Err(EngineError::Store(StoreError::Unavailable(_))) => return,
            // The key is taken by an execution in progress: this tick is already queued.
            Err(EngineError::Conflict(_)) => Settled::AlreadyQueued,
            Err(e) => {
                let reason = format!("{}: {}", e.code(), e.public_message());
                tracing::warn!(schedule = %schedule.name, function = %schedule.function, reason = %reason, "scheduled fire refused");
                Settled::Failed(reason)
            }
        };
        let result = self
            .edit_schedule(&schedule.name, |r| {
                if r.pending.map(|p| p.scheduled_at) != Some(scheduled_at) {
                    return Ok(false);
                }
                r.pending = None;
                match &settled {
                    Settled::Queued(id) => {
                        r.last_execution_id = Some(id.clone());
                        r.last_error = None;
                    }
                    Settled::AlreadyQueued => r.last_error = None,
                    Settled::Failed(reason) => r.last_error = Some(reason.clone()),
                }
                Ok(true)
            })
            .await;
        if let Err(e) = result {
            if !matches!(e, EngineError::ResourceNotFound(_)) {
                tracing::warn!(schedule = %schedule.name, error = %e, "cannot record a fire");
            }
        }
    }

    /// Queues one fire of `schedule` as an asynchronous invocation.
    async fn enqueue_fire(
        &self,
        schedule: &ScheduleRecord,
        scheduled_at: EpochMillis,
        manual: bool,
        idempotency_key: Option<String>,
    ) -> Result<ExecutionRecord, EngineError> {
        let qualifier = schedule
            .qualifier
            .as_deref()
            .map(Qualifier::parse)
            .transpose()?;
        let c = &self.inner.config;
        let id = uuid::Uuid::new_v4().to_string();
        let arn = self.schedule_arn(&schedule.name);
        let event = scheduled_event(
            schedule,
            scheduled_at,
            EventContext {
                region: &c.region,
                account: &c.account_id,
                arn: &arn,
                id: &id,
                manual,
            },
        );
        self.invoke_async(
            &schedule.function,
            AsyncRequest {
                payload: Bytes::from(event.to_string()),
                qualifier,
                trigger: Trigger::Schedule,
                idempotency_key,
            },
        )
        .await
    }

    /// Fires a schedule now, paused or not, without moving its next fire: one asynchronous
    /// invocation whose event's time is now. Answers the pending execution.
    pub async fn run_schedule(
        &self,
        actor: &str,
        name: &str,
    ) -> Result<ExecutionRecord, EngineError> {
        let (schedule, _) = self.schedule_record(name).await?;
        let now = now_ms();
        let execution = self.enqueue_fire(&schedule, now, true, None).await?;
        let id = execution.id.clone();
        let (before, after) = self
            .edit_schedule(name, |r| {
                r.last_fire_at = Some(now);
                r.last_execution_id = Some(id.clone());
                r.last_error = None;
                Ok(true)
            })
            .await?;
        self.audit_schedule_change(actor, "schedule.run", &before, &after)
            .await;
        Ok(execution)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn schedule(payload: Option<serde_json::Value>) -> ScheduleRecord {
        ScheduleRecord {
            name: "nightly-backup".into(),
            function: "hello".into(),
            qualifier: None,
            expression: "cron(0 2 * * *)".into(),
            timezone: "Europe/Madrid".into(),
            payload,
            description: String::new(),
            paused: false,
            next_fire_at: None,
            last_fire_at: None,
            last_execution_id: None,
            last_error: None,
            pending: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    const CTX: EventContext<'static> = EventContext {
        region: "local",
        account: "000000000000",
        arn: "arn:aws:scheduler:local:000000000000:schedule/default/nightly-backup",
        id: "4b7c0d0e-0000-4000-8000-000000000000",
        manual: false,
    };

    #[test]
    fn the_default_event_is_an_eventbridge_scheduled_event() {
        let at = "2025-06-01T00:00:00Z"
            .parse::<jiff::Timestamp>()
            .unwrap()
            .as_millisecond();
        let event = scheduled_event(&schedule(None), at, CTX);
        assert_eq!(
            event,
            json!({
                "version": "0",
                "id": CTX.id,
                "detail-type": "Scheduled Event",
                "source": "holactl.scheduler",
                "account": "000000000000",
                "time": "2025-06-01T00:00:00Z",
                "region": "local",
                "resources": [CTX.arn],
                "detail": {
                    "schedule": "nightly-backup",
                    "scheduled_time": "2025-06-01T00:00:00Z",
                    "expression": "cron(0 2 * * *)",
                    "timezone": "Europe/Madrid",
                    "manual": false,
                },
            })
        );
    }

    #[test]
    fn a_payload_replaces_the_envelope() {
        let payload = json!({"action": "backup", "full": true});
        assert_eq!(
            scheduled_event(&schedule(Some(payload.clone())), 0, CTX),
            payload
        );
        assert_eq!(
            scheduled_event(&schedule(Some(json!("just text"))), 0, CTX),
            json!("just text")
        );
    }

    /// Epoch ms of an RFC 3339 instant.
    fn at(s: &str) -> EpochMillis {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    async fn store_with(record: &ScheduleRecord) -> (tempfile::TempDir, holactl_store::Stores) {
        let dir = tempfile::tempdir().unwrap();
        let stores = holactl_store::embedded::EmbeddedStore::open(dir.path()).unwrap();
        stores
            .kv
            .create(
                &format!("{SCHEDULE_PREFIX}{}", record.name),
                encode(record).unwrap(),
            )
            .await
            .unwrap();
        (dir, stores)
    }

    async fn stored(kv: &dyn Kv, name: &str) -> ScheduleRecord {
        let entry = kv
            .get(&format!("{SCHEDULE_PREFIX}{name}"))
            .await
            .unwrap()
            .unwrap();
        decode(&entry.value).unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn of_several_nodes_one_claims_a_tick() {
        let due = at("2025-01-02T02:00:00Z");
        let mut r = schedule(None);
        r.next_fire_at = Some(due);
        let (_dir, stores) = store_with(&r).await;
        let kv = stores.kv.as_ref();
        let now = due + 250;
        let won = concurrent_passes(&stores.kv, now).await;
        assert_eq!(won.len(), 1, "exactly one claim wins: {won:?}");
        assert_eq!(won[0].scheduled_at, due);
        assert!(!won[0].retry);
        let after = stored(kv, &r.name).await;
        assert_eq!(after.last_fire_at, Some(due));
        // Madrid: 02:00 local the next day is 01:00 UTC.
        assert_eq!(after.next_fire_at, Some(at("2025-01-03T01:00:00Z")));
        assert_eq!(
            after.pending,
            Some(PendingFire {
                scheduled_at: due,
                claimed_at: now
            })
        );
        // Nothing more to claim a second later while the fire is being queued.
        assert!(claim_due(kv, now + 1000).await.unwrap().is_empty());
    }

    /// Eight passes over the same store at once, as eight nodes would run them.
    async fn concurrent_passes(kv: &Arc<dyn Kv>, now: EpochMillis) -> Vec<Claimed> {
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let kv = kv.clone();
                tokio::spawn(async move { claim_due(kv.as_ref(), now).await.unwrap() })
            })
            .collect();
        let mut won = Vec::new();
        for task in tasks {
            won.extend(task.await.unwrap());
        }
        won
    }

    #[tokio::test]
    async fn after_downtime_a_schedule_fires_once_and_moves_past_now() {
        let mut r = schedule(None);
        r.timezone = "UTC".into();
        r.next_fire_at = Some(at("2025-01-02T02:00:00Z"));
        let (_dir, stores) = store_with(&r).await;
        let kv = stores.kv.as_ref();
        let back = at("2025-01-09T12:00:00Z");
        let won = claim_due(kv, back).await.unwrap();
        assert_eq!(won.len(), 1);
        assert_eq!(won[0].scheduled_at, at("2025-01-02T02:00:00Z"));
        let after = stored(kv, &r.name).await;
        assert_eq!(after.next_fire_at, Some(at("2025-01-10T02:00:00Z")));
        // Even once the pending fire is settled, nothing is due until the next tick.
        let mut settled = after.clone();
        settled.pending = None;
        let entry = kv.get("schedules/nightly-backup").await.unwrap().unwrap();
        kv.update(
            "schedules/nightly-backup",
            encode(&settled).unwrap(),
            entry.revision,
        )
        .await
        .unwrap();
        for t in [back + 1000, at("2025-01-10T01:59:59Z")] {
            assert!(claim_due(kv, t).await.unwrap().is_empty());
        }
        assert_eq!(
            claim_due(kv, at("2025-01-10T02:00:00Z"))
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn an_unconfirmed_claim_is_retried_once_by_one_pass() {
        let due = at("2025-01-02T02:00:00Z");
        let mut r = schedule(None);
        r.next_fire_at = Some(at("2025-01-03T01:00:00Z"));
        r.pending = Some(PendingFire {
            scheduled_at: due,
            claimed_at: due,
        });
        let (_dir, stores) = store_with(&r).await;
        let kv = stores.kv.as_ref();
        assert!(claim_due(kv, due + 5_000).await.unwrap().is_empty());
        let later = due + super::super::expression::PENDING_GRACE_MS;
        let won = concurrent_passes(&stores.kv, later).await;
        assert_eq!(won.len(), 1);
        assert!(won[0].retry);
        assert_eq!(won[0].scheduled_at, due);
        // The re-claim restarts the grace period.
        assert!(claim_due(kv, later + 1000).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn paused_schedules_are_not_claimed() {
        let mut r = schedule(None);
        r.paused = true;
        r.next_fire_at = None;
        let (_dir, stores) = store_with(&r).await;
        assert!(claim_due(stores.kv.as_ref(), at("2030-01-01T00:00:00Z"))
            .await
            .unwrap()
            .is_empty());
    }
}
