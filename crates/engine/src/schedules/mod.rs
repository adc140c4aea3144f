//! Schedules: invoke a function asynchronously on a cron expression (in an IANA time zone)
//! or at a fixed rate.
//!
//! Each schedule is one store record under `schedules/<name>`. Every node runs the scheduler
//! loop ([`scheduler`]); a tick is fired by the node whose compare-and-set of the record's
//! `next_fire_at` wins, and is queued as an asynchronous invocation whose idempotency key is
//! the tick (`schedule:<name>:<epoch ms>`), so a tick is queued at most once.
//!
//! # Layout
//! - this file: create, list, get, pause, resume, delete (all audited).
//! - [`expression`]: parsing and time arithmetic, pure and unit-tested with fixed instants.
//! - [`scheduler`]: the loop, the fire, the scheduled-event payload and `run` (fire now).

pub mod expression;
pub mod scheduler;

use holactl_store::StoreError;
use holactl_types::limits::MAX_ASYNC_PAYLOAD_BYTES;
use holactl_types::schedule::{
    validate_schedule_name, CreateScheduleRequest, ScheduleRecord, ScheduleView, MAX_SCHEDULES,
};
use holactl_types::version::Qualifier;

use crate::functions::{decode, encode};
use crate::{now_ms, Engine, EngineError};
use expression::Expression;

pub(crate) const SCHEDULE_PREFIX: &str = "schedules/";
/// Longest description.
const MAX_DESCRIPTION_LEN: usize = 256;
/// Attempts of a read-modify-write that races the scheduler or another node.
const UPDATE_ATTEMPTS: usize = 10;

fn schedule_key(name: &str) -> String {
    format!("{SCHEDULE_PREFIX}{name}")
}

fn not_found(name: &str) -> EngineError {
    EngineError::ResourceNotFound(format!("schedule {name:?} does not exist"))
}

impl Engine {
    /// The ARN-like id of a schedule (also the `resources` entry of its events).
    pub fn schedule_arn(&self, name: &str) -> String {
        let c = &self.inner.config;
        format!(
            "arn:aws:scheduler:{}:{}:schedule/default/{name}",
            c.region, c.account_id
        )
    }

    fn schedule_view(&self, r: &ScheduleRecord) -> ScheduleView {
        ScheduleView {
            arn: self.schedule_arn(&r.name),
            name: r.name.clone(),
            function: r.function.clone(),
            qualifier: r.qualifier.clone(),
            expression: r.expression.clone(),
            timezone: r.timezone.clone(),
            payload: r.payload.clone(),
            description: r.description.clone(),
            paused: r.paused,
            next_fire_at: r.next_fire_at,
            last_fire_at: r.last_fire_at,
            last_execution_id: r.last_execution_id.clone(),
            last_error: r.last_error.clone(),
            created_at: r.created_at,
            updated_at: r.updated_at,
        }
    }

    /// The stored record of a schedule and its revision.
    async fn schedule_record(&self, name: &str) -> Result<(ScheduleRecord, u64), EngineError> {
        let entry = self
            .inner
            .stores
            .kv
            .get(&schedule_key(name))
            .await?
            .ok_or_else(|| not_found(name))?;
        Ok((decode(&entry.value)?, entry.revision))
    }

    /// Applies `edit` to the stored record by compare-and-set, retrying on races with the
    /// scheduler. `edit` returns false to leave the record as it is.
    pub(crate) async fn edit_schedule(
        &self,
        name: &str,
        mut edit: impl FnMut(&mut ScheduleRecord) -> Result<bool, EngineError>,
    ) -> Result<(ScheduleRecord, ScheduleRecord), EngineError> {
        let kv = &self.inner.stores.kv;
        for _ in 0..UPDATE_ATTEMPTS {
            let (before, revision) = self.schedule_record(name).await?;
            let mut after = before.clone();
            if !edit(&mut after)? {
                return Ok((before, after));
            }
            match kv
                .update(&schedule_key(name), encode(&after)?, revision)
                .await
            {
                Ok(_) => return Ok((before, after)),
                Err(StoreError::Conflict { .. }) => tokio::task::yield_now().await,
                Err(StoreError::NotFound(_)) => return Err(not_found(name)),
                Err(e) => return Err(e.into()),
            }
        }
        Err(EngineError::Conflict(format!(
            "schedule {name:?} is changing concurrently; try again"
        )))
    }

