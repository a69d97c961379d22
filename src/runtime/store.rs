//! Durable state in SQLite (`switchboard.db` in the data directory): pending callbacks, so
//! a restart or a crash loses none, and call detail records of ended calls.
//!
//! Writes happen as the switch emits them, each its own transaction, in WAL mode: a
//! record written before a SIGKILL is there after it. Times are stored as Unix
//! milliseconds; the core's `Instant`s are converted against the clock at write and read.

use crate::acd::{
    AgentId, AgentStateChange, CallbackId, CallbackRecord, CallerId, PersistRecord,
    SkillRequirement,
};
use crate::call::CallSummary;
use crate::sip::registrar::Binding;
use anyhow::{Context, Result};
use rusqlite::{params, Connection};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The database.
pub(crate) struct Store {
    db: Connection,
}

fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `instant` as Unix milliseconds, given that `now` is `wall_now`.
fn to_wall(instant: Instant, now: Instant, wall_now: i64) -> i64 {
    if instant >= now {
        wall_now + instant.duration_since(now).as_millis() as i64
    } else {
        wall_now - now.duration_since(instant).as_millis() as i64
    }
}

/// Unix milliseconds as an `Instant`, given that `now` is `wall_now`.
fn from_wall(ms: i64, now: Instant, wall_now: i64) -> Instant {
    if ms >= wall_now {
        now + Duration::from_millis((ms - wall_now) as u64)
    } else {
        now.checked_sub(Duration::from_millis((wall_now - ms) as u64))
            .unwrap_or(now)
    }
}