    /// Creates a schedule; its first fire is the expression's first tick after now (for a
    /// rate: now + the rate).
    pub async fn create_schedule(
        &self,
        actor: &str,
        req: CreateScheduleRequest,
    ) -> Result<ScheduleView, EngineError> {
        validate_schedule_name(&req.name)?;
        if self.function_entry(&req.function).is_err() {
            return Err(EngineError::invalid(
                "function",
                format!("function {:?} does not exist", req.function),
            ));
        }
        let qualifier = req.qualifier.as_deref().map(Qualifier::parse).transpose()?;
        if let Err(e) = self.resolve(&req.function, qualifier.as_ref()) {
            return Err(EngineError::invalid("qualifier", e.public_message()));
        }
        let expression = Expression::parse(
            req.cron.as_deref(),
            req.rate.as_deref(),
            req.timezone.as_deref(),
        )?;
        if let Some(payload) = &req.payload {
            let size = payload.to_string().len();
            if size > MAX_ASYNC_PAYLOAD_BYTES {
                return Err(EngineError::invalid(
                    "payload",
                    format!("is {size} bytes; the limit is {MAX_ASYNC_PAYLOAD_BYTES}"),
                ));
            }
        }
        let description = req.description.unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION_LEN {
            return Err(EngineError::invalid(
                "description",
                format!("must be at most {MAX_DESCRIPTION_LEN} characters"),
            ));
        }
        let now = now_ms();
        let next_fire_at = expression.next_after(now, now);
        if next_fire_at.is_none() {
            let field = match expression {
                Expression::Cron { .. } => "cron",
                Expression::Rate(_) => "rate",
            };
            return Err(EngineError::invalid(
                field,
                format!("{} never fires", expression.normalized()),
            ));
        }
        let kv = &self.inner.stores.kv;
        if kv.list(SCHEDULE_PREFIX).await?.len() >= MAX_SCHEDULES {
            return Err(EngineError::LimitExceeded(format!(
                "{MAX_SCHEDULES} schedules already exist; delete unused ones first"
            )));
        }
        let record = ScheduleRecord {
            name: req.name.clone(),
            function: req.function.clone(),
            qualifier: qualifier.as_ref().map(ToString::to_string),
            expression: expression.normalized(),
            timezone: expression.timezone().to_owned(),
            payload: req.payload,
            description,
            paused: false,
            next_fire_at,
            last_fire_at: None,
            last_execution_id: None,
            last_error: None,
            pending: None,
            created_at: now,
            updated_at: now,
        };
        match kv.create(&schedule_key(&req.name), encode(&record)?).await {
            Ok(_) => {}
            Err(StoreError::Conflict { .. }) => {
                return Err(EngineError::Conflict(format!(
                    "schedule {:?} already exists",
                    req.name
                )))
            }
            Err(e) => return Err(e.into()),
        }
        let view = self.schedule_view(&record);
        tracing::info!(schedule = %record.name, function = %record.function, expression = %record.expression, timezone = %record.timezone, "schedule created");
        self.audit(
            actor,
            "schedule.create",
            Some(&record.function),
            &format!("schedule/{}", record.name),
            None,
            Some(&view),
        )
        .await;
        Ok(view)
    }

    /// Every schedule, by name.
    pub async fn list_schedules(&self) -> Result<Vec<ScheduleView>, EngineError> {
        let mut out = Vec::new();
        for (key, entry) in self.inner.stores.kv.list(SCHEDULE_PREFIX).await? {
            match decode::<ScheduleRecord>(&entry.value) {
                Ok(r) => out.push(self.schedule_view(&r)),
                Err(e) => tracing::error!(key, error = %e, "skipping unreadable schedule"),
            }
        }
        Ok(out)
    }

    /// One schedule.
    pub async fn get_schedule(&self, name: &str) -> Result<ScheduleView, EngineError> {
        let (record, _) = self.schedule_record(name).await?;
        Ok(self.schedule_view(&record))
    }

    /// Stops a schedule from firing (a fire already queued still runs). Pausing a paused
    /// schedule changes nothing.
    pub async fn pause_schedule(
        &self,
        actor: &str,
        name: &str,
    ) -> Result<ScheduleView, EngineError> {
        let (before, after) = self
            .edit_schedule(name, |r| {
                if r.paused {
                    return Ok(false);
                }
                r.paused = true;
                r.next_fire_at = None;
                r.updated_at = now_ms();
                Ok(true)
            })
            .await?;
        self.audit_schedule_change(actor, "schedule.pause", &before, &after)
            .await;
        Ok(self.schedule_view(&after))
    }

    /// Lets a paused schedule fire again, from its first tick after now: ticks that passed
    /// while it was paused are skipped.
    pub async fn resume_schedule(
        &self,
        actor: &str,
        name: &str,
    ) -> Result<ScheduleView, EngineError> {
        let (before, after) = self
            .edit_schedule(name, |r| {
                if !r.paused {
                    return Ok(false);
                }
                let expression = Expression::from_stored(&r.expression, &r.timezone)?;
                let now = now_ms();
                r.paused = false;
                r.next_fire_at = expression.next_after(r.created_at, now);
                r.updated_at = now;
                Ok(true)
            })
            .await?;
        self.audit_schedule_change(actor, "schedule.resume", &before, &after)
            .await;
        Ok(self.schedule_view(&after))
    }

    async fn audit_schedule_change(
        &self,
        actor: &str,
        action: &str,
        before: &ScheduleRecord,
        after: &ScheduleRecord,
    ) {
        if before == after {
            return;
        }
        tracing::info!(schedule = %after.name, "{action}");
        let (b, a) = (self.schedule_view(before), self.schedule_view(after));
        self.audit(
            actor,
            action,
            Some(&after.function),
            &format!("schedule/{}", after.name),
            Some(&b),
            Some(&a),
        )
        .await;
    }

    /// Deletes a schedule (a fire already queued still runs).
    pub async fn delete_schedule(&self, actor: &str, name: &str) -> Result<(), EngineError> {
        let (record, revision) = self.schedule_record(name).await?;
        match self
            .inner
            .stores
            .kv
            .delete(&schedule_key(name), Some(revision))
            .await
        {
            Ok(()) => {}
            // The scheduler advanced it meanwhile: delete whatever is there now.
            Err(StoreError::Conflict { .. }) => {
                match self.inner.stores.kv.delete(&schedule_key(name), None).await {
                    Ok(()) => {}
                    Err(StoreError::NotFound(_)) => return Err(not_found(name)),
                    Err(e) => return Err(e.into()),
                }
            }
            Err(StoreError::NotFound(_)) => return Err(not_found(name)),
            Err(e) => return Err(e.into()),
        }
        tracing::info!(schedule = %name, "schedule deleted");
        let view = self.schedule_view(&record);
        self.audit(
            actor,
            "schedule.delete",
            Some(&record.function),
            &format!("schedule/{name}"),
            Some(&view),
            None,
        )
        .await;
        Ok(())
    }
}