impl Store {
    /// Opens (creating) the database.
    pub(crate) fn open(path: &Path) -> Result<Store> {
        let db = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "NORMAL")?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS callbacks (
                id INTEGER PRIMARY KEY,
                queue TEXT NOT NULL,
                number TEXT NOT NULL,
                caller INTEGER,
                priority INTEGER NOT NULL,
                skills TEXT NOT NULL,
                attributes TEXT NOT NULL,
                last_agent TEXT,
                place_ms INTEGER NOT NULL,
                requested_ms INTEGER NOT NULL,
                not_before_ms INTEGER NOT NULL,
                attempts INTEGER NOT NULL
            );
            CREATE TABLE IF NOT EXISTS calls (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                ended_ms INTEGER NOT NULL,
                state TEXT NOT NULL,
                caller TEXT NOT NULL,
                called TEXT NOT NULL,
                duration_ms INTEGER NOT NULL,
                flow TEXT,
                inputs TEXT NOT NULL,
                queue TEXT,
                agent TEXT,
                survey TEXT,
                recording TEXT
            );
            CREATE TABLE IF NOT EXISTS registrations (
                aor TEXT NOT NULL,
                contact_uri TEXT NOT NULL,
                params TEXT NOT NULL,
                q REAL,
                expires_ms INTEGER NOT NULL,
                call_id TEXT NOT NULL,
                cseq INTEGER NOT NULL,
                source TEXT NOT NULL,
                transport TEXT NOT NULL
            );
            CREATE INDEX IF NOT EXISTS registrations_aor ON registrations (aor);
            CREATE TABLE IF NOT EXISTS agent_states (
                agent TEXT PRIMARY KEY,
                state TEXT NOT NULL,
                reason TEXT
            );",
        )?;
        Ok(Store { db })
    }

    /// Stores one record from the ACD.
    pub(crate) fn persist(&self, rec: &PersistRecord, now: Instant) -> Result<()> {
        let wall = unix_ms(SystemTime::now());
        match rec {
            PersistRecord::SaveCallback(r) => {
                let skills: Vec<(String, u8)> =
                    r.skills.iter().map(|s| (s.skill.clone(), s.min)).collect();
                self.db.execute(
                    "INSERT OR REPLACE INTO callbacks (id, queue, number, caller, priority, skills,
                        attributes, last_agent, place_ms, requested_ms, not_before_ms, attempts)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                    params![
                        r.callback.0 as i64,
                        r.queue,
                        r.number,
                        r.caller.map(|c| c.0 as i64),
                        r.priority,
                        serde_json::to_string(&skills)?,
                        serde_json::to_string(&r.attributes)?,
                        r.last_agent.as_ref().map(|a| a.0.clone()),
                        to_wall(r.place, now, wall),
                        to_wall(r.requested_at, now, wall),
                        to_wall(r.not_before, now, wall),
                        r.attempts,
                    ],
                )?;
            }
            PersistRecord::CloseCallback { callback, .. } => {
                self.db.execute(
                    "DELETE FROM callbacks WHERE id = ?1",
                    params![callback.0 as i64],
                )?;
            }
        }
        Ok(())
    }

    /// The pending callbacks, with times as `Instant`s against `now`.
    pub(crate) fn callbacks(&self, now: Instant) -> Result<Vec<CallbackRecord>> {
        let wall = unix_ms(SystemTime::now());
        let mut stmt = self.db.prepare(
            "SELECT id, queue, number, caller, priority, skills, attributes, last_agent,
                    place_ms, requested_ms, not_before_ms, attempts FROM callbacks",
        )?;
        let rows = stmt.query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, Option<i64>>(3)?,
                row.get::<_, i32>(4)?,
                row.get::<_, String>(5)?,
                row.get::<_, String>(6)?,
                row.get::<_, Option<String>>(7)?,
                row.get::<_, i64>(8)?,
                row.get::<_, i64>(9)?,
                row.get::<_, i64>(10)?,
                row.get::<_, u32>(11)?,
            ))
        })?;
        let mut out = vec![];
        for row in rows {
            let (id, queue, number, caller, priority, skills, attrs, last, place, req, nb, att) =
                row?;
            let skills: Vec<(String, u8)> = serde_json::from_str(&skills)?;
            out.push(CallbackRecord {
                callback: CallbackId(id as u64),
                queue,
                number,
                caller: caller.map(|c| CallerId(c as u64)),
                priority,
                skills: skills
                    .iter()
                    .map(|(s, m)| SkillRequirement::new(s, *m))
                    .collect(),
                attributes: serde_json::from_str(&attrs)?,
                last_agent: last.map(AgentId),
                place: from_wall(place, now, wall),
                requested_at: from_wall(req, now, wall),
                not_before: from_wall(nb, now, wall),
                attempts: att,
            });
        }
        Ok(out)
    }

    /// Contact history for sticky agents: each caller's last agent (callers who reached
    /// one), at most `limit` callers, most recent first.
    pub(crate) fn last_agents(&self, limit: usize) -> Result<Vec<(String, String)>> {
        let mut stmt = self.db.prepare(
            "SELECT caller, agent, MAX(seq) FROM calls
             WHERE agent IS NOT NULL AND caller != '' AND caller != 'anonymous'
             GROUP BY caller ORDER BY MAX(seq) DESC LIMIT ?1",
        )?;
        let rows = stmt.query_map(params![limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<std::result::Result<_, _>>()?)
    }

    /// Replaces the stored bindings of each address-of-record given (none: deleted), in
    /// one transaction.
    pub(crate) fn save_registrations(
        &mut self,
        changed: &[(String, Vec<Binding>)],
        now: Instant,
    ) -> Result<()> {
        let wall = unix_ms(SystemTime::now());
        let tx = self.db.transaction()?;
        {
            let mut del = tx.prepare_cached("DELETE FROM registrations WHERE aor = ?1")?;
            let mut ins = tx.prepare_cached(
                "INSERT INTO registrations (aor, contact_uri, params, q, expires_ms, call_id,
                    cseq, source, transport) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?;
            for (aor, bindings) in changed {
                del.execute(params![aor])?;
                for b in bindings {
                    ins.execute(params![
                        b.aor,
                        b.contact_uri,
                        b.params,
                        b.q.map(f64::from),
                        to_wall(b.expires_at, now, wall),
                        b.call_id,
                        b.cseq,
                        b.source.to_string(),
                        b.transport,
                    ])?;
                }
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The stored bindings that have not expired.
    pub(crate) fn registrations(&self, now: Instant) -> Result<Vec<Binding>> {
        let wall = unix_ms(SystemTime::now());
        let mut stmt = self.db.prepare(
            "SELECT aor, contact_uri, params, q, expires_ms, call_id, cseq, source, transport
             FROM registrations WHERE expires_ms > ?1",
        )?;
        let rows = stmt.query_map(params![wall], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<f64>>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, u32>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (aor, contact_uri, params, q, exp, call_id, cseq, source, transport) = row?;
            let Ok(source) = source.parse() else { continue };
            out.push(Binding {
                aor,
                contact_uri,
                params,
                q: q.map(|q| q as f32),
                expires_at: from_wall(exp, now, wall),
                call_id,
                cseq,
                source,
                transport,
            });
        }
        Ok(out)
    }

    /// Stores an agent's chosen state (`None`: logged out, forgotten).
    pub(crate) fn save_agent_state(
        &self,
        agent: &str,
        state: Option<&AgentStateChange>,
    ) -> Result<()> {
        match state {
            None | Some(AgentStateChange::LoggedOut) => {
                self.db
                    .execute("DELETE FROM agent_states WHERE agent = ?1", params![agent])?;
            }
            Some(AgentStateChange::Ready) => {
                self.db.execute(
                    "INSERT OR REPLACE INTO agent_states (agent, state, reason) VALUES (?1, 'ready', NULL)",
                    params![agent],
                )?;
            }
            Some(AgentStateChange::NotReady(reason)) => {
                self.db.execute(
                    "INSERT OR REPLACE INTO agent_states (agent, state, reason) VALUES (?1, 'not_ready', ?2)",
                    params![agent, reason],
                )?;
            }
        }
        Ok(())
    }

    /// Agents' chosen states as stored.
    pub(crate) fn agent_states(&self) -> Result<Vec<(String, AgentStateChange)>> {
        let mut stmt = self
            .db
            .prepare("SELECT agent, state, reason FROM agent_states")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (agent, state, reason) = row?;
            let state = match state.as_str() {
                "ready" => AgentStateChange::Ready,
                _ => AgentStateChange::NotReady(reason.unwrap_or_default()),
            };
            out.push((agent, state));
        }
        Ok(out)
    }

    /// Stores the record of an ended call.
    pub(crate) fn call_ended(&self, c: &CallSummary) -> Result<()> {
        self.db.execute(
            "INSERT INTO calls (ended_ms, state, caller, called, duration_ms, flow, inputs, queue,
                agent, survey, recording) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                unix_ms(SystemTime::now()),
                c.state,
                c.caller,
                c.called,
                c.duration_ms as i64,
                c.flow,
                serde_json::to_string(&c.inputs)?,
                c.queue,
                c.agent,
                c.survey,
                c.recording.as_ref().map(|p| p.display().to_string()),
            ],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acd::CallbackClosed;

    #[test]
    fn registrations_and_agent_states_survive_reopening() {
        let dir = std::env::temp_dir().join(format!("sb-store-regs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let now = Instant::now();
        let binding = |aor: &str, port: u16, secs: u64| Binding {
            aor: aor.into(),
            contact_uri: format!("sip:{aor}@127.0.0.1:{port}"),
            params: String::new(),
            q: Some(0.5),
            expires_at: now + Duration::from_secs(secs),
            call_id: format!("reg-{aor}"),
            cseq: 7,
            source: format!("127.0.0.1:{port}").parse().unwrap(),
            transport: "udp".into(),
        };
        {
            let mut store = Store::open(&path).unwrap();
            store
                .save_registrations(
                    &[
                        ("1001".into(), vec![binding("1001", 5071, 60)]),
                        ("1002".into(), vec![binding("1002", 5072, 60)]),
                    ],
                    now,
                )
                .unwrap();
            // 1002 unregisters; 1001 refreshes.
            store
                .save_registrations(
                    &[
                        ("1002".into(), vec![]),
                        ("1001".into(), vec![binding("1001", 5071, 120)]),
                    ],
                    now,
                )
                .unwrap();
            store
                .save_agent_state("1001", Some(&AgentStateChange::Ready))
                .unwrap();
            store
                .save_agent_state("1002", Some(&AgentStateChange::NotReady("lunch".into())))
                .unwrap();
            store
                .save_agent_state("1003", Some(&AgentStateChange::Ready))
                .unwrap();
            store.save_agent_state("1003", None).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let regs = store.registrations(now).unwrap();
        assert_eq!(regs.len(), 1);
        assert_eq!(regs[0].contact_uri, "sip:1001@127.0.0.1:5071");
        assert_eq!((regs[0].cseq, regs[0].q), (7, Some(0.5)));
        let left = regs[0].expires_at.saturating_duration_since(now);
        assert!(left > Duration::from_secs(118) && left <= Duration::from_secs(121));
        let mut states = store.agent_states().unwrap();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            states,
            [
                ("1001".to_string(), AgentStateChange::Ready),
                (
                    "1002".to_string(),
                    AgentStateChange::NotReady("lunch".into())
                )
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn contact_history_gives_each_callers_latest_agent() {
        let dir = std::env::temp_dir().join(format!("sb-store-hist-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        {
            let store = Store::open(&path).unwrap();
            let call = |caller: &str, agent: Option<&str>| CallSummary {
                id: 1,
                state: "ended",
                caller: caller.into(),
                called: "200".into(),
                codecs: [None, None],
                media: [None, None],
                digits: String::new(),
                recording: None,
                duration_ms: 1000,
                flow: None,
                inputs: vec![],
                queue: Some("support".into()),
                agent: agent.map(str::to_string),
                survey: None,
            };
            store.call_ended(&call("+1555", Some("1003"))).unwrap();
            store.call_ended(&call("+1666", Some("1001"))).unwrap();
            store.call_ended(&call("+1555", Some("1004"))).unwrap();
            store.call_ended(&call("+1555", None)).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let mut h = store.last_agents(10).unwrap();
        h.sort();
        assert_eq!(
            h,
            [
                ("+1555".to_string(), "1004".to_string()),
                ("+1666".to_string(), "1001".to_string())
            ]
        );
        assert_eq!(store.last_agents(1).unwrap().len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn callbacks_survive_reopening_with_their_times() {
        let dir = std::env::temp_dir().join(format!("sb-store-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.db");
        let _ = std::fs::remove_file(&path);
        let now = Instant::now();
        let rec = CallbackRecord {
            callback: CallbackId(7),
            queue: "billing".into(),
            number: "+15551234".into(),
            caller: Some(CallerId(3)),
            priority: 5,
            skills: vec![SkillRequirement::new("billing", 2)],
            attributes: [("language".to_string(), "en".to_string())].into(),
            last_agent: Some(AgentId("1001".into())),
            place: now - Duration::from_secs(300),
            requested_at: now - Duration::from_secs(120),
            not_before: now + Duration::from_secs(60),
            attempts: 1,
        };
        {
            let s = Store::open(&path).unwrap();
            s.persist(&PersistRecord::SaveCallback(rec.clone()), now)
                .unwrap();
            let other = CallbackRecord {
                callback: CallbackId(8),
                ..rec.clone()
            };
            s.persist(&PersistRecord::SaveCallback(other), now).unwrap();
            s.persist(
                &PersistRecord::CloseCallback {
                    callback: CallbackId(8),
                    outcome: CallbackClosed::Completed,
                },
                now,
            )
            .unwrap();
        }
        let s = Store::open(&path).unwrap();
        let back = s.callbacks(now).unwrap();
        assert_eq!(back.len(), 1);
        let b = &back[0];
        assert_eq!(
            (b.callback, &b.queue, &b.number, b.priority, b.attempts),
            (CallbackId(7), &rec.queue, &rec.number, 5, 1)
        );
        assert_eq!(
            (&b.skills, &b.attributes, &b.last_agent),
            (&rec.skills, &rec.attributes, &rec.last_agent)
        );
        let close = |a: Instant, b: Instant| {
            let d = if a > b { a - b } else { b - a };
            d < Duration::from_millis(50)
        };
        assert!(close(b.place, rec.place));
        assert!(close(b.requested_at, rec.requested_at));
        assert!(close(b.not_before, rec.not_before));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
